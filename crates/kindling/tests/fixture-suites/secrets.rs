//! An environment whose workload leaks secrets into its log, as careless
//! services do: the password of a `GeneratedSecret`, a token the setup
//! minted for a ServiceAccount (written into the Deployment's arguments,
//! so no Secret holds it), and the credentials of a
//! `kubernetes.io/basic-auth` Secret as a Basic authorization header, a URL,
//! a JSON body and a query string (`toolbox leak`).
//!
//! `$FIXTURE_LEAK` says when: `setup`, the workload exits 1 and the setup
//! fails with its diagnosis (and artifacts); `test`, it keeps running and
//! each test fails on purpose, logging the values it reads and collecting
//! artifacts. Manifests are written into `$FIXTURE_WORK`. The scenario
//! tests then look for the values in everything the run left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kindling::image::ImageSpec;
use kindling::{
    BoxError, Environment, EnvironmentError, GeneratedSecret, SetupContext, Suite, TestContext,
};

/// The basic-auth Secret's password: every character URL and JSON escape.
const BASIC_PASSWORD: &str = r#"p@ss/w0rd "q" & <more>"#;

fn toolbox_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../fixtures/toolbox")
}

fn accounts() -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: printer}}
---
apiVersion: v1
kind: Secret
metadata: {{name: leaky-basic}}
type: kubernetes.io/basic-auth
stringData:
  username: leaky-user
  password: '{BASIC_PASSWORD}'
"#
    )
}

fn leaker(then: &str, token: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: leaker}}
spec:
  selector: {{matchLabels: {{app: leaker}}}}
  template:
    metadata: {{labels: {{app: leaker}}}}
    spec:
      containers:
        - name: main
          image: kindling:toolbox
          args:
            - leak
            - {then}
            - $(BASIC_USER)
            - $(BASIC_PASSWORD)
            - generated password $(DB_PASSWORD)
            - token {token}
          env:
            - {{name: DB_PASSWORD, valueFrom: {{secretKeyRef: {{name: leaky-db, key: password}}}}}}
            - {{name: BASIC_USER, valueFrom: {{secretKeyRef: {{name: leaky-basic, key: username}}}}}}
            - {{name: BASIC_PASSWORD, valueFrom: {{secretKeyRef: {{name: leaky-basic, key: password}}}}}}
          # The log's tail also becomes the pod's termination message.
          terminationMessagePolicy: FallbackToLogsOnError
          readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"#
    )
}

async fn setup(setup: SetupContext) -> Result<Environment, BoxError> {
    let work = PathBuf::from(std::env::var_os("FIXTURE_WORK").ok_or("FIXTURE_WORK is not set")?);
    let then = match std::env::var("FIXTURE_LEAK").as_deref() {
        Ok("setup") => "crash",
        Ok("test") => "serve",
        other => return Err(format!("FIXTURE_LEAK is `setup` or `test`, not {other:?}").into()),
    };
    std::fs::write(work.join("accounts.yaml"), accounts())?;
    let environment = Environment::builder(&setup)
        .image(ImageSpec::go_binary("toolbox", toolbox_sources()))
        .secret(
            GeneratedSecret::new("leaky-db")
                .literal("username", "app")
                .random("password", 24),
        )
        .stage("accounts", work.join("accounts.yaml"))
        .wait_timeout(Duration::from_secs(90))
        .up()
        .await?;
    let token = setup.phase("token", environment.token("printer")).await?;
    let manifest = work.join("leaker.yaml");
    std::fs::write(&manifest, leaker(then, &token))?;
    setup
        .phase("leaker", async {
            let namespace = environment.namespace().to_owned();
            match environment
                .deploy(&namespace, &[manifest], Duration::from_secs(90))
                .await
            {
                Ok(_) => Ok(()),
                Err(failure) => {
                    let artifacts = setup.artifacts_dir();
                    Arc::new(environment.clone())
                        .collect_artifacts(artifacts.clone())
                        .await;
                    Err(EnvironmentError::WithArtifacts {
                        failure: Box::new(failure),
                        artifacts,
                    })
                }
            }
        })
        .await?;
    Ok(environment)
}

/// Logs what it reads, and fails saying it again.
async fn leaks_what_it_reads(ctx: TestContext<Environment>) -> Result<(), BoxError> {
    let password = ctx.secret("leaky-db", "password").await?;
    let basic = ctx.secret("leaky-basic", "password").await?;
    let header = base64::engine::general_purpose::STANDARD.encode(format!("leaky-user:{basic}"));
    tracing::info!("read {password}; calling with Authorization: Basic {header}");
    Err(format!("failing on purpose with {password}, {basic} and Basic {header}").into())
}

fn main() -> std::process::ExitCode {
    Suite::with_setup(setup)
        .on_failure(Environment::collect_artifacts)
        .test("first::leaks", leaks_what_it_reads)
        .test("second::leaks", leaks_what_it_reads)
        .run()
}
