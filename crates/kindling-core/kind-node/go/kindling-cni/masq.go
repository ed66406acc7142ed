package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// masqChain holds the masquerade rules in the nat table (kind's name).
const masqChain = "KIND-MASQ-AGENT"

// masqRules are the rules, as iptables arguments after `-t nat`, that
// masquerade pod traffic leaving the cluster's pod ranges: POSTROUTING
// sends non-local destinations to masqChain, which returns for the pod
// ranges and masquerades the rest.
func masqRules(podSubnets []string) [][]string {
	rules := [][]string{{"POSTROUTING", "-m", "addrtype", "!", "--dst-type", "LOCAL",
		"-m", "comment", "--comment", "kindling-cni: non-local traffic to " + masqChain,
		"-j", masqChain}}
	for _, subnet := range podSubnets {
		rules = append(rules, []string{masqChain, "-d", subnet,
			"-m", "comment", "--comment", "kindling-cni: pod traffic is not masqueraded",
			"-j", "RETURN"})
	}
	return append(rules, []string{masqChain,
		"-m", "comment", "--comment", "kindling-cni: the rest is masqueraded (last)",
		"-j", "MASQUERADE"})
}

// syncMasq makes sure the rules are there with iptables (or ip6tables),
// adding what is missing; the chain's rules keep their order as they are
// only ever appended in order after a flush when one is missing.
func syncMasq(command string, podSubnets []string) error {
	run := func(args ...string) error {
		out, err := exec.Command(command, append([]string{"-w", "5", "-t", "nat"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", command, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	rules := masqRules(podSubnets)
	missing := false
	for _, rule := range rules {
		if run(append([]string{"-C"}, rule...)...) != nil {
			missing = true
			break
		}
	}
	if !missing {
		return nil
	}
	logf("%s: installing the masquerade rules for %v", command, podSubnets)
	if run("-N", masqChain) != nil {
		// It exists: start it over so RETURN rules stay before MASQUERADE.
		if err := run("-F", masqChain); err != nil {
			return err
		}
	}
	for _, rule := range rules[1:] {
		if err := run(append([]string{"-A"}, rule...)...); err != nil {
			return err
		}
	}
	if run(append([]string{"-C"}, rules[0]...)...) != nil {
		return run(append([]string{"-A"}, rules[0]...)...)
	}
	return nil
}
