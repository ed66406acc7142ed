//! What a local cluster is made of: its network, ports and files, and the
//! configuration and command line of each component, rendered from them.
//! Pure functions, so every setting is visible and tested in one place.

use std::path::{Path, PathBuf};

pub use super::network::LocalNetwork;
use crate::pki::PkiFiles;

/// Ports the components listen on; all checked free before `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPorts {
    /// etcd's client port, on loopback, TLS with client certificates.
    pub etcd_client: u16,
    /// etcd's peer port, on loopback, TLS with client certificates.
    pub etcd_peer: u16,
    /// kube-apiserver's secure port, on the node's address only.
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
    /// What `up` changed on the host (settings with their earlier values,
    /// links, routes, chains, cgroups), written before each change and
    /// read by `down` to give the host back exactly.
    pub fn host_record(&self) -> PathBuf {
        self.root.join("host.json")
    }
    /// Where an older kindling recorded the kernel settings it changed.
    pub fn legacy_saved_sysctls(&self) -> PathBuf {
        self.root.join("host-sysctls.json")
    }
    /// The folder PersistentVolumes live in (root-only, 0700).
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
    /// The API server's authentication configuration (anonymous requests
    /// limited to the health endpoints).
    pub fn apiserver_authentication_config(&self) -> PathBuf {
        self.root.join("config/apiserver-authentication.yaml")
    }
    /// Whether `path` lies inside this cluster's own folders: what `down`
    /// may unmount or remove. A path with `..` never does.
    pub fn owns(&self, path: &Path) -> bool {
        let plain = |candidate: &Path| {
            candidate.is_absolute()
                && candidate
                    .components()
                    .all(|part| !matches!(part, std::path::Component::ParentDir))
        };
        plain(path)
            && [&self.root, &self.run]
                .iter()
                .any(|own| plain(own) && own.components().count() > 2 && path.starts_with(own))
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

/// A bridge network on the pod range (named per cluster) with hairpin
/// mode. No masquerading, port mapping or firewall plugin: each of those
/// creates `CNI-*` chains shared with other CNI users of the host (podman,
/// nerdctl); the cluster's own chains (see `host`) accept and masquerade
/// pod traffic instead.
pub fn cni_conflist(layout: &LocalLayout, network: &LocalNetwork) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "{name}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}", "gateway": "{gateway}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}],
        "dataDir": "{state}"
      }}
    }}
  ]
}}
"#,
        name = network.cni_network,
        bridge = network.bridge,
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
cgroupRoot: /{cgroup_root}
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
        cgroup_root = network.cgroup_root,
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

