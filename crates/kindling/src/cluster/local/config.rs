//! What a local cluster is made of: its network, ports and files, and the
//! configuration and command line of each component, rendered from them.
//! Pure functions, so every setting is visible and tested in one place.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::cluster::pki::PkiFiles;

/// Addresses of a local cluster. The node IP lives on a dummy interface of
/// its own; pod and service ranges are chosen to collide with nothing on
/// the machine (not Docker's 172.17.0.0/16). No traffic leaves the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetwork {
    /// The link the node's address lives on (a dummy link, or ifb where
    /// the kernel has no dummy links).
    pub interface: String,
    /// The node's address: the kubelet's node IP, the API server's
    /// advertised address, kube-proxy's bind address.
    pub node_ip: Ipv4Addr,
    /// The pod range, as a CIDR: the node's `podCIDR` and the CNI bridge's subnet.
    pub pod_cidr: String,
    /// The CNI bridge's gateway, on the pod range.
    pub pod_gateway: Ipv4Addr,
    /// The Service range, as a CIDR.
    pub service_cidr: String,
    /// The `kubernetes` Service: the first address of the service range.
    pub api_service_ip: Ipv4Addr,
    /// The `kube-dns` Service, the kubelet's `clusterDNS`.
    pub dns_ip: Ipv4Addr,
}

impl Default for LocalNetwork {
    fn default() -> Self {
        LocalNetwork {
            interface: "kindling0".to_owned(),
            node_ip: Ipv4Addr::new(10, 215, 0, 1),
            pod_cidr: "10.213.0.0/24".to_owned(),
            pod_gateway: Ipv4Addr::new(10, 213, 0, 1),
            service_cidr: "10.214.0.0/24".to_owned(),
            api_service_ip: Ipv4Addr::new(10, 214, 0, 1),
            dns_ip: Ipv4Addr::new(10, 214, 0, 10),
        }
    }
}

/// Ports the components listen on; all checked free before `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPorts {
    /// etcd's client port, on loopback.
    pub etcd_client: u16,
    /// etcd's peer port, on loopback.
    pub etcd_peer: u16,
    /// kube-apiserver's secure port, on every address.
    pub apiserver: u16,
    /// The kubelet's API port, on the node's address.
    pub kubelet: u16,
    /// The kubelet's health check port, on loopback.
    pub kubelet_healthz: u16,
    /// kube-controller-manager's secure port, on loopback.
    pub controller_manager: u16,
    /// kube-scheduler's secure port, on loopback.
    pub scheduler: u16,
    /// kube-proxy's metrics port, on loopback.
    pub kube_proxy_metrics: u16,
    /// kube-proxy's health check port, on loopback.
    pub kube_proxy_healthz: u16,
}

impl Default for LocalPorts {
    fn default() -> Self {
        LocalPorts {
            etcd_client: 2379,
            etcd_peer: 2380,
            apiserver: 6443,
            kubelet: 10250,
            kubelet_healthz: 10248,
            controller_manager: 10257,
            scheduler: 10259,
            kube_proxy_metrics: 10249,
            kube_proxy_healthz: 10256,
        }
    }
}

impl LocalPorts {
    /// `(component, port)` for the port check.
    pub fn all(&self) -> Vec<(&'static str, u16)> {
        vec![
            ("etcd", self.etcd_client),
            ("etcd (peer)", self.etcd_peer),
            ("kube-apiserver", self.apiserver),
            ("kubelet", self.kubelet),
            ("kubelet (healthz)", self.kubelet_healthz),
            ("kube-controller-manager", self.controller_manager),
            ("kube-scheduler", self.scheduler),
            ("kube-proxy (metrics)", self.kube_proxy_metrics),
            ("kube-proxy (healthz)", self.kube_proxy_healthz),
        ]
    }
}

/// Where a local cluster keeps its files: everything under one root in
/// the user's state directory, runtime state (runc, CNI allocations) under
/// `/run/kindling/<cluster>`; `~/.kube/config` is never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLayout {
    /// The cluster's folder in the state directory: data, certificates,
    /// configuration, process records and logs.
    pub root: PathBuf,
    /// The cluster's runtime folder, `/run/kindling/<cluster>`.
    pub run: PathBuf,
}

