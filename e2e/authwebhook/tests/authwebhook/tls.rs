//! A webhook the API server cannot trust is diagnosed during the setup,
//! and a suite's webhook configurations go with its namespace while the
//! CRDs another namespace still uses stay.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kindling::tls::CertificateAuthority;
use kindling::{Environment, SetupContext, TestContext, TestResult};
use kube::api::{Api, DeleteParams, ListParams};

use crate::remediation;

#[kindling::test(timeout = "300s")]
async fn a_wrong_ca_bundle_fails_the_setup_naming_the_webhook_and_service(
    ctx: TestContext<Environment>,
) -> TestResult {
    // A stack of this test's own whose webhooks trust another CA.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(ctx.unique_name("wrong-ca"));
    std::fs::create_dir_all(&dir)?;
    let stacks = e2e_stacks::authwebhook_service();
    let webhooks =
        std::fs::read_to_string(stacks.dir().join("authwebhook/admission/webhooks.yaml"))?;
    let stranger = CertificateAuthority::generate()?;
    std::fs::write(
        dir.join("admission.yaml"),
        webhooks.replace(
            "caBundle: kindling:ca",
            &format!("caBundle: {}", stranger.ca_bundle()),
        ),
    )?;
    std::fs::write(dir.join("probe.json"), remediation("probe").to_string())?;
    let suite = ctx.unique_name("wrongca");
    let setup = SetupContext::standalone(&suite, &dir);
    let result = Environment::builder(&setup)
        .stack(e2e_stacks::remediation_crds())
        .stack(e2e_stacks::notification_crds())
        .stack(stacks)
        .stage("admission", dir.join("admission.yaml"))
        .stage("probe", dir.join("probe.json"))
        .up()
        .await;

    let client = ctx.client().await?;
    let namespaces = Api::<Namespace>::all(client.clone());
    let made = namespaces
        .list(&ListParams::default().labels(&format!("kindling.dev/suite={suite}")))
        .await?;
    let namespace = made
        .items
        .first()
        .and_then(|namespace| namespace.metadata.name.clone())
        .ok_or("the setup made no namespace")?;
    let error = match result {
        Ok(_) => return Err("a webhook with a wrong caBundle was called".into()),
        Err(error) => error,
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert_eq!(error.phase, "probe", "{text}");
    for part in [
        "admission webhook `rr.mutate.authwebhook.kindling.dev`".to_owned(),
        format!("of Service `{namespace}/authwebhook`"),
        "x509".to_owned(),
        "caBundle: kindling:ca".to_owned(),
    ] {
        assert!(text.contains(&part), "`{part}` missing from: {text}");
    }

    // The artifacts of the failed setup hold no key and no certificate.
    let artifacts = text
        .rsplit("artifacts: ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .map(std::path::PathBuf::from)
        .filter(|dir| dir.is_dir())
        .ok_or_else(|| format!("no artifacts folder named in: {text}"))?;
    let mut files = 0;
    for file in walk(&artifacts)? {
        files += 1;
        let contents = String::from_utf8_lossy(&std::fs::read(&file)?).into_owned();
        for secret in ["PRIVATE KEY", "BEGIN CERTIFICATE", "LS0tLS1CRUdJTi"] {
            assert!(
                !contents.contains(secret),
                "{} holds `{secret}`",
                file.display()
            );
        }
    }
    assert!(files > 0, "{} is empty", artifacts.display());

    // Its namespace goes, and its webhook configurations with it.
    namespaces
        .delete(&namespace, &DeleteParams::background())
        .await?;
    let deleted = kindling::deploy::collect_cluster_garbage(&client).await?;
    let configuration = format!("authwebhook-{namespace}");
    assert!(
        deleted.contains(&format!("MutatingWebhookConfiguration/{configuration}")),
        "{deleted:?}"
    );
    let left = Api::<MutatingWebhookConfiguration>::all(client)
        .get_opt(&configuration)
        .await?;
    assert!(left.is_none_or(|left| left.metadata.deletion_timestamp.is_some()));

    // The CRDs it shared with the suite stay: the suite's namespace uses them.
    for crd in [
        "remediationrequests.remediation.kindling.dev",
        "notificationrequests.notification.kindling.dev",
    ] {
        assert!(
            !deleted.contains(&format!("CustomResourceDefinition/{crd}")),
            "{deleted:?}"
        );
        let kept = Api::<CustomResourceDefinition>::all(ctx.client().await?)
            .get(crd)
            .await?;
        assert!(
            kept.metadata.deletion_timestamp.is_none(),
            "{crd} is being deleted"
        );
        let users = kept.metadata.annotations.unwrap_or_default();
        assert!(
            users.values().any(|user| user == ctx.namespace()),
            "{crd} is not marked as used by {}: {users:?}",
            ctx.namespace()
        );
    }
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}
