package main

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, podCIDRs []string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Spec.PodCIDRs = podCIDRs
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return n
}

func TestDesiredRoutes(t *testing.T) {
	legacy := node("legacy", nil, "172.18.0.5")
	legacy.Spec.PodCIDR = "10.244.4.0/24"
	nodes := []*corev1.Node{
		node("cp", []string{"10.244.0.0/24", "fd00:10:244::/64"}, "172.18.0.2", "fc00:f853:ccd:e793::2"),
		node("worker", []string{"10.244.1.0/24"}, "172.18.0.3"),
		node("fresh", nil, "172.18.0.4"),
		node("v4only", []string{"10.244.3.0/24", "fd00:10:244:3::/64"}, "172.18.0.6"),
		legacy,
	}
	got := desiredRoutes(nodes, "worker")
	want := map[string]string{
		"10.244.0.0/24":    "172.18.0.2",
		"fd00:10:244::/64": "fc00:f853:ccd:e793::2",
		"10.244.3.0/24":    "172.18.0.6",
		"10.244.4.0/24":    "172.18.0.5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestDiffRoutes(t *testing.T) {
	want := map[string]string{"10.244.0.0/24": "172.18.0.2", "10.244.2.0/24": "172.18.0.4", "10.244.3.0/24": "172.18.0.5"}
	have := map[string]string{"10.244.0.0/24": "172.18.0.2", "10.244.2.0/24": "172.18.0.9", "10.244.9.0/24": "172.18.0.7", "10.244.8.0/24": "172.18.0.8"}
	replace, remove := diffRoutes(want, have)
	if !reflect.DeepEqual(replace, map[string]string{"10.244.2.0/24": "172.18.0.4", "10.244.3.0/24": "172.18.0.5"}) {
		t.Fatalf("replace %v", replace)
	}
	if !reflect.DeepEqual(remove, []string{"10.244.8.0/24", "10.244.9.0/24"}) {
		t.Fatalf("remove %v", remove)
	}
	replace, remove = diffRoutes(want, want)
	if len(replace) != 0 || len(remove) != 0 {
		t.Fatalf("in sync: %v %v", replace, remove)
	}
}
