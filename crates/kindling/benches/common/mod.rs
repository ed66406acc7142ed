//! What the benches of whole E2E suites share: building a suite's binary,
//! running one of its tests with a state directory of the bench's own,
//! reading the setup it recorded, and removing images so a setup is cold.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
use kindling::BoxError;
use kindling::cluster::local::LocalCluster;

use crate::support::bench_targets::SuiteTest;
use crate::support::{cargo_executable, clean_command, workspace_root};

/// An E2E suite of the workspace: its package, test target and one test.
pub struct SuiteUnderBench {
    pub package: &'static str,
    pub target: &'static str,
    pub test: &'static str,
    binary: PathBuf,
}

impl SuiteUnderBench {
    /// Builds the suite's test binary into the fixture target directory.
    pub fn build(suite: SuiteTest) -> Result<Self, BoxError> {
        let binary = cargo_executable(&["test", "--no-run", "-p", suite.package], suite.target)?;
        Ok(SuiteUnderBench {
            package: suite.package,
            target: suite.target,
            test: suite.test,
            binary,
        })
    }

    /// One run of the suite's test with its state in `state`: seconds from
    /// process start to exit.
    pub fn run_one(&self, state: &Path) -> Result<f64, BoxError> {
        let started = Instant::now();
        let package_dir = workspace_root()
            .join("e2e")
            .join(self.package.trim_start_matches("e2e-"));
        let output = clean_command(&self.binary)
            .current_dir(package_dir)
            .args(["--exact", self.test])
            .env("KINDLING_STATE_DIR", state)
            .env("KINDLING_PROVIDER", "local")
            .env("KINDLING_PROGRESS", "none")
            .output()?;
        let seconds = started.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.contains("1 passed") {
            return Err(format!(
                "{} did not pass {}:\n{stdout}{}",
                self.package,
                self.test,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(seconds)
    }

    /// The setup the suite recorded in `state`.
    pub fn recorded(&self, state: &Path) -> Result<serde_json::Value, BoxError> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            state.join(format!("{}.json", self.target)),
        )?)?)
    }

    /// How long the recorded setup took, start to finish.
    pub fn setup_seconds(&self, state: &Path) -> Result<f64, BoxError> {
        let record = self.recorded(state)?;
        let at = |key: &str| -> Result<chrono::DateTime<chrono::FixedOffset>, BoxError> {
            Ok(chrono::DateTime::parse_from_rfc3339(
                record[key].as_str().ok_or("no time recorded")?,
            )?)
        };
        Ok((at("finished_at")? - at("started_at")?).as_seconds_f64())
    }

    /// Seconds of the recorded setup's phase `name` (0 when it had none).
    pub fn phase(&self, state: &Path, name: &str) -> f64 {
        self.recorded(state)
            .ok()
            .and_then(|record| {
                record["phases"]
                    .as_array()?
                    .iter()
                    .filter(|phase| phase["name"] == name)
                    .filter_map(|phase| phase["seconds"].as_f64())
                    .reduce(f64::max)
            })
            .unwrap_or_default()
    }
}

/// Removes every tag of `repository` from the local engine.
pub async fn remove_images(
    docker: &bollard::Docker,
    repository: &str,
) -> Result<Vec<String>, BoxError> {
    let images = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    let mut removed = Vec::new();
    for image in images {
        for tag in image
            .repo_tags
            .iter()
            .filter(|tag| tag.starts_with(&format!("{repository}:")))
        {
            docker
                .remove_image(
                    tag,
                    Some(RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await?;
            removed.push(tag.clone());
        }
    }
    Ok(removed)
}

/// Removes kindling's images `names` from the local cluster's node.
pub async fn remove_from_node(cluster: &LocalCluster, names: &[&str]) -> Result<(), BoxError> {
    let store = cluster.node_store();
    let held: Vec<String> = store
        .list()
        .await?
        .into_iter()
        .map(|image| image.reference)
        .filter(|reference| {
            names
                .iter()
                .any(|name| reference.starts_with(&format!("localhost/kindling/{name}:")))
        })
        .collect();
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    store.remove(&held).await?;
    Ok(())
}