impl LocalLayout {
    /// The layout with its files under `root` and its runtime state under `run`.
    pub fn new(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Self {
        LocalLayout {
            root: root.into(),
            run: run.into(),
        }
    }
    /// runc's state for this cluster's containers.
    pub fn runc_root(&self) -> PathBuf {
        self.run.join("runc")
    }
    /// Host settings changed by `up`, restored by `down`.
    pub fn saved_sysctls(&self) -> PathBuf {
        self.root.join("host-sysctls.json")
    }
    /// The folder of the cluster's certificates and keys.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// The kubeconfig of `user` (`admin`, `controller-manager`,
    /// `scheduler`, `kube-proxy` or `kubelet`).
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.root.join("kubeconfig").join(format!("{user}.yaml"))
    }
    /// etcd's data folder.
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }
    /// containerd's persistent data (its `root`).
    pub fn containerd_root(&self) -> PathBuf {
        self.root.join("containerd/root")
    }
    /// containerd's transient state (its `state`).
    pub fn containerd_state(&self) -> PathBuf {
        self.root.join("containerd/state")
    }
    /// The socket this cluster's containerd listens on.
    pub fn containerd_socket(&self) -> PathBuf {
        self.root.join("containerd/containerd.sock")
    }
    /// containerd's configuration file.
    pub fn containerd_config(&self) -> PathBuf {
        self.root.join("config/containerd.toml")
    }
    /// The folder of the CNI network configuration.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni/net.d")
    }
    /// The CNI address allocations (host-local's `dataDir`).
    pub fn cni_state_dir(&self) -> PathBuf {
        self.run.join("cni")
    }
    /// The kubelet's root folder (`--root-dir`), with its certificates in `pki`.
    pub fn kubelet_root(&self) -> PathBuf {
        self.root.join("kubelet")
    }
    /// The kubelet's KubeletConfiguration file.
    pub fn kubelet_config(&self) -> PathBuf {
        self.root.join("config/kubelet.yaml")
    }
    /// kube-proxy's KubeProxyConfiguration file.
    pub fn kube_proxy_config(&self) -> PathBuf {
        self.root.join("config/kube-proxy.yaml")
    }
    /// kube-scheduler's KubeSchedulerConfiguration file.
    pub fn scheduler_config(&self) -> PathBuf {
        self.root.join("config/scheduler.yaml")
    }
    /// The resolv.conf pods with `dnsPolicy: Default` get: no upstream resolver.
    pub fn resolv_conf(&self) -> PathBuf {
        self.root.join("config/resolv.conf")
    }
}

/// The image every pod sandbox runs (built locally, imported under this name).
pub const PAUSE_IMAGE: &str = "localhost/kindling/pause:1";

/// containerd 1.6 configuration (`version = 2`): an instance of its own
/// (root, state, socket), the CRI plugin with the pause image built here,
/// cgroupfs, the CNI plugins of `cni_bin_dir`, `runc` named by its path
/// (the shim would look it up on its `PATH`, which is not the caller's),
/// and `restrict_oom_score_adj` because sandboxes ask for oom_score_adj
/// -998, which needs CAP_SYS_RESOURCE these machines lack.
pub fn containerd_config(layout: &LocalLayout, cni_bin_dir: &Path, runc: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

oom_score = 0

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{runc}"
  Root = "{runc_root}"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{cni_conf}"
  max_conf_num = 1
"#,
        root = layout.containerd_root().display(),
        state = layout.containerd_state().display(),
        socket = layout.containerd_socket().display(),
        pause = PAUSE_IMAGE,
        cni_bin = cni_bin_dir.display(),
        cni_conf = layout.cni_conf_dir().display(),
        runc_root = layout.runc_root().display(),
        runc = runc.display(),
        opt = layout.root.join("containerd/opt").display(),
    )
}

