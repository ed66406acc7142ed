//! What the API server says when it cannot call an admission webhook,
//! read into which webhook, which Service and why, with what to do: the
//! usual causes are a `caBundle` that does not hold the CA of the Service's
//! certificate, and a webhook whose pods are not serving.

/// An admission webhook the API server could not call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFailure {
    /// The webhook's name, as its configuration gives it.
    pub webhook: String,
    /// The URL it called: `https://<service>.<namespace>.svc:<port><path>`.
    pub url: String,
    /// The Service, as `<namespace>/<name>`, when the URL names one.
    pub service: Option<String>,
    /// The API server's own words for the failure.
    pub cause: String,
}

impl WebhookFailure {
    /// Reads an API server message such as `Internal error occurred: failed
    /// calling webhook "a.b.dev": failed to call webhook: Post
    /// "https://svc.ns.svc:443/mutate?timeout=10s": tls: failed to verify
    /// certificate: x509: certificate signed by unknown authority`.
    pub fn parse(message: &str) -> Option<WebhookFailure> {
        let rest = &message[message.find("failed calling webhook \"")? + 24..];
        let webhook = &rest[..rest.find('"')?];
        let after = &rest[webhook.len() + 1..];
        let url_start = after.find("\"https://").map(|at| at + 1)?;
        let url = &after[url_start..url_start + after[url_start..].find('"')?];
        let cause = after[url_start + url.len() + 1..]
            .trim_start_matches(':')
            .trim()
            .to_owned();
        let host = url
            .trim_start_matches("https://")
            .split(['/', ':'])
            .next()?;
        let service = host
            .strip_suffix(".svc")
            .and_then(|name| name.split_once('.'))
            .map(|(name, namespace)| format!("{namespace}/{name}"));
        Some(WebhookFailure {
            webhook: webhook.to_owned(),
            url: url.split('?').next().unwrap_or(url).to_owned(),
            service,
            cause,
        })
    }

    /// Whether the webhook's Service did not answer at all, which right
    /// after its pods became ready is only the Service's endpoints and the
    /// node's proxy rules catching up.
    pub fn is_unreachable(&self) -> bool {
        let cause = self.cause.to_ascii_lowercase();
        [
            "connection refused",
            "no endpoints",
            "i/o timeout",
            "context deadline",
        ]
        .iter()
        .any(|sign| cause.contains(sign))
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        let cause = self.cause.to_ascii_lowercase();
        if cause.contains("x509") || cause.contains("certificate") {
            "the API server does not trust the webhook's certificate: its `caBundle` must hold the CA that signed the Service's certificate; use `caBundle: kindling:ca` with `EnvironmentBuilder::tls(TlsSecret::for_service(..))`"
        } else if self.is_unreachable() {
            "the webhook's pods do not answer: apply its configuration in a stage after the stage that starts them, and check their logs"
        } else {
            "check the webhook's logs and its configuration"
        }
    }
}

impl std::fmt::Display for WebhookFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "admission webhook `{}` ", self.webhook)?;
        if let Some(service) = &self.service {
            write!(f, "of Service `{service}` ")?;
        }
        write!(
            f,
            "could not be called at {}: {}\n  {}",
            self.url,
            self.cause,
            self.hint()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_certificate_names_webhook_service_and_the_fix() {
        let message = r#"Internal error occurred: failed calling webhook "rr.authwebhook.kindling.dev": failed to call webhook: Post "https://authwebhook.suite-1.svc:443/mutate?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority"#;
        let failure = WebhookFailure::parse(message).unwrap();
        assert_eq!(failure.webhook, "rr.authwebhook.kindling.dev");
        assert_eq!(failure.url, "https://authwebhook.suite-1.svc:443/mutate");
        assert_eq!(failure.service.as_deref(), Some("suite-1/authwebhook"));
        assert!(
            failure
                .cause
                .ends_with("x509: certificate signed by unknown authority"),
            "{failure:?}"
        );
        let text = failure.to_string();
        assert!(text.contains("caBundle: kindling:ca"), "{text}");
        assert!(WebhookFailure::parse("the object is invalid").is_none());
    }

    #[test]
    fn a_webhook_that_does_not_answer_says_so() {
        let message = r#"Internal error occurred: failed calling webhook "nr.x.dev": failed to call webhook: Post "https://hook.ns.svc:443/validate?timeout=10s": dial tcp 10.214.0.9:443: connect: connection refused"#;
        let failure = WebhookFailure::parse(message).unwrap();
        assert!(failure.hint().contains("pods do not answer"), "{failure}");
    }
}
