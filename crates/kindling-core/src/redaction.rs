//! What kindling feeds the one redactor every text passes
//! ([`kindling_harness::redaction`], re-exported here): the values of every
//! Secret of the namespaces an environment uses (its own and its isolated
//! copies), the tokens it mints, registry credentials, and for each value
//! its base64, URL- and JSON-escaped forms, with `base64(user:password)` of
//! pairs known to go together (a `kubernetes.io/basic-auth` Secret, one with
//! `username` and `password` keys, a Docker config's credentials, a
//! registry's). Values shorter than [`SHORTEST`] bytes are not redacted.
//!
//! **Across processes.** Under nextest the setup runs in one process and
//! the tests in others; no value is written to a file for them. Each
//! process learns what it needs from the cluster itself: the first time it
//! uses a namespace it lists that namespace's Secrets, and it lists them
//! again (a redaction [source](kindling_harness::redaction::add_source))
//! before it writes a failure, a report or artifacts. A token minted by
//! [`crate::Environment::token`], which no Secret holds, is kept in the
//! namespace's Secret [`MINTED_TOKENS_SECRET`] until an hour after it
//! expires, so every process that lists the namespace learns it too. The
//! values so stay where the cluster keeps its other secrets, readable by
//! whoever may read the namespace's Secrets, and leave with the namespace.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

pub use kindling_harness::redaction::{
    Redactions, Redactor, SHORTEST, learn, learn_value, redact, redact_owned, redactor, refresh,
};

/// The Secret of an environment's namespace that holds the tokens kindling
/// minted there, so that every process redacts them.
pub const MINTED_TOKENS_SECRET: &str = "kindling-minted-tokens";

/// How long a minted token is kept in [`MINTED_TOKENS_SECRET`] after it
/// expires: a log written meanwhile may still show it.
const KEPT_AFTER_EXPIRY: i64 = 3600;

const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// The values of `secret` to redact, each labelled `Secret <name> key
/// <key>`: every key but the literals of a [`crate::GeneratedSecret`]
/// (named by its `kindling.dev/not-secret` annotation) and the `namespace` key
/// of a ServiceAccount token Secret; `username` with `password` as a Basic
/// authorization pair; the credentials of a Docker config. `stringData`
/// (in a manifest) counts as data.
pub fn secret_redactions(secret: &Secret) -> Redactions {
    let mut redactions = Redactions::new();
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let kind = secret.type_.as_deref().unwrap_or_default();
    let literals: Vec<&str> = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(crate::environment::NOT_SECRET_ANNOTATION))
        .map(|keys| keys.split(',').collect())
        .unwrap_or_default();
    let mut data: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.as_str(), value.0.as_slice()))
        .collect();
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(key, value.as_bytes());
    }
    for (key, value) in &data {
        if literals.contains(key) || (kind == SERVICE_ACCOUNT_TOKEN && *key == "namespace") {
            continue;
        }
        let label = if name == MINTED_TOKENS_SECRET {
            "a token kindling minted".to_owned()
        } else {
            format!("Secret {name} key {key}")
        };
        redactions.add(value, &label);
        if matches!(*key, ".dockerconfigjson" | ".dockercfg") {
            add_docker_config(&mut redactions, value, name);
        }
    }
    if let (Some(username), Some(password)) = (data.get("username"), data.get("password"))
        && let (Ok(username), Ok(password)) =
            (std::str::from_utf8(username), std::str::from_utf8(password))
    {
        redactions.add_basic_auth(username, password, &format!("Secret {name}"));
    }
    redactions
}

/// The credentials of a Docker config (`{"auths": {registry: {..}}}`, or
/// the registries at the top for `.dockercfg`).
fn add_docker_config(redactions: &mut Redactions, config: &[u8], name: &str) {
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(config) else {
        return;
    };
    let registries = config
        .get("auths")
        .and_then(|auths| auths.as_object())
        .or_else(|| config.as_object());
    for (registry, entry) in registries.into_iter().flatten() {
        let label = format!("Secret {name} registry {registry}");
        let field = |key: &str| entry.get(key).and_then(|value| value.as_str());
        for key in ["password", "auth", "identitytoken", "registrytoken"] {
            if let Some(value) = field(key) {
                redactions.add(value, &format!("{label} {key}"));
            }
        }
        let pair = field("auth")
            .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
            .and_then(|auth| String::from_utf8(auth).ok());
        if let Some((username, password)) = pair.as_deref().and_then(|pair| pair.split_once(':')) {
            redactions.add(password, &format!("{label} password"));
            redactions.add_basic_auth(username, password, &label);
        }
        if let (Some(username), Some(password)) = (field("username"), field("password")) {
            redactions.add_basic_auth(username, password, &label);
        }
    }
}

