module github.com/kubernetes-sigs/iptables-wrappers

go 1.19
