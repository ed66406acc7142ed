// kindling-cni is the pod network of kindling's Kind node image, in place
// of kind's kindnetd: a DaemonSet on the host network of every node that
//
//   - writes the node's CNI configuration (ptp and host-local over the
//     node's pod CIDRs, then portmap) once the node has pod CIDRs,
//   - routes every other node's pod CIDRs through that node's InternalIP,
//   - masquerades traffic from pods to anywhere outside the cluster's pod
//     ranges (POD_SUBNET) with iptables in the mode of the node's image.
//
// It reads NODE_NAME (the downward API's spec.nodeName) and POD_SUBNET
// (the cluster's pod CIDRs, comma-separated), and needs NET_ADMIN.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// resync is how often everything is checked again without a node event
// (routes or rules removed behind the daemon's back come back then).
const resync = 30 * time.Second

func logf(format string, args ...any) { log.Printf(format, args...) }

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	self := os.Getenv("NODE_NAME")
	if self == "" {
		return fmt.Errorf("NODE_NAME is not set (the downward API's spec.nodeName)")
	}
	podSubnets := splitList(os.Getenv("POD_SUBNET"))
	if len(podSubnets) == 0 {
		return fmt.Errorf("POD_SUBNET is not set (the cluster's pod CIDRs)")
	}
	v4, v6, err := byFamily(podSubnets)
	if err != nil {
		return err
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactory(client, resync)
	nodes := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, n any) { poke(n) },
		DeleteFunc: poke,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	logf("kindling-cni on %s, pod subnets %v, API server %s", self, podSubnets, config.Host)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return ctx.Err()
	}

	mtu := eth0MTU()
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			err = reconcile(list, self, mtu)
		}
		if err != nil {
			logf("nodes: %v", err)
		}
		if len(v4) > 0 {
			if err := syncMasq("iptables", v4); err != nil {
				logf("masquerade: %v", err)
			}
		}
		if len(v6) > 0 {
			if err := syncMasq("ip6tables", v6); err != nil {
				logf("masquerade: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-ticker.C:
		}
	}
}

// reconcile writes this node's CNI configuration and the routes to the
// other nodes' pods.
func reconcile(nodes []*corev1.Node, self string, mtu int) error {
	for _, node := range nodes {
		if node.Name != self {
			continue
		}
		cidrs := nodePodCIDRs(node)
		if len(cidrs) == 0 {
			logf("node %s has no pod CIDR yet", self)
			break
		}
		config, err := cniConfig(cidrs, mtu)
		if err != nil {
			return err
		}
		wrote, err := writeIfChanged(cniConfigPath, config)
		if err != nil {
			return err
		}
		if wrote {
			logf("wrote %s for %v (mtu %d)", cniConfigPath, cidrs, mtu)
		}
	}
	return syncRoutes(desiredRoutes(nodes, self))
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(value string) []string {
	var out []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// byFamily splits CIDRs into IPv4 and IPv6 ones.
func byFamily(cidrs []string) (v4, v6 []string, err error) {
	for _, cidr := range cidrs {
		ipv6, err := isIPv6CIDR(cidr)
		if err != nil {
			return nil, nil, err
		}
		if ipv6 {
			v6 = append(v6, cidr)
		} else {
			v4 = append(v4, cidr)
		}
	}
	return v4, v6, nil
}
