package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// cniConfigPath is the file the kubelet's containerd reads the pod network
// from; the name is kind's, so a node moved from kindnetd keeps one file.
const cniConfigPath = "/etc/cni/net.d/10-kindnet.conflist"

// The CNI configuration: a ptp veth per pod with host-local addresses from
// the node's pod CIDRs (no masquerade there: masq.go does it for the
// cluster), then portmap for hostPort.
type conflist struct {
	CNIVersion string   `json:"cniVersion"`
	Name       string   `json:"name"`
	Plugins    []plugin `json:"plugins"`
}

type plugin struct {
	Type         string          `json:"type"`
	IPMasq       *bool           `json:"ipMasq,omitempty"`
	IPAM         *ipam           `json:"ipam,omitempty"`
	MTU          int             `json:"mtu,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
}

type ipam struct {
	Type    string      `json:"type"`
	DataDir string      `json:"dataDir"`
	Routes  []route     `json:"routes"`
	Ranges  [][]ipRange `json:"ranges"`
}

type route struct {
	Dst string `json:"dst"`
}

type ipRange struct {
	Subnet string `json:"subnet"`
}

// cniConfig is the conflist for a node with podCIDRs (one per IP family);
// mtu 0 leaves the veths' MTU to the kernel. A default route is given per
// family present.
func cniConfig(podCIDRs []string, mtu int) ([]byte, error) {
	if len(podCIDRs) == 0 {
		return nil, fmt.Errorf("no pod CIDR")
	}
	noMasq := false
	pam := &ipam{Type: "host-local", DataDir: "/run/cni-ipam-state"}
	var v4, v6 bool
	for _, cidr := range podCIDRs {
		ipv6, err := isIPv6CIDR(cidr)
		if err != nil {
			return nil, err
		}
		if ipv6 {
			v6 = true
		} else {
			v4 = true
		}
		pam.Ranges = append(pam.Ranges, []ipRange{{Subnet: cidr}})
	}
	if v4 {
		pam.Routes = append(pam.Routes, route{Dst: "0.0.0.0/0"})
	}
	if v6 {
		pam.Routes = append(pam.Routes, route{Dst: "::/0"})
	}
	list := conflist{
		CNIVersion: "0.3.1",
		Name:       "kindnet",
		Plugins: []plugin{
			{Type: "ptp", IPMasq: &noMasq, IPAM: pam, MTU: mtu},
			{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func isIPv6CIDR(cidr string) (bool, error) {
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		return false, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	return ip.To4() == nil, nil
}

// writeIfChanged writes contents to path unless it already holds them,
// through a file of another extension and a rename, so containerd never
// reads half a config. It reports whether it wrote.
func writeIfChanged(path string, contents []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, contents) {
		return false, nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, contents, 0o644); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

// eth0MTU is the MTU of the node's eth0, or 0 when it has none.
func eth0MTU() int {
	link, err := net.InterfaceByName("eth0")
	if err != nil {
		return 0
	}
	return link.MTU
}
