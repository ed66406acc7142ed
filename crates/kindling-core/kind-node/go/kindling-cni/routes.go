package main

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
)

// routeProtocol marks the routes this daemon adds (an unassigned number in
// /etc/iproute2/rt_protos), so it removes its own stale routes and no others.
const routeProtocol netlink.RouteProtocol = 0x6b

// desiredRoutes maps each pod CIDR of the nodes but self to the InternalIP
// of its node of the same IP family. Nodes without a pod CIDR or an
// address of the family are skipped.
func desiredRoutes(nodes []*corev1.Node, self string) map[string]string {
	want := map[string]string{}
	for _, node := range nodes {
		if node.Name == self {
			continue
		}
		var v4, v6 string
		for _, address := range node.Status.Addresses {
			if address.Type != corev1.NodeInternalIP {
				continue
			}
			ip := net.ParseIP(address.Address)
			switch {
			case ip == nil:
			case ip.To4() != nil && v4 == "":
				v4 = ip.String()
			case ip.To4() == nil && v6 == "":
				v6 = ip.String()
			}
		}
		for _, cidr := range nodePodCIDRs(node) {
			_, dst, err := net.ParseCIDR(cidr)
			if err != nil {
				continue
			}
			gw := v4
			if dst.IP.To4() == nil {
				gw = v6
			}
			if gw != "" {
				want[dst.String()] = gw
			}
		}
	}
	return want
}

// nodePodCIDRs is a node's podCIDRs, or its podCIDR on servers that set
// only that.
func nodePodCIDRs(node *corev1.Node) []string {
	if len(node.Spec.PodCIDRs) > 0 {
		return node.Spec.PodCIDRs
	}
	if node.Spec.PodCIDR != "" {
		return []string{node.Spec.PodCIDR}
	}
	return nil
}

// diffRoutes compares the wanted routes (destination to gateway) with the
// present ones of this daemon: the routes to replace (missing or through
// another gateway) and the destinations to delete, sorted.
func diffRoutes(want, have map[string]string) (replace map[string]string, remove []string) {
	replace = map[string]string{}
	for dst, gw := range want {
		if have[dst] != gw {
			replace[dst] = gw
		}
	}
	for dst := range have {
		if _, ok := want[dst]; !ok {
			remove = append(remove, dst)
		}
	}
	sort.Strings(remove)
	return replace, remove
}

// ownRoutes lists the routes of the main table this daemon added.
func ownRoutes() (map[string]string, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	have := map[string]string{}
	for _, r := range routes {
		if r.Dst != nil && r.Gw != nil {
			have[r.Dst.String()] = r.Gw.String()
		}
	}
	return have, nil
}

// syncRoutes makes the routes of this daemon the wanted ones.
func syncRoutes(want map[string]string) error {
	have, err := ownRoutes()
	if err != nil {
		return err
	}
	replace, remove := diffRoutes(want, have)
	for dst, gw := range replace {
		_, dstNet, err := net.ParseCIDR(dst)
		if err != nil {
			return err
		}
		r := &netlink.Route{Dst: dstNet, Gw: net.ParseIP(gw), Protocol: routeProtocol}
		logf("route %s via %s", dst, gw)
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", dst, gw, err)
		}
	}
	for _, dst := range remove {
		_, dstNet, err := net.ParseCIDR(dst)
		if err != nil {
			return err
		}
		logf("removing route %s via %s", dst, have[dst])
		r := &netlink.Route{Dst: dstNet, Gw: net.ParseIP(have[dst]), Protocol: routeProtocol}
		if err := netlink.RouteDel(r); err != nil {
			return fmt.Errorf("removing route %s: %w", dst, err)
		}
	}
	return nil
}