/// Redacts the values of `secret` from everything this process writes.
pub fn learn_secret(secret: &Secret) {
    learn(secret_redactions(secret));
}

/// Learns the Secrets among `manifests`, before anything is applied.
pub(crate) fn learn_manifests(manifests: &[crate::deploy::Manifest]) {
    let mut redactions = Redactions::new();
    for manifest in manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Secret")
    {
        if let Ok(secret) = serde_json::from_value::<Secret>(manifest.object.clone()) {
            redactions.extend(secret_redactions(&secret));
        }
    }
    learn(redactions);
}

/// Lists the Secrets of `namespace` and learns their values. A list that
/// fails only logs: redaction then knows what it knew.
pub(crate) async fn learn_namespace(client: &Client, namespace: &str) {
    match Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            let mut redactions = Redactions::new();
            for secret in &list.items {
                redactions.extend(secret_redactions(secret));
            }
            learn(redactions);
        }
        Err(error) => tracing::debug!("cannot list the Secrets of `{namespace}`: {error}"),
    }
}

/// Lists the Secrets of `namespace` now, and again whenever the harness
/// refreshes its redaction (before it writes a failure or a report).
pub(crate) async fn watch_namespace(client: &Client, namespace: &str) {
    learn_namespace(client, namespace).await;
    let client = client.clone();
    let watched = namespace.to_owned();
    kindling_harness::redaction::add_source(&format!("Secrets of {namespace}"), move || {
        let client = client.clone();
        let namespace = watched.clone();
        Box::pin(async move { learn_namespace(&client, &namespace).await })
    });
}

/// Learns a token minted for `account` of `namespace` and keeps it in the
/// namespace's [`MINTED_TOKENS_SECRET`] (dropping those an hour past their
/// expiry), so other processes learn it too. Failing to keep it only logs:
/// this process redacts it whatever happens.
pub(crate) async fn remember_token(
    client: &Client,
    namespace: &str,
    account: &str,
    token: &str,
    expires_in: i64,
) {
    learn_value(
        token,
        &format!("token of ServiceAccount {namespace}/{account}"),
    );
    if let Err(error) = keep_token(client, namespace, token, expires_in).await {
        tracing::warn!(
            "cannot keep the token minted for `{namespace}/{account}` in Secret `{MINTED_TOKENS_SECRET}`: other processes of this run will not redact it: {error}"
        );
    }
}

