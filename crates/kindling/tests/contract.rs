//! kindling's contract with a suite linked with it, tested from outside
//! (the harness's own is `kindling-harness`'s `tests/contract.rs`): its
//! variables are checked when any such suite starts, the tag policy applies
//! to every build, and the benches name only tests and files that exist.
//!
//! The tag policies need a Docker engine: without one they are reported as
//! ignored (skipped, never passed), and fail when `CI` is set.

mod support;

use kindling::{BoxError, Requirement};
use support::*;

type Outcome = Result<(), BoxError>;

/// Runs a test that blocks (nested cargo runs) off the async runtime.
async fn blocking(test: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(test).await?
}

#[kindling::test]
async fn kindlings_variables_are_checked_by_every_suite_linked_with_it() -> Outcome {
    blocking(|| {
        // kindling's variables come from its extension, registered before
        // `main`: a suite linked with kindling checks them before any test
        // or setup, naming the variable and what it accepts.
        let scratch = Scratch::new();
        let manifests = scratch.root.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let manifests = manifests.to_str().expect("UTF-8 path").to_owned();
        let cases = [
            (
                "KINDLING_TAG_POLICY",
                "newest",
                "invalid value `newest` in KINDLING_TAG_POLICY: expected one of `content`, `unique`, `fixed`",
            ),
            (
                "KINDLING_PROVIDER",
                "minikube",
                "invalid value `minikube` in KINDLING_PROVIDER: expected one of `local`, `kind`, `existing`",
            ),
            (
                "KINDLING_CLUSTER",
                "../x",
                "KINDLING_CLUSTER",
            ),
        ];
        for (variable, value, expected) in cases {
            for args in [&["--list", "--format", "terse"][..], &[][..]] {
                let ran = run_binary(
                    &scratch,
                    "environment",
                    args,
                    &[(variable, value), ("FIXTURE_MANIFESTS", &manifests)],
                );
                ensure(ran.code == Some(2) && ran.stdout.is_empty(), || ran.text())?;
                ensure(
                    ran.stderr.contains(expected) && !ran.stderr.contains("panicked"),
                    || ran.text(),
                )?;
            }
        }
        Ok(())
    })
    .await
}

#[kindling::test(requires = Requirement::docker())]
async fn tag_policies_apply_to_every_build() -> Outcome {
    blocking(|| {
    let reference = |env: &[(&str, &str)]| -> Result<String, BoxError> {
        let scratch = Scratch::new();
        let report = scratch.root.path().join("reference");
        let report_path = report.display().to_string();
        let mut env = env.to_vec();
        env.push(("FIXTURE_REPORT", report_path.as_str()));
        let ran = run_binary(&scratch, "tags", &[], &env);
        ensure(ran.code == Some(0), || ran.text())?;
        Ok(std::fs::read_to_string(&report)?)
    };
    let content = reference(&[])?;
    ensure(
        content.starts_with("localhost/kindling/fixture-tags:c-"),
        || content.clone(),
    )?;
    let first = reference(&[("KINDLING_TAG_POLICY", "unique")])?;
    let second = reference(&[("KINDLING_TAG_POLICY", "unique")])?;
    ensure(
        first.starts_with("localhost/kindling/fixture-tags:fixture-tags-") && first != second,
        || format!("unique tags: {first} then {second}"),
    )?;
    let tag = second.rsplit(':').next().unwrap_or_default().to_owned();
    let fixed = reference(&[
        ("KINDLING_TAG_POLICY", "fixed"),
        ("KINDLING_IMAGE_TAG", &tag),
    ])?;
    ensure(fixed == second, || format!("fixed `{tag}` gave {fixed}"))?;

    let scratch = Scratch::new();
    let ran = run_binary(
        &scratch,
        "tags",
        &[],
        &[
            ("KINDLING_TAG_POLICY", "fixed"),
            ("KINDLING_IMAGE_TAG", "never-built"),
        ],
    );
    ensure(ran.code == Some(101), || ran.text())?;
    ensure(
        ran.stdout.contains("image `localhost/kindling/fixture-tags:never-built` (KINDLING_TAG_POLICY=fixed) is not in the local engine"),
        || ran.text(),
    )?;
    let ran = run_binary(&scratch, "tags", &[], &[("KINDLING_TAG_POLICY", "fixed")]);
    ensure(
        ran.stdout
            .contains("KINDLING_TAG_POLICY=fixed needs KINDLING_IMAGE_TAG"),
        || ran.text(),
    )?;
    Ok(())
    })
    .await
}

/// Every suite test and file a bench runs still exists: each suite's own
/// `--list` names the test, and each path is in the workspace.
#[kindling::test]
async fn the_benches_name_tests_and_files_that_exist() -> Outcome {
    blocking(|| {
        use support::bench_targets::{PATHS, SUITE_TESTS};
        let missing_paths: Vec<&str> = PATHS
            .iter()
            .copied()
            .filter(|path| !workspace_root().join(path).exists())
            .collect();
        ensure(missing_paths.is_empty(), || {
            format!("benches read paths that do not exist: {missing_paths:?}")
        })?;
        for named in SUITE_TESTS {
            let binary = if named.package.starts_with("e2e-") {
                cargo_executable(&["test", "--no-run", "-p", named.package], named.target)?
            } else {
                fixture(named.target)
            };
            let listed = clean_command(&binary)
                .args(["--list", "--format", "terse"])
                .output()?;
            let listing = String::from_utf8_lossy(&listed.stdout);
            ensure(
                listing
                    .lines()
                    .any(|line| line == format!("{}: test", named.test)),
                || {
                    format!(
                        "a bench runs `{}` of {} (`{}`), which its list does not have:\n{listing}",
                        named.test, named.package, named.target
                    )
                },
            )?;
        }
        Ok(())
    })
    .await
}

kindling::main!();
