//! Certificates and keys of a cluster, generated with rcgen and written
//! with mode 0600 in a 0700 folder: a CA, the API server's serving
//! certificate, client certificates for the admin and each component, the
//! kubelet's serving certificate, the service-account key pair, and etcd's
//! own CA with its serving, peer and API-server client certificates (as
//! kubeadm makes them: a certificate of the cluster CA is no etcd client).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// What the certificates are for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PkiSpec {
    /// The node's name; the kubelet's identity is `system:node:<node>`.
    pub node_name: String,
    /// The node's IP (API server advertise address, kubelet serving address).
    pub node_ip: IpAddr,
    /// The first address of the service range (the `kubernetes` Service).
    pub service_ip: IpAddr,
}

/// A certificate and its key on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate, PEM (`<name>.crt`).
    pub cert: PathBuf,
    /// Its private key, PEM (`<name>.key`).
    pub key: PathBuf,
}

/// Where every file of a cluster's PKI lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// The cluster's CA, which signs every other certificate here.
    pub ca: CertFiles,
    /// The API server's serving certificate, for the `kubernetes` Service
    /// names, the node's name and IP, and loopback.
    pub apiserver: CertFiles,
    /// The API server's client certificate for reaching kubelets.
    pub apiserver_kubelet_client: CertFiles,
    /// The admin's client certificate (group `system:masters`), for the
    /// cluster's kubeconfig.
    pub admin: CertFiles,
    /// The controller manager's client certificate
    /// (`system:kube-controller-manager`).
    pub controller_manager: CertFiles,
    /// The scheduler's client certificate (`system:kube-scheduler`).
    pub scheduler: CertFiles,
    /// kube-proxy's client certificate (`system:kube-proxy`).
    pub kube_proxy: CertFiles,
    /// The kubelet's client certificate, as `system:node:<node>` in group
    /// `system:nodes`.
    pub kubelet_client: CertFiles,
    /// The kubelet's serving certificate, for the node's name and IP, and
    /// loopback.
    pub kubelet_serving: CertFiles,
    /// etcd's CA, which signs etcd's certificates only.
    pub etcd_ca: CertFiles,
    /// etcd's serving certificate, for loopback.
    pub etcd_server: CertFiles,
    /// etcd's peer certificate (server and client), for loopback.
    pub etcd_peer: CertFiles,
    /// The API server's client certificate for etcd.
    pub apiserver_etcd_client: CertFiles,
    /// The private key service-account tokens are signed with (`sa.key`).
    pub service_account_key: PathBuf,
    /// Its public key, which verifies them (`sa.pub`).
    pub service_account_public: PathBuf,
}

impl PkiFiles {
    /// The layout under `dir`.
    pub fn under(dir: &Path) -> Self {
        let pair = |name: &str| CertFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        PkiFiles {
            ca: pair("ca"),
            apiserver: pair("apiserver"),
            apiserver_kubelet_client: pair("apiserver-kubelet-client"),
            admin: pair("admin"),
            controller_manager: pair("controller-manager"),
            scheduler: pair("scheduler"),
            kube_proxy: pair("kube-proxy"),
            kubelet_client: pair("kubelet-client"),
            kubelet_serving: pair("kubelet-serving"),
            etcd_ca: pair("etcd-ca"),
            etcd_server: pair("etcd-server"),
            etcd_peer: pair("etcd-peer"),
            apiserver_etcd_client: pair("apiserver-etcd-client"),
            service_account_key: dir.join("sa.key"),
            service_account_public: dir.join("sa.pub"),
        }
    }

    fn all_paths(&self) -> Vec<&Path> {
        let mut paths = Vec::new();
        for pair in [
            &self.ca,
            &self.apiserver,
            &self.apiserver_kubelet_client,
            &self.admin,
            &self.controller_manager,
            &self.scheduler,
            &self.kube_proxy,
            &self.kubelet_client,
            &self.kubelet_serving,
            &self.etcd_ca,
            &self.etcd_server,
            &self.etcd_peer,
            &self.apiserver_etcd_client,
        ] {
            paths.push(pair.cert.as_path());
            paths.push(pair.key.as_path());
        }
        paths.push(&self.service_account_key);
        paths.push(&self.service_account_public);
        paths
    }
}

