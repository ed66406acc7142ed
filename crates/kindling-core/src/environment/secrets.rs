//! Secrets an environment generates (database credentials and the like):
//! made once per environment, kept across re-runs (a database initialised
//! with a password keeps it), never recorded in kindling's state files.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::deploy::apply::FIELD_MANAGER;

/// The keys of a generated Secret whose values are literals of the suite's
/// source, not secrets: artifacts show them as they are.
pub const NOT_SECRET_ANNOTATION: &str = "kindling.dev/not-secret";

/// A value of a [`GeneratedSecret`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Value {
    Literal(String),
    /// Random letters and digits, this many.
    Random(usize),
}

/// A Secret the environment creates in its namespace before the first
/// stage: literal values and random ones, generated the first time and
/// kept while the Secret exists. Pods read it through `secretKeyRef`;
/// tests through [`Environment::secret`](crate::Environment::secret) (`ctx.secret(..)`).
///
/// ```
/// use kindling::GeneratedSecret;
///
/// let credentials = GeneratedSecret::new("postgres-credentials")
///     .literal("username", "datastorage")
///     .random("password", 32);
/// # let _ = credentials;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedSecret {
    name: String,
    values: Vec<(String, Value)>,
}

impl GeneratedSecret {
    /// A Secret named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        GeneratedSecret {
            name: name.into(),
            values: Vec::new(),
        }
    }

    /// A key with this value.
    pub fn literal(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.push((key.into(), Value::Literal(value.into())));
        self
    }

    /// A key with `length` random letters and digits, made once.
    pub fn random(mut self, key: impl Into<String>, length: usize) -> Self {
        self.values.push((key.into(), Value::Random(length)));
        self
    }

    /// The Secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A Secret could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} Secret `{namespace}/{name}`")]
pub struct SecretError {
    /// What was being done: `read` or `write`.
    pub action: &'static str,
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The API client's error.
    #[source]
    pub source: kube::Error,
}

fn random_text(length: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut text = String::with_capacity(length);
    while text.len() < length {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            // 248 is the largest multiple of 62 below 256: no bias.
            if *byte < 248 && text.len() < length {
                text.push(ALPHABET[usize::from(*byte) % ALPHABET.len()] as char);
            }
        }
    }
    text
}

/// Creates each Secret in `namespace`, or completes one that exists:
/// values already there are kept, missing keys generated. A Secret that
/// holds every key is left untouched. Returns the names it wrote.
pub(crate) async fn ensure(
    client: &Client,
    namespace: &str,
    secrets: &[GeneratedSecret],
    labels: &BTreeMap<String, String>,
) -> Result<Vec<String>, SecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut written = Vec::new();
    for secret in secrets {
        let error = |action| {
            let name = secret.name.clone();
            move |source| SecretError {
                action,
                namespace: namespace.to_owned(),
                name,
                source,
            }
        };
        let literals: Vec<&str> = secret
            .values
            .iter()
            .filter(|(_, value)| matches!(value, Value::Literal(_)))
            .map(|(key, _)| key.as_str())
            .collect();
        let literals = literals.join(",");
        let existing = api.get_opt(&secret.name).await.map_err(error("read"))?;
        let marked = existing
            .as_ref()
            .and_then(|found| found.metadata.annotations.as_ref())
            .and_then(|annotations| annotations.get(NOT_SECRET_ANNOTATION))
            .is_some_and(|keys| *keys == literals);
        let held = existing.and_then(|found| found.data).unwrap_or_default();
        if marked && secret.values.iter().all(|(key, _)| held.contains_key(key)) {
            continue;
        }
        let mut data = BTreeMap::new();
        for (key, value) in &secret.values {
            let bytes = match (held.get(key), value) {
                (Some(kept), _) => kept.clone(),
                (None, Value::Literal(text)) => ByteString(text.clone().into_bytes()),
                (None, Value::Random(length)) => ByteString(random_text(*length).into_bytes()),
            };
            data.insert(key.clone(), bytes);
        }
        let object = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret.name.clone()),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels.clone()),
                annotations: Some(BTreeMap::from([(
                    NOT_SECRET_ANNOTATION.to_owned(),
                    literals,
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Default::default()
        };
        api.patch(
            &secret.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(error("write"))?;
        written.push(secret.name.clone());
    }
    Ok(written)
}

/// The environment's CA, kept in Secret [`crate::tls::CA_SECRET`] of
/// `namespace` (made the first time), and each TLS Secret signed by it:
/// kept while it exists and was signed by this CA, made otherwise. None
/// when `tls` is empty.
pub(crate) async fn ensure_tls(
    client: &Client,
    namespace: &str,
    tls: &[crate::tls::TlsSecret],
    labels: &BTreeMap<String, String>,
) -> Result<Option<crate::tls::CertificateAuthority>, super::EnvironmentError> {
    use crate::tls::{CA_SECRET, CertificateAuthority};
    if tls.is_empty() {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |name: &str| {
        let api = api.clone();
        let name = name.to_owned();
        async move {
            api.get_opt(&name).await.map_err(|source| {
                Box::new(SecretError {
                    action: "read",
                    namespace: namespace.to_owned(),
                    name,
                    source,
                })
            })
        }
    };
    let text = |secret: &Option<Secret>, key: &str| {
        secret
            .as_ref()
            .and_then(|secret| secret.data.as_ref())
            .and_then(|data| data.get(key))
            .map(|value| String::from_utf8_lossy(&value.0).into_owned())
    };
    let kept = read(CA_SECRET).await?;
    let ca = match (text(&kept, "tls.crt"), text(&kept, "tls.key")) {
        (Some(cert), Some(key)) => CertificateAuthority::from_pem(cert, key),
        _ => {
            let ca = CertificateAuthority::generate().map_err(super::EnvironmentError::from)?;
            write_tls(
                &api,
                namespace,
                CA_SECRET,
                labels,
                ca.cert_pem(),
                ca.key_pem(),
                None,
            )
            .await?;
            ca
        }
    };
    for wanted in tls {
        let existing = read(&wanted.secret).await?;
        if text(&existing, "ca.crt").as_deref() == Some(ca.cert_pem()) {
            continue;
        }
        let serving = ca
            .serving_certificate(&wanted.service, namespace)
            .map_err(super::EnvironmentError::from)?;
        write_tls(
            &api,
            namespace,
            &wanted.secret,
            labels,
            &serving.cert_pem,
            &serving.key_pem,
            Some(ca.cert_pem()),
        )
        .await?;
    }
    Ok(Some(ca))
}

/// Writes a `kubernetes.io/tls` Secret.
async fn write_tls(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    cert: &str,
    key: &str,
    ca: Option<&str>,
) -> Result<(), Box<SecretError>> {
    let mut data = BTreeMap::from([
        ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
        ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
    ]);
    if let Some(ca) = ca {
        data.insert("ca.crt".to_owned(), ByteString(ca.as_bytes().to_vec()));
    }
    let object = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map(drop)
    .map_err(|source| {
        Box::new(SecretError {
            action: "write",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_the_length_and_alphabet_and_differ() {
        let one = random_text(40);
        assert_eq!(one.len(), 40);
        assert!(one.chars().all(|c| c.is_ascii_alphanumeric()), "{one}");
        assert_ne!(one, random_text(40));
    }
}
