//! A webhook the API server cannot trust is diagnosed during the setup,
//! and a suite's webhook configurations go with its namespace.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
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
    Ok(())
}