/// A bridge network on the pod range with masquerading and hairpin, port
/// mappings, and `firewall`: Docker sets the FORWARD policy to DROP, and
/// bridged pod traffic passes FORWARD, so each pod needs its ACCEPT rules.
pub fn cni_conflist(layout: &LocalLayout, network: &LocalNetwork) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "kindling",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "kindling-br0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}", "gateway": "{gateway}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}],
        "dataDir": "{state}"
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }} }},
    {{ "type": "firewall" }}
  ]
}}
"#,
        subnet = network.pod_cidr,
        gateway = network.pod_gateway,
        state = layout.cni_state_dir().display(),
    )
}

/// KubeletConfiguration for a cgroup v1 host without CAP_SYS_RESOURCE.
/// Image garbage collection and eviction are off as in kind: with no
/// registry, a collected image is gone for good.
pub fn kubelet_config(
    layout: &LocalLayout,
    network: &LocalNetwork,
    ports: &LocalPorts,
    pki: &PkiFiles,
) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node_ip}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
staticPodPath: ""
rotateCertificates: false
serverTLSBootstrap: false
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{socket}
clusterDNS:
- {dns}
clusterDomain: cluster.local
resolvConf: {resolv}
protectKernelDefaults: false
podCIDR: {pod_cidr}
tlsCertFile: {serving_cert}
tlsPrivateKeyFile: {serving_key}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
imageGCHighThresholdPercent: 100
evictionHard:
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
  imagefs.inodesFree: "0%"
serializeImagePulls: false
"#,
        node_ip = network.node_ip,
        port = ports.kubelet,
        healthz = ports.kubelet_healthz,
        socket = layout.containerd_socket().display(),
        dns = network.dns_ip,
        resolv = layout.resolv_conf().display(),
        pod_cidr = network.pod_cidr,
        serving_cert = pki.kubelet_serving.cert.display(),
        serving_key = pki.kubelet_serving.key.display(),
        ca = pki.ca.cert.display(),
    )
}

/// KubeProxyConfiguration: iptables mode, no conntrack sysctls (they need
/// privileges the host may refuse), no `route_localnet`, and rules synced
/// on every change (a test's request right after a rollout must not wait
/// out the default one-second batching; a test cluster has few Services).
pub fn kube_proxy_config(
    layout: &LocalLayout,
    network: &LocalNetwork,
    ports: &LocalPorts,
    node_name: &str,
) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: {node_name}
clusterCIDR: {pod_cidr}
bindAddress: {node_ip}
metricsBindAddress: 127.0.0.1:{metrics}
healthzBindAddress: 127.0.0.1:{healthz}
clientConnection:
  kubeconfig: {kubeconfig}
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  minSyncPeriod: 0s
nodePortAddresses:
- {node_ip}/32
"#,
        pod_cidr = network.pod_cidr,
        node_ip = network.node_ip,
        metrics = ports.kube_proxy_metrics,
        healthz = ports.kube_proxy_healthz,
        kubeconfig = layout.kubeconfig("kube-proxy").display(),
    )
}

/// KubeSchedulerConfiguration without leader election (one replica).
pub fn scheduler_config(layout: &LocalLayout) -> String {
    format!(
        r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
leaderElection:
  leaderElect: false
"#,
        kubeconfig = layout.kubeconfig("scheduler").display(),
    )
}

/// etcd, listening on loopback only, without fsync: `down` wipes a test
/// cluster's data anyway, so it need not survive a crash of the host, and
/// with fsync an image build or load writing beside it can delay etcd's
/// commits past `etcdserver: request timed out`.
pub fn etcd_args(layout: &LocalLayout, ports: &LocalPorts) -> Vec<String> {
    vec![
        "--name=kindling".to_owned(),
        format!("--data-dir={}", layout.etcd_data().display()),
        format!(
            "--listen-client-urls=http://127.0.0.1:{}",
            ports.etcd_client
        ),
        format!(
            "--advertise-client-urls=http://127.0.0.1:{}",
            ports.etcd_client
        ),
        format!("--listen-peer-urls=http://127.0.0.1:{}", ports.etcd_peer),
        format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{}",
            ports.etcd_peer
        ),
        format!(
            "--initial-cluster=kindling=http://127.0.0.1:{}",
            ports.etcd_peer
        ),
        "--listen-metrics-urls=".to_owned(),
        "--unsafe-no-fsync=true".to_owned(),
    ]
}