/// A certificate signed by the CA: files, common name, organisation,
/// subject alternative names, extended key usage.
type Leaf<'a> = (
    &'a CertFiles,
    &'a str,
    Option<&'a str>,
    Vec<SanType>,
    Vec<ExtendedKeyUsagePurpose>,
);

/// Generating or writing the PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A key or certificate could not be generated or signed.
    #[error("failed to generate the `{what}` certificate")]
    Generate {
        /// What was being made: `ca`, `service-account`, a certificate's common
        /// name, or a DNS name that cannot be a subject alternative name.
        what: String,
        /// The certificate library's error.
        #[source]
        source: rcgen::Error,
    },
    /// Creating the PKI directory or writing one of its files failed.
    #[error("failed to write `{path}`")]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the PKI under `dir`, unless every file is already there and was
/// made for `spec` (then it is kept, so restarting a cluster keeps its
/// identity, and the modes of the folder and files are made private
/// again). A partial set, or one made for another node name or address,
/// is regenerated whole.
pub fn ensure_pki(spec: &PkiSpec, dir: &Path) -> Result<PkiFiles, PkiError> {
    let files = PkiFiles::under(dir);
    private_dir(dir)?;
    let recorded = dir.join("spec.json");
    let made_for: Option<PkiSpec> = std::fs::read(&recorded)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if made_for.as_ref() == Some(spec) && files.all_paths().iter().all(|path| path.is_file()) {
        for path in files.all_paths() {
            set_mode(path)?;
        }
        return Ok(files);
    }
    // Gone before anything is regenerated: a set cut short is never taken
    // for one made for this spec.
    let _ = std::fs::remove_file(&recorded);
    generate(spec, &files)?;
    write(
        &recorded,
        &serde_json::to_string_pretty(spec).expect("a spec serialises"),
    )?;
    Ok(files)
}

/// Generates and writes every key and certificate of `files` for `spec`:
/// the two CAs, the leaves each signs, the service-account key pair.
fn generate(spec: &PkiSpec, files: &PkiFiles) -> Result<(), PkiError> {
    let issuer = new_ca(&files.ca, "kindling-ca")?;
    let etcd_issuer = new_ca(&files.etcd_ca, "kindling-etcd-ca")?;

    let node_san = vec![
        SanType::IpAddress(spec.node_ip),
        dns(&spec.node_name)?,
        SanType::IpAddress("127.0.0.1".parse().expect("loopback")),
        dns("localhost")?,
    ];
    let mut apiserver_sans = vec![
        SanType::IpAddress(spec.service_ip),
        dns("kubernetes")?,
        dns("kubernetes.default")?,
        dns("kubernetes.default.svc")?,
        dns("kubernetes.default.svc.cluster.local")?,
    ];
    apiserver_sans.extend(node_san.clone());
    let loopback = vec![
        SanType::IpAddress("127.0.0.1".parse().expect("loopback")),
        dns("localhost")?,
    ];
    sign_leaves(etcd_leaves(files, loopback), &etcd_issuer)?;

    let node_identity = format!("system:node:{}", spec.node_name);
    sign_leaves(
        cluster_leaves(files, &node_identity, apiserver_sans, node_san),
        &issuer,
    )?;

    let service_account = generate_key("service-account")?;
    write(&files.service_account_key, &service_account.serialize_pem())?;
    write(
        &files.service_account_public,
        &service_account.public_key_pem(),
    )
}

/// The certificates etcd's CA signs: etcd's serving and peer certificates
/// (for the `loopback` names) and the API server's client certificate.
fn etcd_leaves(files: &PkiFiles, loopback: Vec<SanType>) -> [Leaf<'_>; 3] {
    [
        // etcd's gRPC gateway dials its own client port with this
        // certificate, so it is a client certificate too (as kubeadm's).
        (
            &files.etcd_server,
            "kindling-etcd",
            None,
            loopback.clone(),
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        ),
        (
            &files.etcd_peer,
            "kindling-etcd-peer",
            None,
            loopback,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        ),
        (
            &files.apiserver_etcd_client,
            "kube-apiserver-etcd-client",
            None,
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
    ]
}

/// The certificates the cluster's CA signs: the API server's (serving, for
/// `apiserver_sans`, and client), the admin's, each component's, and the
/// kubelet's as `node_identity` (client, and serving for `node_san`).
fn cluster_leaves<'a>(
    files: &'a PkiFiles,
    node_identity: &'a str,
    apiserver_sans: Vec<SanType>,
    node_san: Vec<SanType>,
) -> [Leaf<'a>; 8] {
    [
        (
            &files.apiserver,
            "kube-apiserver",
            None,
            apiserver_sans,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        ),
        (
            &files.apiserver_kubelet_client,
            "kube-apiserver-kubelet-client",
            Some("kindling:apiserver-kubelet-client"),
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.admin,
            "kindling-admin",
            Some("system:masters"),
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.controller_manager,
            "system:kube-controller-manager",
            None,
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.scheduler,
            "system:kube-scheduler",
            None,
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.kube_proxy,
            "system:kube-proxy",
            None,
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.kubelet_client,
            node_identity,
            Some("system:nodes"),
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        ),
        (
            &files.kubelet_serving,
            node_identity,
            Some("system:nodes"),
            node_san,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        ),
    ]
}

