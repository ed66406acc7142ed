//! The local provider on a host that is not disposable, against real
//! components: foreign objects planted first survive `up` and `down`, a
//! route in one of the cluster's ranges stops `up` before anything
//! changes, `down` gives the host back exactly, an unprivileged user
//! reaches neither etcd nor a Secret, names that are not labels are refused
//! before anything is touched, and components see nothing of the caller's
//! environment. Stops and starts the local cluster, so these tests run
//! alone (see .config/nextest.toml).
//!
//! Without what the local provider needs the tests are reported as
//! ignored, and fail when `CI` is set.

#[path = "../../kindling/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, PostParams};

use kindling::cluster::Provider as _;
use kindling::cluster::local::network::{LocalNetwork, NetworkRanges, POD_CIDR_VARIABLE};
use kindling::cluster::local::{ComponentBinaries, LocalCluster, LocalError};
use kindling::{BoxError, Suite};
use support::ensure;

type Outcome = Result<(), BoxError>;

/// Runs a host command, failing with its stderr.
fn host(argv: &[&str]) -> Result<String, BoxError> {
    let output = Command::new(argv[0]).args(&argv[1..]).output()?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Adds a link `name` of its own: a dummy link, or an ifb link where the
/// kernel has no dummy links (as the local provider does).
fn add_link(name: &str) -> Result<(), BoxError> {
    host(&["ip", "link", "add", name, "type", "dummy"])
        .or_else(|_| host(&["ip", "link", "add", name, "type", "ifb"]))?;
    Ok(())
}

/// What `down` must give back exactly: every iptables rule and chain (both
/// families, counters left out), every route, every mount, the kernel
/// settings the kubelet and pod networking change.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    iptables: Vec<String>,
    routes: Vec<String>,
    mounts: Vec<String>,
    sysctls: BTreeMap<String, String>,
}

const COMPARED_SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
];

/// Docker's own objects, which its containers add and remove whenever
/// they start and stop, whatever the cluster does: mounts of its storage,
/// its bridges' routes, its chains, and rules naming an address of one of
/// its networks.
fn dockers(line: &str, subnets: &[ipnet::Ipv4Net]) -> bool {
    [
        "/var/lib/docker/",
        "/run/docker/",
        " dev veth",
        " dev docker0",
        " dev br-",
        "DOCKER",
    ]
    .iter()
    .any(|mark| line.contains(mark))
        || line.split_whitespace().any(|word| {
            let address = word.split('/').next().unwrap_or_default();
            address
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|address| subnets.iter().any(|net| net.contains(&address)))
        })
}

/// The IPv4 subnets of the engine's networks (none without an engine).
fn docker_subnets() -> Vec<ipnet::Ipv4Net> {
    let Ok(ids) = host(&["docker", "network", "ls", "-q"]) else {
        return Vec::new();
    };
    let mut argv = vec![
        "docker",
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    argv.extend(ids.split_whitespace());
    host(&argv)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|subnet| subnet.parse().ok())
        .collect()
}

fn host_state() -> Result<HostState, BoxError> {
    let subnets = docker_subnets();
    let dockers = |line: &str| dockers(line, &subnets);
    let mut iptables = Vec::new();
    for family in ["iptables-save", "ip6tables-save"] {
        for line in host(&[family])?.lines() {
            if line.starts_with('#') {
                continue;
            }
            // `:CHAIN POLICY [packets:bytes]`: the counters change by themselves.
            let line = match line.rfind(" [") {
                Some(at) if line.starts_with(':') => &line[..at],
                _ => line,
            };
            if !dockers(line) {
                iptables.push(format!("{family} {line}"));
            }
        }
    }
    let mut routes = Vec::new();
    for family in ["-4", "-6"] {
        routes.extend(
            host(&["ip", family, "route", "show", "table", "all"])?
                .lines()
                .filter(|line| !dockers(line))
                .map(str::to_owned),
        );
    }
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")?
        .lines()
        .filter(|line| !dockers(line))
        .map(str::to_owned)
        .collect();
    mounts.sort();
    let sysctls = COMPARED_SYSCTLS
        .iter()
        .map(|key| {
            let value = std::fs::read_to_string(Path::new("/proc/sys").join(key))
                .unwrap_or_default()
                .trim()
                .to_owned();
            ((*key).to_owned(), value)
        })
        .collect();
    Ok(HostState {
        iptables,
        routes,
        mounts,
        sysctls,
    })
}

