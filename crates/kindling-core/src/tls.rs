//! TLS for services a suite deploys (an admission webhook, a TLS API): a
//! certificate authority per environment and serving certificates it signs
//! for `<service>.<namespace>.svc`, delivered as `kubernetes.io/tls`
//! Secrets; the CA fills the `caBundle` of webhook configurations.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

/// Making a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A key or certificate could not be generated or signed.
    #[error("failed to make the {what}")]
    Generate {
        /// What was being made: `CA key`, `CA certificate`, `serving key` or
        /// `serving certificate`.
        what: String,
        /// The certificate library's error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA's key kept in the environment's Secret cannot be parsed back, so
    /// it cannot sign.
    #[error(
        "the certificate authority kept in Secret `{secret}` cannot be read back: delete the Secret and set up again"
    )]
    Unreadable {
        /// The Secret that keeps the CA ([`CA_SECRET`]).
        secret: String,
        /// The certificate library's error.
        #[source]
        source: rcgen::Error,
    },
}

/// A certificate authority: its certificate and key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A serving certificate and its key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ServingCertificate {
    /// The certificate, as PEM, signed by the environment's CA.
    pub cert_pem: String,
    /// The certificate's private key, as PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCertificate")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn generate(what: &str) -> impl Fn(rcgen::Error) -> TlsError + '_ {
    move |source| TlsError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    subject.push(DnType::OrganizationName, "kindling");
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The common name of every environment's CA (the key tells them apart).
const CA_NAME: &str = "kindling environment CA";

impl CertificateAuthority {
    /// A new CA.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(generate("CA key"))?;
        let cert = ca_params(CA_NAME)
            .self_signed(&key)
            .map_err(generate("CA certificate"))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CA kept earlier (by [`CertificateAuthority::cert_pem`] and its key).
    pub(crate) fn from_pem(cert_pem: String, key_pem: String) -> Self {
        CertificateAuthority { cert_pem, key_pem }
    }

    /// The CA's certificate, as PEM: what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate as a webhook's `caBundle` wants it: base64 of the PEM.
    pub fn ca_bundle(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.cert_pem.as_bytes())
    }

    /// A serving certificate for Service `service` of `namespace`, valid
    /// for `<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc`
    /// and `<service>.<namespace>.svc.cluster.local`.
    pub fn serving_certificate(
        &self,
        service: &str,
        namespace: &str,
    ) -> Result<ServingCertificate, TlsError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|source| TlsError::Unreadable {
            secret: CA_SECRET.to_owned(),
            source,
        })?;
        // The issuer's name and key are all signing needs; its name is
        // the same for every CA kindling makes.
        let issuer = Issuer::new(ca_params(CA_NAME), ca_key);
        let names = service_names(service, namespace);
        let mut params =
            CertificateParams::new(names.clone()).map_err(generate("serving certificate"))?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, names[2].clone());
        params.distinguished_name = subject;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(generate("serving key"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(generate("serving certificate"))?;
        Ok(ServingCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The DNS names a Service answers to inside the cluster.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The Secret an environment keeps its CA in.
pub const CA_SECRET: &str = "kindling-ca";

/// The placeholder manifests use for the environment's CA in a `caBundle`.
pub const CA_BUNDLE_PLACEHOLDER: &str = "kindling:ca";

/// A serving certificate an environment makes for one of its Services,
/// delivered as a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, and
/// `ca.crt`) before the first stage, and kept across re-runs.
///
/// ```
/// use kindling::tls::TlsSecret;
///
/// // Secret `authwebhook-tls` for `authwebhook.<namespace>.svc`.
/// let webhook = TlsSecret::for_service("authwebhook");
/// # let _ = webhook;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSecret {
    pub(crate) service: String,
    pub(crate) secret: String,
}

impl TlsSecret {
    /// A certificate for Service `service`, in Secret `<service>-tls`.
    pub fn for_service(service: impl Into<String>) -> Self {
        let service = service.into();
        TlsSecret {
            secret: format!("{service}-tls"),
            service,
        }
    }

    /// The Secret's name, instead of `<service>-tls`.
    pub fn secret_name(mut self, name: impl Into<String>) -> Self {
        self.secret = name.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_certificates_name_the_service_and_chain_to_the_ca() {
        let ca = CertificateAuthority::generate().unwrap();
        let serving = ca.serving_certificate("authwebhook", "suite-1").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(serving.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(ToString::to_string)
            .collect();
        for name in service_names("authwebhook", "suite-1") {
            assert!(
                names.iter().any(|found| found.contains(&name)),
                "{name} not in {names:?}"
            );
        }
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        // The API server checks the signature itself when it calls a webhook.
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert!(!ca.ca_bundle().contains('\n'));
        assert!(
            !format!("{serving:?}").contains("PRIVATE"),
            "keys stay out of Debug"
        );
    }
}
