//! The objects a local cluster deploys into itself: bootstrap RBAC,
//! CoreDNS (answering cluster names only: no upstream to forward to), and
//! the smoke workload with its probe.

use serde_json::{Value, json};

use super::config::LocalNetwork;

/// The namespace of the smoke workload.
pub const SMOKE_NAMESPACE: &str = "kindling-smoke";

/// Lets the API server's kubelet-client identity reach kubelets (logs,
/// exec, port-forward).
pub fn apiserver_kubelet_binding() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kindling:apiserver-kubelet-client"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver-kubelet-client"}]
    })
}

/// The StorageClass of a local cluster, its default: volumes are folders
/// of this host, made by the controller-manager's host-path provisioner
/// (`--enable-hostpath-provisioner`, under `/tmp/hostpath_pv`), which only
/// a single-node cluster can use.
pub fn storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate"
    })
}

/// The name of the local cluster's default StorageClass.
pub const STORAGE_CLASS: &str = "kindling-hostpath";

/// Where the host-path provisioner makes volumes.
pub const HOSTPATH_VOLUMES: &str = "/tmp/hostpath_pv";

/// CoreDNS's Corefile. Cluster zones go to `kubernetes`; every other name
/// gets an immediate NXDOMAIN from a server block of its own (`template`
/// runs before `kubernetes` in CoreDNS's fixed plugin order), so no query
/// leaves the machine and none waits on an upstream that is not there.
pub fn corefile() -> String {
    "cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        ttl 30
    }
    cache 30
    reload
}
.:53 {
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
"
    .to_owned()
}

/// CoreDNS: service account, RBAC, Corefile, Deployment and the `kube-dns` Service.
pub fn coredns(network: &LocalNetwork, image: &str) -> Vec<Value> {
    let labels = json!({"k8s-app": "kube-dns"});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": corefile()}
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "containers": [{
                            "name": "coredns",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": true}]
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}]
                    }
                }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": network.dns_ip.to_string(),
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
                ]
            }
        }),
    ]
}

/// The smoke workload (a Deployment behind a Service) in its own namespace.
pub fn smoke(image: &str) -> Vec<Value> {
    let labels = json!({"app": "smoke"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SMOKE_NAMESPACE}}),
        // Created here rather than waited for: the controller-manager adds it
        // only after its first sync, seconds later.
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": SMOKE_NAMESPACE}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "smoke", "namespace": SMOKE_NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "smoke",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "args": ["serve", ":8080"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
                    }]}
                }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "smoke", "namespace": SMOKE_NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}
        }),
    ]
}

/// A Job that fetches the smoke Service by its DNS name from another pod.
pub fn smoke_probe(image: &str, job: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job, "namespace": SMOKE_NAMESPACE},
        "spec": {
            "backoffLimit": 20,
            "ttlSecondsAfterFinished": 600,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["get", format!("http://smoke.{SMOKE_NAMESPACE}.svc.cluster.local:8080/")]
                }]
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredns_never_forwards_and_serves_the_cluster_dns_address() {
        assert!(!corefile().contains("forward") && !corefile().contains("loop"));
        assert!(corefile().contains("rcode NXDOMAIN"));
        assert!(corefile().contains("kubernetes cluster.local"));
        let objects = coredns(
            &LocalNetwork::new(
                &"kindling".parse().unwrap(),
                &crate::network::NetworkRanges::default(),
            ),
            "localhost/kindling/coredns:c-1",
        );
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
        assert_eq!(service["spec"]["clusterIP"], "10.214.0.10");
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Never");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["dnsPolicy"],
            "Default"
        );
    }

    #[test]
    fn the_probe_reaches_the_smoke_service_by_name() {
        let job = smoke_probe("localhost/kindling/smoke:c-1", "probe-1");
        let args = &job["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(
            args[1],
            "http://smoke.kindling-smoke.svc.cluster.local:8080/"
        );
    }
}