/// What differs between two snapshots, line by line.
fn differences(before: &HostState, after: &HostState) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = |what: &str, a: &[String], b: &[String]| {
        for line in a.iter().filter(|line| !b.contains(line)) {
            out.push(format!("{what} gone: {line}"));
        }
        for line in b.iter().filter(|line| !a.contains(line)) {
            out.push(format!("{what} added: {line}"));
        }
    };
    lines("iptables", &before.iptables, &after.iptables);
    lines("route", &before.routes, &after.routes);
    lines("mount", &before.mounts, &after.mounts);
    for (key, value) in &before.sysctls {
        let now = after.sysctls.get(key).cloned().unwrap_or_default();
        if &now != value {
            out.push(format!("sysctl {key}: {value} before, {now} after"));
        }
    }
    out
}

/// Objects of someone else, planted before `up` and checked after `down`.
struct Foreign;

const FOREIGN_CHAIN: &str = "CNI-foreign";
const FOREIGN_NETNS: &str = "cni-foreign";
const FOREIGN_LINK: &str = "fx-foreign";
const FOREIGN_ROUTE: &str = "10.213.0.0/25";

impl Foreign {
    fn plant() -> Result<Foreign, BoxError> {
        let planted = Foreign;
        planted.remove();
        host(&["iptables", "-N", FOREIGN_CHAIN])?;
        host(&[
            "iptables",
            "-A",
            FOREIGN_CHAIN,
            "-s",
            "192.0.2.1",
            "-j",
            "RETURN",
        ])?;
        host(&["iptables", "-A", "FORWARD", "-j", FOREIGN_CHAIN])?;
        host(&["ip", "netns", "add", FOREIGN_NETNS])?;
        add_link(FOREIGN_LINK)?;
        host(&["ip", "link", "set", FOREIGN_LINK, "up"])?;
        host(&["ip", "route", "add", FOREIGN_ROUTE, "dev", FOREIGN_LINK])?;
        Ok(planted)
    }

    fn survived(&self) -> Result<(), BoxError> {
        let filter = host(&["iptables-save", "-t", "filter"])?;
        ensure(filter.contains(&format!(":{FOREIGN_CHAIN} ")), || {
            format!("the chain {FOREIGN_CHAIN} is gone")
        })?;
        ensure(
            filter.contains(&format!("-A FORWARD -j {FOREIGN_CHAIN}")),
            || format!("the jump to {FOREIGN_CHAIN} is gone"),
        )?;
        ensure(
            filter.contains(&format!("-A {FOREIGN_CHAIN} -s 192.0.2.1/32 -j RETURN")),
            || format!("the rule of {FOREIGN_CHAIN} is gone"),
        )?;
        ensure(Path::new("/run/netns").join(FOREIGN_NETNS).exists(), || {
            format!("the network namespace {FOREIGN_NETNS} is gone")
        })?;
        let routes = host(&["ip", "route", "show", FOREIGN_ROUTE])?;
        ensure(routes.contains(FOREIGN_LINK), || {
            format!("the route {FOREIGN_ROUTE} dev {FOREIGN_LINK} is gone")
        })?;
        Ok(())
    }

