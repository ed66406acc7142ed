module kindling.local/stackweb

go 1.22