/// kube-apiserver: Node and RBAC authorization, service-account tokens,
/// the kubelet client identity for logs, exec and port-forward.
pub fn apiserver_args(
    layout: &LocalLayout,
    network: &LocalNetwork,
    ports: &LocalPorts,
    pki: &PkiFiles,
) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        format!("--advertise-address={}", network.node_ip),
        "--bind-address=0.0.0.0".to_owned(),
        format!("--secure-port={}", ports.apiserver),
        format!("--service-cluster-ip-range={}", network.service_cidr),
        "--authorization-mode=Node,RBAC".to_owned(),
        "--enable-admission-plugins=NodeRestriction".to_owned(),
        "--allow-privileged=true".to_owned(),
        format!("--client-ca-file={}", pki.ca.cert.display()),
        format!("--tls-cert-file={}", pki.apiserver.cert.display()),
        format!("--tls-private-key-file={}", pki.apiserver.key.display()),
        format!("--kubelet-certificate-authority={}", pki.ca.cert.display()),
        format!(
            "--kubelet-client-certificate={}",
            pki.apiserver_kubelet_client.cert.display()
        ),
        format!(
            "--kubelet-client-key={}",
            pki.apiserver_kubelet_client.key.display()
        ),
        "--kubelet-preferred-address-types=InternalIP,Hostname".to_owned(),
        "--enable-bootstrap-token-auth=false".to_owned(),
        "--profiling=false".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
        format!(
            "--service-account-key-file={}",
            pki.service_account_public.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            pki.service_account_key.display()
        ),
        "--api-audiences=https://kubernetes.default.svc.cluster.local".to_owned(),
        format!("--cert-dir={}", layout.pki().display()),
    ]
}

/// kube-controller-manager: signs with the cluster CA, one replica, no
/// node CIDR allocation (the node's podCIDR comes from the kubelet).
pub fn controller_manager_args(
    layout: &LocalLayout,
    network: &LocalNetwork,
    ports: &LocalPorts,
    pki: &PkiFiles,
) -> Vec<String> {
    let kubeconfig = layout.kubeconfig("controller-manager");
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.controller_manager),
        format!("--client-ca-file={}", pki.ca.cert.display()),
        "--cluster-name=kindling".to_owned(),
        format!("--cluster-signing-cert-file={}", pki.ca.cert.display()),
        format!("--cluster-signing-key-file={}", pki.ca.key.display()),
        format!(
            "--service-account-private-key-file={}",
            pki.service_account_key.display()
        ),
        format!("--root-ca-file={}", pki.ca.cert.display()),
        format!("--service-cluster-ip-range={}", network.service_cidr),
        "--use-service-account-credentials=true".to_owned(),
        "--leader-elect=false".to_owned(),
        "--controllers=*,-cloud-node-lifecycle".to_owned(),
        // PersistentVolumeClaims get folders of this host (single node only).
        "--enable-hostpath-provisioner=true".to_owned(),
    ]
}

/// kube-scheduler.
pub fn scheduler_args(layout: &LocalLayout, ports: &LocalPorts) -> Vec<String> {
    let kubeconfig = layout.kubeconfig("scheduler");
    vec![
        format!("--config={}", layout.scheduler_config().display()),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.scheduler),
    ]
}