    fn remove(&self) {
        let _ = host(&["iptables", "-D", "FORWARD", "-j", FOREIGN_CHAIN]);
        let _ = host(&["iptables", "-F", FOREIGN_CHAIN]);
        let _ = host(&["iptables", "-X", FOREIGN_CHAIN]);
        let _ = host(&["ip", "netns", "delete", FOREIGN_NETNS]);
        let _ = host(&["ip", "link", "delete", FOREIGN_LINK]);
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Ranges away from the planted route and the defaults.
fn other_ranges() -> NetworkRanges {
    NetworkRanges {
        node_ip: "10.225.0.1".parse().expect("an address"),
        pod_cidr: "10.223.0.0/24".parse().expect("a range"),
        service_cidr: "10.224.0.0/24".parse().expect("a range"),
    }
}

#[kindling::test]
async fn foreign_objects_survive_and_down_gives_the_host_back() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = support::local_cluster("kindling");
    cluster.down().await?;
    let foreign = Foreign::plant()?;
    let before = host_state()?;

    match cluster.up().await {
        Err(LocalError::RangeCollision(collision)) => {
            let text = collision.to_string();
            ensure(
                text.contains(&format!("{FOREIGN_ROUTE} dev {FOREIGN_LINK}"))
                    && text.contains(POD_CIDR_VARIABLE)
                    && text.contains("KINDLING_LOCAL_SERVICE_CIDR"),
                || format!("the collision does not name the route and variables: {text}"),
            )?;
        }
        other => return Err(format!("up over a colliding route gave {other:?}").into()),
    }
    let refused = host_state()?;
    let changed = differences(&before, &refused);
    ensure(changed.is_empty(), || {
        format!("the refused up changed the host: {changed:#?}")
    })?;

    let moved = cluster.clone().with_ranges(other_ranges());
    moved
        .up()
        .await
        .map_err(|error| format!("up on other ranges: {error}"))?;
    let network = moved.network().clone();
    let filter = host(&["iptables-save", "-t", "filter"])?;
    ensure(
        filter.contains(&format!(":{} ", network.chain("FWD"))),
        || format!("no chain {} while up", network.chain("FWD")),
    )?;
    foreign.survived()?;
    let report = moved.down_with_report().await?;
    ensure(report.left.is_empty(), || {
        format!("down left: {:#?}", report.left)
    })?;
    foreign.survived()?;
    let after = host_state()?;
    let changed = differences(&before, &after);
    ensure(changed.is_empty(), || {
        format!("after up and down the host differs: {changed:#?}")
    })?;
    drop(foreign);
    Ok(())
}

/// `command` run as `nobody`, with no supplementary groups.
fn as_nobody(argv: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(argv)
        .env_remove("HOME")
        .output()
        .expect("setpriv runs")
}

/// The host's addresses other than loopback and the cluster's node address.
fn other_host_addresses(network: &LocalNetwork) -> Result<Vec<String>, BoxError> {
    let listed: Vec<serde_json::Value> = serde_json::from_str(&host(&["ip", "-4", "-j", "addr"])?)?;
    Ok(listed
        .iter()
        .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|address| address["local"].as_str().map(str::to_owned))
        .filter(|address| address != "127.0.0.1" && address != &network.node_ip.to_string())
        .collect())
}

