//! Identities and secrets for tests: a token minted for a ServiceAccount
//! of the suite (TokenRequest), so a test calls an authenticated service
//! as that identity, and the values of the environment's Secrets.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use super::{Environment, KubeError};

/// How long a minted token is valid.
const TOKEN_SECONDS: i64 = 3600;

/// A token or Secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The TokenRequest for the ServiceAccount failed.
    #[error(
        "cannot mint a token for ServiceAccount `{namespace}/{account}`: check that the manifests define it"
    )]
    Token {
        /// The environment's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        account: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// The TokenRequest answered without a token.
    #[error("the API server minted no token for ServiceAccount `{namespace}/{account}`")]
    NoToken {
        /// The environment's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        account: String,
    },
    /// The Secret could not be read.
    #[error("cannot read Secret `{namespace}/{name}`")]
    ReadSecret {
        /// The environment's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// The Secret has no such key.
    #[error("Secret `{namespace}/{name}` has no key `{key}` (it has: {})", if keys.is_empty() { "none".to_owned() } else { keys.join(", ") })]
    NoKey {
        /// The environment's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key asked for.
        key: String,
        /// The keys it has.
        keys: Vec<String>,
    },
}

impl Environment {
    /// A token (valid an hour) for the ServiceAccount `account` of the
    /// suite's namespace, minted through the TokenRequest API: a test calls
    /// a service that authenticates with TokenReview as that identity. It is
    /// redacted from everything kindling writes, in every process of the
    /// run (it is kept in the namespace's Secret
    /// [`crate::redaction::MINTED_TOKENS_SECRET`] for them).
    pub async fn token(&self, account: &str) -> Result<String, KubeError> {
        let client = self.client().await?;
        let api: Api<ServiceAccount> = Api::namespaced(client, &self.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let minted = api
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|source| CredentialError::Token {
                namespace: self.namespace.clone(),
                account: account.to_owned(),
                source,
            })?;
        let token = minted
            .status
            .map(|status| status.token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| CredentialError::NoToken {
                namespace: self.namespace.clone(),
                account: account.to_owned(),
            })?;
        crate::redaction::remember_token(
            &self.client().await?,
            &self.namespace,
            account,
            &token,
            TOKEN_SECONDS,
        )
        .await;
        Ok(token)
    }

    /// The value of `key` in Secret `name` of the suite's namespace (one of
    /// the environment's generated secrets, for example).
    pub async fn secret(&self, name: &str, key: &str) -> Result<String, KubeError> {
        let client = self.client().await?;
        let secret = Api::<Secret>::namespaced(client, &self.namespace)
            .get(name)
            .await
            .map_err(|source| CredentialError::ReadSecret {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            })?;
        crate::redaction::learn_secret(&secret);
        let data = secret.data.unwrap_or_default();
        match data.get(key) {
            Some(value) => Ok(String::from_utf8_lossy(&value.0).into_owned()),
            None => Err(CredentialError::NoKey {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
                keys: data.keys().cloned().collect(),
            }
            .into()),
        }
    }
}

impl Environment {
    /// A client that acts as the ServiceAccount `account` of the suite's
    /// namespace (a token from [`Environment::token`]): what the cluster
    /// allows and admission webhooks see is that identity's.
    pub async fn client_as(&self, account: &str) -> Result<kube::Client, KubeError> {
        let token = self.token(account).await?;
        let mut config = crate::kubeconfig::config(&self.kubeconfig, Some(&self.context)).await?;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        Ok(crate::kubeconfig::client_from(config, &self.kubeconfig)?)
    }

    /// [`Environment::objects`] as the ServiceAccount `account`.
    pub async fn objects_as(
        &self,
        account: &str,
        api_version: &str,
        kind: &str,
    ) -> Result<kube::Api<kube::api::DynamicObject>, KubeError> {
        let resource = self.resource(api_version, kind).await?;
        Ok(kube::Api::namespaced_with(
            self.client_as(account).await?,
            &self.namespace,
            &resource,
        ))
    }
}
