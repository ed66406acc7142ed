//! The cold setups of the suites that deploy the DataStorage stack beside
//! their own service, with the local cluster already up, printed as
//! `bench: <suite>_cold_setup_s = <value> s`: nothing of the suite in the
//! node, its services and DataStorage not built, PostgreSQL and Redis in
//! the local engine (as after a pull). Each setup is the suite's whole
//! environment in a new namespace, from process start to ready.
//!
//! Run with `cargo bench -p kindling --bench suites`.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use common::{SuiteUnderBench, remove_from_node, remove_images};
use kindling::BoxError;
use kindling::cluster::Provider as _;
use support::bench_targets::{
    AUTHWEBHOOK_MUTATION, GATEWAY_INTAKE, NOTIFICATION_DELIVERY, SuiteTest,
};

/// A suite, one fast test of it, the images its setup builds, and the
/// stages to show.
struct ColdSuite {
    suite: SuiteTest,
    images: &'static [&'static str],
    stages: &'static [&'static str],
}

const SUITES: &[ColdSuite] = &[
    ColdSuite {
        suite: GATEWAY_INTAKE,
        images: &["gateway", "datastorage"],
        stages: &["database", "migrations", "datastorage", "gateway"],
    },
    ColdSuite {
        suite: NOTIFICATION_DELIVERY,
        images: &["notification", "mock-receiver", "datastorage"],
        stages: &["database", "migrations", "datastorage", "notification"],
    },
    ColdSuite {
        suite: AUTHWEBHOOK_MUTATION,
        images: &["authwebhook", "datastorage"],
        stages: &[
            "database",
            "migrations",
            "datastorage",
            "authwebhook",
            "admission",
        ],
    },
];

fn main() -> Result<(), BoxError> {
    let cluster = support::local_cluster("kindling");
    if let Err(reason) = cluster.requirement().check() {
        println!("bench: skipped, {reason}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cluster.up())?;
    for cold in SUITES {
        let suite = SuiteUnderBench::build(cold.suite)?;
        runtime.block_on(async {
            let docker = kindling::docker::connect().await?;
            for image in cold.images {
                remove_images(&docker, &format!("localhost/kindling/{image}")).await?;
            }
            let mut in_node = cold.images.to_vec();
            in_node.extend(["postgres", "redis"]);
            remove_from_node(&cluster, &in_node).await?;
            Ok::<_, BoxError>(())
        })?;
        let state = tempfile::tempdir()?;
        suite.run_one(state.path())?;
        let phases: Vec<String> = ["build", "images"]
            .iter()
            .chain(cold.stages.iter())
            .map(|phase| format!("{phase} {:.1} s", suite.phase(state.path(), phase)))
            .collect();
        println!(
            "bench: {}_cold_setup_s = {:.1} s ({})",
            cold.suite.target,
            suite.setup_seconds(state.path())?,
            phases.join(", ")
        );
    }
    Ok(())
}