#[kindling::test]
async fn an_unprivileged_user_reaches_no_secret() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = support::local_cluster("kindling");
    cluster.up().await?;
    let client = cluster.admin_client().await?;
    let namespace = format!("holdout-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    let value = format!("canary-secret-{}", std::process::id());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "canary"},
                "stringData": {"password": value}
            }))?,
        )
        .await?;
    let network = cluster.network().clone();
    let ports = *cluster.ports();
    let mut failures = Vec::new();
    let curl = |url: &str, extra: &[&str]| {
        let mut argv = vec!["curl", "-sS", "-k", "--max-time", "5"];
        argv.extend(extra);
        argv.push(url);
        as_nobody(&argv)
    };
    // etcd: nothing without a client certificate of its own CA, on the
    // client port and on the peer port alike, in clear or over TLS.
    for port in [ports.etcd_client, ports.etcd_peer] {
        for scheme in ["http", "https"] {
            let url = format!("{scheme}://127.0.0.1:{port}/version");
            let output = curl(&url, &[]);
            if output.status.success() {
                failures.push(format!(
                    "nobody got {url}: {}",
                    String::from_utf8_lossy(&output.stdout)
                ));
            }
        }
        let url = format!("https://127.0.0.1:{port}/v3/kv/range");
        let output = curl(
            &url,
            &[
                "-X",
                "POST",
                "-d",
                r#"{"key":"L3JlZ2lzdHJ5L3NlY3JldHMv","range_end":"L3JlZ2lzdHJ5L3NlY3JldHMw"}"#,
            ],
        );
        if output.status.success() {
            failures.push(format!(
                "nobody listed Secrets in etcd at {url}: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
    }
    // The API server: only the node's address, and anonymous requests get
    // nothing but the health endpoints.
    let api = format!("https://{}:{}", network.node_ip, ports.apiserver);
    let ready = curl(&format!("{api}/readyz"), &[]);
    if !String::from_utf8_lossy(&ready.stdout).contains("ok") {
        failures.push(format!(
            "the API server's /readyz did not answer anonymously: {}",
            String::from_utf8_lossy(&ready.stderr)
        ));
    }
    for path in [
        format!("/api/v1/namespaces/{namespace}/secrets/canary"),
        "/api/v1/secrets".to_owned(),
        "/version".to_owned(),
        "/api".to_owned(),
    ] {
        let output = curl(&format!("{api}{path}"), &["-w", "\n%{http_code}"]);
        let text = String::from_utf8_lossy(&output.stdout);
        if !text.trim_end().ends_with("401") || text.contains(&value) {
            failures.push(format!("anonymous {path} answered: {text}"));
        }
    }
    let mut elsewhere = vec!["127.0.0.1".to_owned()];
    elsewhere.extend(other_host_addresses(&network)?);
    for address in &elsewhere {
        let url = format!("https://{address}:{}/readyz", ports.apiserver);
        let output = curl(&url, &[]);
        if output.status.success() {
            failures.push(format!("the API server answers on {url}"));
        }
    }
    // The kubelet: no anonymous access either.
    let kubelet = curl(
        &format!("https://{}:{}/pods", network.node_ip, ports.kubelet),
        &["-w", "\n%{http_code}"],
    );
    let text = String::from_utf8_lossy(&kubelet.stdout);
    if text.contains(&value) || !text.trim_end().ends_with("401") {
        failures.push(format!("anonymous kubelet /pods answered: {text}"));
    }
    // Files: the keys and the component logs are root's.
    let pki = cluster.layout().pki();
    for file in [
        pki.join("ca.key"),
        pki.join("etcd-ca.key"),
        cluster.layout().root.join("logs/etcd.log"),
    ] {
        let output = as_nobody(&["cat", &file.display().to_string()]);
        if output.status.success() {
            failures.push(format!("nobody read {}", file.display()));
        }
    }
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    ensure(failures.is_empty(), || format!("{failures:#?}"))?;
    Ok(())
}

#[kindling::test]
async fn volumes_live_in_a_private_folder_and_a_planted_one_is_refused() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = support::local_cluster("kindling");
    cluster.down().await?;
    let planted = Path::new("/tmp/hostpath_pv");
    let _ = std::fs::remove_file(planted);
    let _ = std::fs::remove_dir(planted);
    let made = as_nobody(&["mkdir", "-m", "0777", &planted.display().to_string()]);
    ensure(made.status.success(), || {
        format!("nobody could not make {}: {made:?}", planted.display())
    })?;
    let refused = cluster.up().await;
    let removed = std::fs::remove_dir(planted);
    match refused {
        Err(LocalError::ForeignVolumes { path, found }) => ensure(
            path == planted && found.contains("owned by uid 65534"),
            || format!("refused naming {} ({found})", path.display()),
        )?,
        other => {
            return Err(format!("up with a planted {} gave {other:?}", planted.display()).into());
        }
    }
    removed?;
    ensure(
        host(&["iptables-save", "-t", "filter"])?
            .lines()
            .all(|line| !line.contains(&cluster.network().chain_prefix)),
        || "the refused up added chains".to_owned(),
    )?;

    cluster.up().await?;
    let volumes = cluster.layout().volumes();
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let metadata = std::fs::metadata(&volumes)?;
    ensure(
        metadata.uid() == 0 && metadata.permissions().mode() & 0o777 == 0o700,
        || format!("{} is not root's 0700", volumes.display()),
    )?;
    let client = cluster.admin_client().await?;
    let namespace = format!("volume-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Mi"}}
                }
            }))?,
        )
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let volume_name = loop {
        let claim = claims.get("data").await?;
        if let Some(name) = claim.spec.and_then(|spec| spec.volume_name) {
            break name;
        }
        ensure(std::time::Instant::now() < deadline, || {
            "the claim was not bound within 60s".to_owned()
        })?;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let volume = Api::<PersistentVolume>::all(client.clone())
        .get(&volume_name)
        .await?;
    let path = volume
        .spec
        .and_then(|spec| spec.host_path)
        .map(|host_path| PathBuf::from(host_path.path))
        .ok_or("the volume has no hostPath")?;
    let resolved = std::fs::canonicalize(&path)?;
    ensure(resolved.starts_with(&volumes), || {
        format!(
            "the volume {} resolves to {}, outside {}",
            path.display(),
            resolved.display(),
            volumes.display()
        )
    })?;
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    Ok(())
}