/// Makes a self-signed CA named `common_name` into `files`.
fn new_ca(files: &CertFiles, common_name: &str) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = generate_key(common_name)?;
    let mut ca_params = params(common_name, common_name, None, &[])?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = ca_params
        .self_signed(&key)
        .map_err(generate_error(common_name))?;
    write(&files.cert, &cert.pem())?;
    write(&files.key, &key.serialize_pem())?;
    Ok(Issuer::new(ca_params, key))
}

/// Signs each leaf with `issuer` and writes it.
fn sign_leaves<const N: usize>(
    leaves: [Leaf<'_>; N],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(), PkiError> {
    for (target, common_name, organization, sans, usages) in leaves {
        let key = generate_key(common_name)?;
        let mut leaf = params(common_name, common_name, organization, &[])?;
        leaf.subject_alt_names = sans;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = usages;
        let cert = leaf
            .signed_by(&key, issuer)
            .map_err(generate_error(common_name))?;
        write(&target.cert, &cert.pem())?;
        write(&target.key, &key.serialize_pem())?;
    }
    Ok(())
}

fn generate_error(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn generate_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(generate_error(what))
}

fn dns(name: &str) -> Result<SanType, PkiError> {
    name.to_owned()
        .try_into()
        .map(SanType::DnsName)
        .map_err(generate_error(name))
}

fn params(
    what: &str,
    common_name: &str,
    organization: Option<&str>,
    sans: &[String],
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(sans.to_vec()).map_err(generate_error(what))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    params.distinguished_name = name;
    Ok(params)
}

/// Writes `contents` to `path` with mode 0600 (keys and certificates
/// alike), also when the file existed with a wider mode.
fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    kindling_harness::util::write_private(path, contents.as_bytes()).map_err(|source| {
        PkiError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Creates `dir` (and its missing parents) root's only (0700).
fn private_dir(dir: &Path) -> Result<(), PkiError> {
    kindling_harness::util::create_private_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Takes group and other permissions off an existing key or certificate.
fn set_mode(path: &Path) -> Result<(), PkiError> {
    kindling_harness::util::open_private(path, std::fs::OpenOptions::new().read(true))
        .map(drop)
        .map_err(|source| PkiError::Write {
            path: path.to_owned(),
            source,
        })
}

/// A kubeconfig for `user` with certificate files, one cluster and one
/// context, both named `cluster`.
pub fn kubeconfig(
    cluster: &str,
    server: &str,
    ca: &Path,
    user: &str,
    client: &CertFiles,
) -> String {
    use kube::config::{
        AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
    };
    let config = Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: cluster.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority: Some(ca.display().to_string()),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_owned(),
            auth_info: Some(AuthInfo {
                client_certificate: Some(client.cert.display().to_string()),
                client_key: Some(client.key.display().to_string()),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: cluster.to_owned(),
            context: Some(Context {
                cluster: cluster.to_owned(),
                user: Some(user.to_owned()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(cluster.to_owned()),
        ..Kubeconfig::default()
    };
    serde_saphyr::to_string(&config).expect("a kubeconfig of strings serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use x509_parser::prelude::*;

    fn spec() -> PkiSpec {
        PkiSpec {
            node_name: "kindling-node".to_owned(),
            node_ip: "10.215.0.1".parse().unwrap(),
            service_ip: "10.214.0.1".parse().unwrap(),
        }
    }

    fn subject_and_issuer(path: &Path) -> (String, String, Vec<String>, bool) {
        let pem = std::fs::read(path).unwrap();
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|name| match name {
                        GeneralName::IPAddress(bytes) if bytes.len() == 4 => {
                            format!(
                                "IP {}",
                                std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
                            )
                        }
                        GeneralName::DNSName(dns) => format!("DNS {dns}"),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            cert.subject().to_string(),
            cert.issuer().to_string(),
            sans,
            cert.is_ca(),
        )
    }

    #[test]
    fn every_identity_is_signed_by_the_ca_with_the_right_subject() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_pki(&spec(), dir.path()).unwrap();
        let (ca_subject, _, _, is_ca) = subject_and_issuer(&files.ca.cert);
        assert!(is_ca && ca_subject == "CN=kindling-ca");
        let table = [
            (&files.admin, "CN=kindling-admin, O=system:masters"),
            (
                &files.kubelet_client,
                "CN=system:node:kindling-node, O=system:nodes",
            ),
            (&files.kube_proxy, "CN=system:kube-proxy"),
            (
                &files.controller_manager,
                "CN=system:kube-controller-manager",
            ),
            (&files.scheduler, "CN=system:kube-scheduler"),
        ];
        for (pair, expected) in table {
            let (subject, issuer, _, is_ca) = subject_and_issuer(&pair.cert);
            assert_eq!(subject, expected);
            assert_eq!(issuer, ca_subject);
            assert!(!is_ca);
        }
        let (etcd_ca, _, _, is_ca) = subject_and_issuer(&files.etcd_ca.cert);
        assert!(is_ca && etcd_ca == "CN=kindling-etcd-ca");
        for pair in [
            &files.etcd_server,
            &files.etcd_peer,
            &files.apiserver_etcd_client,
        ] {
            let (subject, issuer, _, _) = subject_and_issuer(&pair.cert);
            assert_eq!(issuer, etcd_ca, "{subject} is not signed by etcd's own CA");
        }
        let (_, _, sans, _) = subject_and_issuer(&files.apiserver.cert);
        for wanted in [
            "IP 10.214.0.1",
            "IP 10.215.0.1",
            "IP 127.0.0.1",
            "DNS kubernetes",
            "DNS kubernetes.default.svc.cluster.local",
        ] {
            assert!(
                sans.iter().any(|san| san == wanted),
                "{wanted} missing from {sans:?}"
            );
        }
    }

    #[test]
    fn files_are_private_and_kept_on_a_second_run() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_pki(&spec(), dir.path()).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        for path in files.all_paths() {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
        assert_eq!(mode(dir.path()), 0o700);
        // An older kindling's (or a user's) wider modes are repaired.
        let widen = |path: &Path, bits| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).unwrap()
        };
        widen(&files.ca.key, 0o644);
        widen(dir.path(), 0o755);
        ensure_pki(&spec(), dir.path()).unwrap();
        assert_eq!(mode(&files.ca.key), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        let ca = std::fs::read(&files.ca.cert).unwrap();
        ensure_pki(&spec(), dir.path()).unwrap();
        assert_eq!(
            std::fs::read(&files.ca.cert).unwrap(),
            ca,
            "the CA was regenerated"
        );
        std::fs::remove_file(&files.scheduler.key).unwrap();
        ensure_pki(&spec(), dir.path()).unwrap();
        let regenerated = std::fs::read(&files.ca.cert).unwrap();
        assert_ne!(regenerated, ca, "a partial PKI was kept");
        let moved = PkiSpec {
            node_ip: "10.225.0.1".parse().unwrap(),
            ..spec()
        };
        ensure_pki(&moved, dir.path()).unwrap();
        assert_ne!(
            std::fs::read(&files.ca.cert).unwrap(),
            regenerated,
            "a PKI made for another node address was kept"
        );
    }

    #[test]
    fn kubeconfig_names_the_files() {
        let files = PkiFiles::under(Path::new("/state/pki"));
        let text = kubeconfig(
            "kindling",
            "https://10.215.0.1:6443",
            &files.ca.cert,
            "admin",
            &files.admin,
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).expect("the kubeconfig parses");
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.215.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/state/pki/ca.crt")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_key.as_deref(), Some("/state/pki/admin.key"));
        assert_eq!(parsed.current_context.as_deref(), Some("kindling"));
        assert_eq!(
            parsed.contexts[0].context.as_ref().unwrap().cluster,
            "kindling"
        );
    }
}
