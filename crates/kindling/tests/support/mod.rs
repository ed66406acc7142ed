//! What kindling's tests and benches share: the harness's fixture runner
//! (over the harness's fixture suites and kindling's), and helpers of
//! kindling's own.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "../../../kindling-harness/tests/support/runner.rs"]
mod runner;

pub use runner::*;

/// The harness's fixture suites, and kindling's own (tests/fixture-suites).
pub const PACKAGES: &[FixturePackage] = &[
    HARNESS_FIXTURES,
    FixturePackage {
        name: "kindling-fixture-suites",
        dir: "crates/kindling/tests/fixture-suites",
        suites: &[
            "environment",
            "stack",
            "stack_twin",
            "stack_third",
            "stack_fourth",
            "tags",
            "secrets",
        ],
        local_provider: true,
    },
];

pub mod bench_targets;
pub mod kind_like;

/// The middle of `values` (the upper one of an even count), as the
/// benches report their repeated measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Builds the Go main package `package` of the module in `module` into a
/// `FROM scratch` image named `name`, with content tags.
pub async fn go_image(
    docker: &bollard::Docker,
    name: &str,
    module: &Path,
    package: &str,
) -> Result<kindling::image::ImageRef, kindling::BoxError> {
    let spec = kindling::image::ImageSpec::go_binary(name, module).go_package(package);
    Ok(kindling::image::Builder::new(docker.clone())
        .policy(kindling::image::TagPolicy::Content)
        .build(&spec)
        .await?
        .image)
}

/// The `kindling` CLI, built into the fixture target directory.
pub fn cli_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        cargo_executable(&["build", "-p", "kindling-cli"], "kindling")
            .unwrap_or_else(|error| panic!("building the kindling CLI failed: {error}"))
    })
}

/// `kindling <args>` with a clean environment.
pub fn cli(args: &[&str]) -> Command {
    let mut command = clean_command(cli_binary());
    command.args(args).env("KINDLING_PROVIDER", "local");
    command
}

/// The local cluster `name` as the variables configure it.
pub fn local_cluster(name: &str) -> kindling::cluster::local::LocalCluster {
    let name: kindling::cluster::ClusterName = name.parse().expect("a valid cluster name");
    kindling::cluster::local::LocalCluster::with_defaults(&name)
        .expect("the KINDLING_LOCAL_* variables are valid")
}

/// An exclusive lock on the local cluster for one test, held while the
/// returned file is open: for tests that stop, restart or tear down the
/// cluster. The tests of one binary run on parallel threads under `cargo
/// test`, where nextest's test groups do not apply.
pub fn cluster_turn() -> File {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-cluster-turn.lock");
    let lock = File::create(&path).expect("local cluster lock file");
    lock.lock().expect("local cluster lock");
    lock
}