#[kindling::test]
async fn names_that_are_not_labels_touch_nothing() -> Outcome {
    let _turn = support::cluster_turn();
    let home = tempfile::tempdir()?;
    let long = "a".repeat(64);
    for name in ["/", "..", "../x", "a/b", "", long.as_str()] {
        for command in ["status", "up", "down"] {
            let output = support::cli(&[command, "--cluster", name])
                .env("KINDLING_HOME", home.path())
                .output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            ensure(
                !output.status.success() && stderr.contains(&format!("`{name}`")),
                || format!("`kindling {command} --cluster {name:?}`: {output:?}"),
            )?;
            let output = support::cli(&[command])
                .env("KINDLING_HOME", home.path())
                .env("KINDLING_CLUSTER", name)
                .output()?;
            if !name.is_empty() {
                ensure(!output.status.success(), || {
                    format!("`KINDLING_CLUSTER={name:?} kindling {command}` succeeded")
                })?;
            }
        }
        ensure(std::fs::read_dir(home.path())?.next().is_none(), || {
            format!("a refused name `{name}` left files in KINDLING_HOME")
        })?;
        ensure(
            name.parse::<kindling::cluster::ClusterName>().is_err(),
            || format!("the API took `{name}`"),
        )?;
    }

    // `down` of `kindling` leaves alone the processes and links of
    // `kindling-2`, whose names it prefixes.
    let cluster = support::local_cluster("kindling");
    let other = support::local_cluster("kindling-2");
    let other_root = other.layout().root.clone();
    let other_link = other.network().interface.clone();
    let mut planted = OtherCluster {
        root: other_root.clone(),
        link: other_link.clone(),
        process: None,
    };
    std::fs::create_dir_all(&other_root)?;
    let _ = host(&["ip", "link", "delete", &other_link]);
    add_link(&other_link)?;
    let etcd = cluster.binaries().etcd.clone();
    let process = planted.process.insert(
        Command::new(&etcd)
            .arg(format!("--data-dir={}", other_root.join("etcd").display()))
            .args([
                "--listen-client-urls=http://127.0.0.1:23790",
                "--advertise-client-urls=http://127.0.0.1:23790",
                "--listen-peer-urls=http://127.0.0.1:23800",
                "--initial-advertise-peer-urls=http://127.0.0.1:23800",
                "--initial-cluster=default=http://127.0.0.1:23800",
                "--listen-metrics-urls=",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", 23790)).is_err() {
        ensure(process.try_wait()?.is_none(), || {
            "kindling-2's etcd exited before it listened".to_owned()
        })?;
        ensure(std::time::Instant::now() < deadline, || {
            "kindling-2's etcd did not listen within 30s".to_owned()
        })?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let report = cluster.down_with_report().await?;
    ensure(process.try_wait()?.is_none(), || {
        format!(
            "down of `kindling` stopped kindling-2's etcd: {:?}",
            report.stopped
        )
    })?;
    ensure(
        Path::new("/sys/class/net").join(&other_link).exists(),
        || format!("down of `kindling` removed kindling-2's link {other_link}"),
    )?;
    ensure(other_root.exists(), || {
        "down of `kindling` removed kindling-2's folder".to_owned()
    })?;
    Ok(())
}

/// The planted process, link and folder of a cluster `kindling-2`,
/// removed however the test ends.
struct OtherCluster {
    root: PathBuf,
    link: String,
    process: Option<std::process::Child>,
}

impl Drop for OtherCluster {
    fn drop(&mut self) {
        if let Some(process) = self.process.as_mut() {
            let _ = process.kill();
            let _ = process.wait();
        }
        let _ = host(&["ip", "link", "delete", &self.link]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[kindling::test]
async fn components_see_nothing_of_the_callers_environment() -> Outcome {
    let _turn = support::cluster_turn();
    let cluster = support::local_cluster("kindling");
    cluster.down().await?;
    let canary = format!("canary-{}", std::process::id());
    let output = support::cli(&["up"])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("CI_DEPLOY_TOKEN", &canary)
        .output()?;
    ensure(output.status.success(), || {
        format!(
            "kindling up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let records = cluster.recorded_processes();
    ensure(records.len() == 7, || {
        format!("{} components recorded", records.len())
    })?;
    for record in records {
        let environ = std::fs::read(format!("/proc/{}/environ", record.pid)).map_err(|error| {
            format!(
                "{} (pid {}) exited after `kindling up` ({error}); its log ends:\n{}",
                record.name,
                record.pid,
                kindling::cluster::local::process::log_tail(&record.log, 20)
            )
        })?;
        let text = String::from_utf8_lossy(&environ);
        ensure(
            !text.contains(&canary)
                && !text.contains("HTTPS_PROXY=")
                && !text.contains("https_proxy="),
            || format!("{} sees the caller's environment: {text}", record.name),
        )?;
        ensure(text.contains("NO_PROXY="), || {
            format!("{} has no NO_PROXY: {text}", record.name)
        })?;
    }
    Ok(())
}

#[kindling::test]
async fn a_replaced_binary_is_rebuilt_not_run() -> Outcome {
    let _turn = support::cluster_turn();
    let real = ComponentBinaries::default_cache();
    let scratch = tempfile::tempdir()?;
    let cache = scratch.path();
    // The real cache's folders as hard links (no copy of 500 MB); the
    // replaced binary is a new file, so the real one is not touched.
    let copied = Command::new("cp")
        .arg("-al")
        .arg(real.join("bin"))
        .arg(cache.join("bin"))
        .status()?;
    ensure(copied.success(), || {
        "cp -al of the component cache failed".to_owned()
    })?;
    let binaries = ComponentBinaries::in_cache(cache);
    let ran = cache.join("the-replacement-ran");
    std::fs::remove_file(&binaries.etcd)?;
    std::fs::write(
        &binaries.etcd,
        format!("#!/bin/sh\ntouch '{}'\n", ran.display()),
    )?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&binaries.etcd, std::fs::Permissions::from_mode(0o755))?;
    let said = std::sync::Mutex::new(Vec::new());
    let say = |line: &str| said.lock().expect("not poisoned").push(line.to_owned());
    kindling::cluster::local::components::ensure_built(cache, &say).await?;
    let said = said.into_inner()?;
    ensure(
        said.iter()
            .any(|line| line.contains("does not match the digest") && line.contains("etcd")),
        || format!("nothing said the binary changed: {said:#?}"),
    )?;
    ensure(!ran.exists(), || "the replaced binary was run".to_owned())?;
    ensure(
        kindling::cluster::local::components::verify(&binaries.etcd).is_ok(),
        || "the rebuilt etcd does not verify".to_owned(),
    )?;
    ensure(binaries.first_unverified().is_none(), || {
        format!("after the rebuild: {:?}", binaries.first_unverified())
    })?;
    Ok(())
}

/// `kindling down` while another process holds the cluster's users lock
/// (as an idle test process in an IDE does) says who holds it and, with
/// `KINDLING_LOCK_TIMEOUT=5s`, gives up after 5 s naming it.
#[kindling::test]
async fn down_names_the_lock_holder_and_gives_up_after_the_timeout() -> Outcome {
    let _turn = support::cluster_turn();
    use std::os::unix::process::CommandExt as _;
    let home = tempfile::tempdir()?;
    let locks = home.path().join("locks");
    std::fs::create_dir_all(&locks)?;
    let lock = locks.join("local-lock-probe.users.lock");
    std::fs::write(&lock, "")?;
    let mut holder = Command::new("flock")
        .args(["-o", "-s"])
        .arg(&lock)
        .args(["sleep", "600"])
        .process_group(0)
        .spawn()?;
    let release = |holder: &mut std::process::Child| {
        if let Some(group) = rustix::process::Pid::from_raw(holder.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = holder.wait();
    };
    let outcome = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string("/proc/locks")?
            .lines()
            .any(|line| line.contains(&format!(" {} ", holder.id())))
        {
            ensure(std::time::Instant::now() < deadline, || {
                "flock never took the lock".to_owned()
            })?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut down = support::cli(&["down", "--cluster", "lock-probe"]);
        let started = std::time::Instant::now();
        let output = down
            .env("KINDLING_HOME", home.path())
            .env("KINDLING_LOCK_TIMEOUT", "5s")
            .output()?;
        let waited = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let named = format!("pid {} (`flock -o -s", holder.id());
        ensure(!output.status.success(), || {
            format!("down succeeded: {stderr}")
        })?;
        ensure(
            waited >= std::time::Duration::from_secs(5)
                && waited < std::time::Duration::from_secs(30),
            || format!("down gave up after {waited:?}"),
        )?;
        ensure(
            stderr.contains("waiting to take down cluster `lock-probe`") && stderr.contains(&named),
            || format!("down did not say who holds the lock while waiting: {stderr}"),
        )?;
        ensure(
            stderr.contains("gave up after 5s") && stderr.matches(&named).count() >= 2,
            || format!("down's failure does not name the holder: {stderr}"),
        )?;
        Ok::<(), BoxError>(())
    }
    .await;
    release(&mut holder);
    outcome
}

fn main() -> ExitCode {
    let local: LocalCluster = support::local_cluster("kindling");
    Suite::new().requires(local.requirement()).run()
}
