package main

import (
	"strings"
	"testing"
)

func TestMasqRules(t *testing.T) {
	rules := masqRules([]string{"10.244.0.0/16"})
	var lines []string
	for _, rule := range rules {
		lines = append(lines, strings.Join(rule, " "))
	}
	want := []string{
		`POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment kindling-cni: non-local traffic to KIND-MASQ-AGENT -j KIND-MASQ-AGENT`,
		`KIND-MASQ-AGENT -d 10.244.0.0/16 -m comment --comment kindling-cni: pod traffic is not masqueraded -j RETURN`,
		`KIND-MASQ-AGENT -m comment --comment kindling-cni: the rest is masqueraded (last) -j MASQUERADE`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", strings.Join(lines, "\n"))
	}
}