async fn keep_token(
    client: &Client,
    namespace: &str,
    token: &str,
    expires_in: i64,
) -> Result<(), kube::Error> {
    use sha2::Digest as _;
    let now = chrono::Utc::now().timestamp();
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    // `expires-<unix seconds>-<digest>`: old ones are found by name alone.
    let key = format!("expires-{}-{}", now + expires_in, &digest[..16]);
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(MINTED_TOKENS_SECRET).await?;
    if existing.is_none() {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(MINTED_TOKENS_SECRET.to_owned()),
                labels: Some(BTreeMap::from([(
                    crate::deploy::namespace::MANAGED_BY_LABEL.to_owned(),
                    "kindling".to_owned(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                key.clone(),
                ByteString(token.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(()),
            // Another process made it first: add to it.
            Err(kube::Error::Api(response)) if response.code == 409 => {}
            Err(error) => return Err(error),
        }
    }
    let mut data = serde_json::Map::new();
    let expired = existing
        .iter()
        .flat_map(|secret| secret.data.iter().flatten())
        .map(|(key, _)| key)
        .filter(|key| {
            key.strip_prefix("expires-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|seconds| seconds.parse::<i64>().ok())
                .is_some_and(|expires| expires + KEPT_AFTER_EXPIRY < now)
        });
    for key in expired {
        data.insert(key.clone(), serde_json::Value::Null);
    }
    data.insert(
        key,
        base64::engine::general_purpose::STANDARD
            .encode(token)
            .into(),
    );
    // A merge patch adds and removes keys without a read-modify-write race.
    api.patch(
        MINTED_TOKENS_SECRET,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "data": data })),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            type_: Some(kind.to_owned()),
            data: Some(
                data.iter()
                    .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn secret_values_are_replaced_by_name_and_key() {
        let secret = secret(
            "db",
            "Opaque",
            &[("password", "s3cr3t-Pa55"), ("user", "app")],
        );
        let redactor = secret_redactions(&secret).redactor();
        assert_eq!(
            redactor.redact("connecting as app with s3cr3t-Pa55 to db"),
            "connecting as app with <redacted: Secret db key password> to db"
        );
    }

    #[test]
    fn literal_values_of_a_generated_secret_stay_readable() {
        let mut secret = secret(
            "db",
            "Opaque",
            &[
                ("username", "datastorage"),
                ("database", "audit"),
                ("password", "Zq81xPw0"),
            ],
        );
        secret.metadata.annotations = Some(BTreeMap::from([(
            crate::environment::NOT_SECRET_ANNOTATION.to_owned(),
            "username,database".to_owned(),
        )]));
        let redactor = secret_redactions(&secret).redactor();
        assert_eq!(
            redactor.redact("datastorage connects to audit with Zq81xPw0"),
            "datastorage connects to audit with <redacted: Secret db key password>"
        );
        // The literal user name still makes a pair with the password.
        let header = base64::engine::general_purpose::STANDARD.encode("datastorage:Zq81xPw0");
        assert!(
            redactor
                .redact(&format!("Authorization: Basic {header}"))
                .starts_with("Authorization: Basic <redacted: Secret db, as user:password, base64"),
        );
    }

    #[test]
    fn a_basic_auth_secret_is_redacted_as_a_header_and_in_a_url() {
        let mut secret = secret("creds", "kubernetes.io/basic-auth", &[]);
        secret.string_data = Some(BTreeMap::from([
            ("username".to_owned(), "leaky-user".to_owned()),
            ("password".to_owned(), "p@ss w0rd&more".to_owned()),
        ]));
        let redactor = secret_redactions(&secret).redactor();
        let header = base64::engine::general_purpose::STANDARD.encode("leaky-user:p@ss w0rd&more");
        for (text, kept) in [
            (
                format!("Authorization: Basic {header}"),
                "Authorization: Basic ",
            ),
            (
                "https://leaky-user:p%40ss%20w0rd&more@db/".to_owned(),
                "https://<redacted: Secret creds key username>:",
            ),
            (
                r#"{"password":"p@ss w0rd\u0026more"}"#.to_owned(),
                r#"{"password":""#,
            ),
        ] {
            let redacted = redactor.redact(&text);
            assert!(
                redacted.starts_with(&format!("{kept}<redacted: Secret creds")),
                "{text}: {redacted}"
            );
        }
    }

    #[test]
    fn a_service_account_token_secret_keeps_its_namespace_readable() {
        let secret = secret(
            "printer-token",
            SERVICE_ACCOUNT_TOKEN,
            &[
                ("namespace", "orders-1234"),
                ("token", "eyJhbGciOi.payload.sig"),
            ],
        );
        let redactor = secret_redactions(&secret).redactor();
        assert_eq!(
            redactor.redact("namespace orders-1234 token eyJhbGciOi.payload.sig"),
            "namespace orders-1234 token <redacted: Secret printer-token key token>"
        );
    }

    #[test]
    fn docker_config_credentials_are_redacted() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:r3gistry-pw");
        let config = format!(r#"{{"auths":{{"registry.example":{{"auth":"{auth}"}}}}}}"#);
        let secret = secret(
            "pull",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", &config)],
        );
        let redactor = secret_redactions(&secret).redactor();
        assert_eq!(
            redactor.redact("login with r3gistry-pw"),
            "login with <redacted: Secret pull registry registry.example password>"
        );
        assert!(!redactor.redact(&format!("Basic {auth}")).contains(&auth));
    }

    #[test]
    fn secrets_of_manifests_are_learned_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Secret\nmetadata: {name: api}\ndata: {key: bWFuaWZlc3Qtc2VjcmV0LTE=}\nstringData: {other: manifest-secret-2}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {key: manifest-plain-3}\n",
        )
        .unwrap();
        crate::deploy::read_manifests(&[file]).unwrap();
        assert_eq!(
            redact("manifest-secret-1 manifest-secret-2 manifest-plain-3"),
            "<redacted: Secret api key key> <redacted: Secret api key other> manifest-plain-3"
        );
    }

    #[test]
    fn minted_tokens_are_labelled_as_such() {
        let secret = secret(
            MINTED_TOKENS_SECRET,
            "Opaque",
            &[("expires-1-0123456789abcdef", "eyJhbGciOi.minted.sig")],
        );
        let redactor = secret_redactions(&secret).redactor();
        assert_eq!(
            redactor.redact("Bearer eyJhbGciOi.minted.sig"),
            "Bearer <redacted: a token kindling minted>"
        );
    }
}