/// kubelet, registering the node under `node_name`.
pub fn kubelet_args(layout: &LocalLayout, network: &LocalNetwork, node_name: &str) -> Vec<String> {
    vec![
        format!("--config={}", layout.kubelet_config().display()),
        format!("--kubeconfig={}", layout.kubeconfig("kubelet").display()),
        format!("--root-dir={}", layout.kubelet_root().display()),
        format!("--cert-dir={}", layout.kubelet_root().join("pki").display()),
        format!("--hostname-override={node_name}"),
        format!("--node-ip={}", network.node_ip),
        "--v=1".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> (LocalLayout, LocalNetwork, LocalPorts, PkiFiles) {
        let layout = LocalLayout::new("/state/local", "/run/kindling/local");
        let pki = PkiFiles::under(&layout.pki());
        (layout, LocalNetwork::default(), LocalPorts::default(), pki)
    }

    #[test]
    fn containerd_runs_apart_from_dockers_and_tolerates_missing_sys_resource() {
        let (layout, ..) = fixtures();
        let text = containerd_config(
            &layout,
            Path::new("/opt/cni/bin"),
            Path::new("/usr/bin/runc"),
        );
        for wanted in [
            "version = 2",
            "root = \"/state/local/containerd/root\"",
            "address = \"/state/local/containerd/containerd.sock\"",
            "sandbox_image = \"localhost/kindling/pause:1\"",
            "restrict_oom_score_adj = true",
            "SystemdCgroup = false",
            "Root = \"/run/kindling/local/runc\"",
            "BinaryName = \"/usr/bin/runc\"",
            "bin_dir = \"/opt/cni/bin\"",
        ] {
            assert!(text.contains(wanted), "{wanted} missing from\n{text}");
        }
        assert!(
            !text.contains("/run/containerd/containerd.sock"),
            "shares Docker's containerd"
        );
        // runc's path is an option of the runc runtime, not of another table.
        let options = text
            .split("\n[")
            .find(|table| {
                table.starts_with(
                    "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]",
                )
            })
            .expect("the runc runtime's options");
        assert!(
            options.contains("BinaryName = \"/usr/bin/runc\""),
            "{options}"
        );
    }

    #[test]
    fn kubelet_config_fits_cgroup_v1_and_keeps_images() {
        let (layout, network, ports, pki) = fixtures();
        let text = kubelet_config(&layout, &network, &ports, &pki);
        for wanted in [
            "cgroupDriver: cgroupfs",
            "failCgroupV1: false",
            "failSwapOn: false",
            "protectKernelDefaults: false",
            "containerRuntimeEndpoint: unix:///state/local/containerd/containerd.sock",
            "- 10.214.0.10",
            "imageGCHighThresholdPercent: 100",
            "imagefs.available: \"0%\"",
            "clientCAFile: /state/local/pki/ca.crt",
        ] {
            assert!(text.contains(wanted), "{wanted} missing from\n{text}");
        }
        assert!(!text.contains("runtimeCgroups") && !text.contains("kubeletCgroups"));
    }

    #[test]
    fn kube_proxy_skips_conntrack_sysctls_and_route_localnet() {
        let (layout, network, ports, _) = fixtures();
        let text = kube_proxy_config(&layout, &network, &ports, "kindling-node");
        for wanted in [
            "mode: iptables",
            "maxPerCore: 0",
            "localhostNodePorts: false",
            "clusterCIDR: 10.213.0.0/24",
        ] {
            assert!(text.contains(wanted), "{wanted} missing from\n{text}");
        }
    }

    #[test]
    fn network_ranges_avoid_dockers_bridge_and_each_other() {
        let network = LocalNetwork::default();
        for cidr in [&network.pod_cidr, &network.service_cidr] {
            assert!(
                !cidr.starts_with("172.17."),
                "{cidr} collides with Docker's bridge"
            );
        }
        assert_ne!(network.pod_cidr, network.service_cidr);
        let (layout, ..) = fixtures();
        let conflist = cni_conflist(&layout, &network);
        assert!(conflist.contains("\"subnet\": \"10.213.0.0/24\""));
        assert!(conflist.contains("\"type\": \"portmap\""));
        assert!(
            conflist.contains("\"type\": \"firewall\""),
            "pods cannot talk under Docker's FORWARD DROP"
        );
    }

    #[test]
    fn apiserver_and_controller_manager_agree_on_the_service_range() {
        let (layout, network, ports, pki) = fixtures();
        let apiserver = apiserver_args(&layout, &network, &ports, &pki);
        let controller_manager = controller_manager_args(&layout, &network, &ports, &pki);
        let range = format!("--service-cluster-ip-range={}", network.service_cidr);
        assert!(apiserver.contains(&range) && controller_manager.contains(&range));
        assert!(apiserver.contains(&"--advertise-address=10.215.0.1".to_owned()));
        assert!(apiserver.contains(&"--authorization-mode=Node,RBAC".to_owned()));
        let ports_named: Vec<u16> = ports.all().into_iter().map(|(_, port)| port).collect();
        let mut unique = ports_named.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports_named.len(),
            "two components share a port"
        );
    }
}