/// etcd as kubeadm runs it: TLS on loopback for clients and peers, and
/// only certificates of its own CA accepted (the cluster CA's admin
/// certificate is not an etcd client). Without fsync: `down` wipes a test
/// cluster's data anyway, so it need not survive a crash of the host, and
/// with fsync an image build or load writing beside it can delay etcd's
/// commits past `etcdserver: request timed out`.
pub fn etcd_args(layout: &LocalLayout, ports: &LocalPorts, pki: &PkiFiles) -> Vec<String> {
    let client_url = format!("https://127.0.0.1:{}", ports.etcd_client);
    let peer_url = format!("https://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=kindling".to_owned(),
        format!("--data-dir={}", layout.etcd_data().display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--cert-file={}", pki.etcd_server.cert.display()),
        format!("--key-file={}", pki.etcd_server.key.display()),
        "--client-cert-auth=true".to_owned(),
        format!("--trusted-ca-file={}", pki.etcd_ca.cert.display()),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=kindling={peer_url}"),
        format!("--peer-cert-file={}", pki.etcd_peer.cert.display()),
        format!("--peer-key-file={}", pki.etcd_peer.key.display()),
        "--peer-client-cert-auth=true".to_owned(),
        format!("--peer-trusted-ca-file={}", pki.etcd_ca.cert.display()),
        "--listen-metrics-urls=".to_owned(),
        "--unsafe-no-fsync=true".to_owned(),
    ]
}

/// The API server's AuthenticationConfiguration: anonymous requests reach
/// only the health endpoints (kubeadm's clusters let them read
/// `system:public-info-viewer`'s paths through RBAC; here nothing else is
/// even authenticated as anonymous).
pub fn apiserver_authentication_config() -> String {
    "apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
"
    .to_owned()
}

/// kube-apiserver: bound to the node's address only (pods reach it there
/// through the `kubernetes` Service, host clients too), etcd over TLS with
/// its own client certificate, Node and RBAC authorization,
/// service-account tokens, the kubelet client identity for logs, exec and
/// port-forward.
pub fn apiserver_args(
    layout: &LocalLayout,
    network: &LocalNetwork,
    ports: &LocalPorts,
    pki: &PkiFiles,
) -> Vec<String> {
    vec![
        format!("--etcd-servers=https://127.0.0.1:{}", ports.etcd_client),
        format!("--etcd-cafile={}", pki.etcd_ca.cert.display()),
        format!(
            "--etcd-certfile={}",
            pki.apiserver_etcd_client.cert.display()
        ),
        format!("--etcd-keyfile={}", pki.apiserver_etcd_client.key.display()),
        format!("--advertise-address={}", network.node_ip),
        format!("--bind-address={}", network.node_ip),
        format!("--secure-port={}", ports.apiserver),
        format!("--service-cluster-ip-range={}", network.service_cidr),
        "--authorization-mode=Node,RBAC".to_owned(),
        format!(
            "--authentication-config={}",
            layout.apiserver_authentication_config().display()
        ),
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
        let network = LocalNetwork::new(
            &"local".parse().expect("a cluster name"),
            &crate::network::NetworkRanges::default(),
        );
        (layout, network, LocalPorts::default(), pki)
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
            "cgroupRoot: /kindling-local",
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
    fn pod_networking_creates_no_chains_shared_with_other_cni_users() {
        let (layout, network, ..) = fixtures();
        let conflist = cni_conflist(&layout, &network);
        let parsed: serde_json::Value = serde_json::from_str(&conflist).expect("JSON");
        assert_eq!(parsed["name"], "kindling-local");
        let plugins = parsed["plugins"].as_array().expect("plugins");
        assert_eq!(plugins.len(), 1, "{conflist}");
        assert_eq!(plugins[0]["type"], "bridge");
        assert_eq!(plugins[0]["bridge"], network.bridge.as_str());
        assert_eq!(plugins[0]["ipMasq"], false, "masquerade makes CNI-* chains");
        assert_eq!(
            plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.213.0.0/24"
        );
    }

    #[test]
    fn etcd_answers_only_its_own_cas_client_certificates_on_loopback() {
        let (layout, network, ports, pki) = fixtures();
        let etcd = etcd_args(&layout, &ports, &pki);
        for wanted in [
            "--listen-client-urls=https://127.0.0.1:2379",
            "--listen-peer-urls=https://127.0.0.1:2380",
            "--client-cert-auth=true",
            "--peer-client-cert-auth=true",
            "--trusted-ca-file=/state/local/pki/etcd-ca.crt",
            "--peer-trusted-ca-file=/state/local/pki/etcd-ca.crt",
        ] {
            assert!(
                etcd.contains(&wanted.to_owned()),
                "{wanted} missing from {etcd:?}"
            );
        }
        assert!(!etcd.iter().any(|arg| arg.contains("http://")), "{etcd:?}");
        let apiserver = apiserver_args(&layout, &network, &ports, &pki);
        for wanted in [
            "--etcd-servers=https://127.0.0.1:2379",
            "--etcd-cafile=/state/local/pki/etcd-ca.crt",
            "--etcd-certfile=/state/local/pki/apiserver-etcd-client.crt",
            "--bind-address=10.215.0.1",
            "--authentication-config=/state/local/config/apiserver-authentication.yaml",
        ] {
            assert!(
                apiserver.contains(&wanted.to_owned()),
                "{wanted} missing from {apiserver:?}"
            );
        }
        assert!(!apiserver.iter().any(|arg| arg.contains("0.0.0.0")));
        let authentication = apiserver_authentication_config();
        assert!(
            authentication.contains("- path: /readyz"),
            "{authentication}"
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
