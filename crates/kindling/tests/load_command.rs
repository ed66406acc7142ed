//! `kindling load` and the layer-level transfer behind it, against a real
//! Docker engine: into two kind-like node containers (real containerd,
//! found by kind's labels), beside the real pinned `kind load
//! docker-image` on the same nodes, and into the local cluster, where a
//! pod runs what was loaded.
//!
//! Without Docker, the pinned kind (`bash fixtures/kind/build.sh`) or what
//! the local provider needs, the tests that need them are reported as
//! ignored, and fail when `CI` is set.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use bollard::Docker;
use k8s_openapi::api::core::v1::Pod;
use kindling::cluster::Provider as _;
use kindling::image::{Builder, ImageSpec, Loader};
use kindling::{BoxError, Requirement, Suite};
use kube::api::{Api, DeleteParams, PostParams};
use support::kind_like::{
    KindLikeCluster, data_image, kind_wrapper, pinned_kind, references_held, tag_image,
};
use support::{Ran, ensure};

type Outcome = Result<(), BoxError>;

async fn docker() -> Result<Docker, BoxError> {
    Ok(kindling::docker::connect().await?)
}

/// A cluster name unique to this test process (`kt-` for CI's cleanup).
fn cluster_name(test: &str) -> String {
    format!("kt-{test}-{}", std::process::id())
}

/// `kindling load <args>`, as a user runs it.
fn kindling_load(args: &[&str]) -> Ran {
    let mut command = support::cli(&["load"]);
    command.args(args);
    Ran::from(command.output().expect("the kindling CLI runs"))
}

/// The output's indented lines under node `node`.
fn node_section(ran: &Ran, node: &str) -> String {
    let header = format!("node `{node}`:");
    ran.stdout
        .lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[kindling::test(requires = Requirement::docker())]
async fn skipped_on_a_second_run_and_retagged_when_only_the_name_is_new() -> Outcome {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("cli"), 1).await?;
    let dir = tempfile::tempdir()?;
    let first = format!("localhost/load-cli:{}", std::process::id());
    data_image(&docker, dir.path(), 11, 4, &first).await?;

    let ran = kindling_load(&[&first, "--provider", "kind", "--cluster", &cluster.name]);
    ensure(ran.code == Some(0), || ran.text())?;
    for node in &cluster.node_names {
        let section = node_section(&ran, node);
        ensure(section.contains(&format!("sent `{first}`")), || {
            format!("node {node} was not sent the image:\n{}", ran.text())
        })?;
    }

    let again = kindling_load(&[&first, "--provider", "kind", "--cluster", &cluster.name]);
    ensure(again.code == Some(0), || again.text())?;
    for node in &cluster.node_names {
        let section = node_section(&again, node);
        ensure(
            section.contains(&format!("skipped `{first}` (present)"))
                && !section.contains("sent `"),
            || format!("node {node} was not skipped:\n{}", again.text()),
        )?;
    }
    ensure(again.stdout.contains("0.0 MB sent"), || again.text())?;

    let renamed = format!("{first}-renamed");
    tag_image(&docker, &first, &renamed).await?;
    let retag = kindling_load(&[&renamed, "--provider", "kind", "--cluster", &cluster.name]);
    ensure(retag.code == Some(0), || retag.text())?;
    for node in &cluster.node_names {
        let section = node_section(&retag, node);
        ensure(
            section.contains(&format!("re-tagged `{renamed}`")) && !section.contains("sent `"),
            || format!("node {node} was not re-tagged:\n{}", retag.text()),
        )?;
    }
    let held = references_held(&cluster.stores().await?, "localhost/load-cli:").await?;
    ensure(
        held.iter()
            .all(|node| node == &vec![first.clone(), renamed.clone()]),
        || format!("the nodes hold {held:?}"),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn a_missing_image_or_cluster_fails_naming_it() -> Outcome {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("bad"), 0).await?;
    let missing = kindling_load(&[
        "localhost/never-built:1",
        "--provider",
        "kind",
        "--cluster",
        &cluster.name,
    ]);
    ensure(
        missing.code == Some(1)
            && missing
                .stderr
                .contains("image `localhost/never-built:1` is not in the local engine"),
        || missing.text(),
    )?;
    let dir = tempfile::tempdir()?;
    let image = format!("localhost/load-bad:{}", std::process::id());
    data_image(&docker, dir.path(), 12, 1, &image).await?;
    let nowhere = kindling_load(&[
        &image,
        "--provider",
        "kind",
        "--cluster",
        "kt-no-such-cluster",
    ]);
    ensure(
        nowhere.code == Some(1) && nowhere.stderr.contains("kt-no-such-cluster"),
        || nowhere.text(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn all_platforms_sends_the_whole_archive_as_kind_does() -> Outcome {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("whole"), 0).await?;
    let dir = tempfile::tempdir()?;
    let image = format!("localhost/load-whole:{}", std::process::id());
    data_image(&docker, dir.path(), 16, 2, &image).await?;
    let ran = kindling_load(&[
        &image,
        "--all-platforms",
        "--provider",
        "kind",
        "--cluster",
        &cluster.name,
    ]);
    ensure(
        ran.code == Some(0) && ran.stdout.contains("whole archive"),
        || ran.text(),
    )?;
    let held = references_held(&cluster.stores().await?, &image).await?;
    ensure(held == vec![vec![image.clone()]], || {
        format!("the node holds {held:?}")
    })?;
    Ok(())
}

/// A rebuilt image on the same base: the nodes get its new layer only.
#[kindling::test(requires = Requirement::docker())]
async fn a_rebuilt_image_sends_only_its_new_layers() -> Outcome {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("layers"), 1).await?;
    let stores = cluster.stores().await?;
    let dir = tempfile::tempdir()?;
    let base = format!("localhost/load-base:{}", std::process::id());
    data_image(&docker, &dir.path().join("base"), 13, 30, &base).await?;
    let layered = |version: &str, megabytes: usize| -> std::io::Result<std::path::PathBuf> {
        let context = dir.path().join(version);
        support::kind_like::write_data_image(&context, 20 + megabytes as u64, megabytes, version)?;
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {base}\nCOPY data /top-data\nCOPY marker /marker\n"),
        )?;
        Ok(context)
    };
    let builder = Builder::new(docker.clone());
    let v1 = builder
        .build(&ImageSpec::new("load-layers", layered("v1", 2)?))
        .await?
        .image;
    let loader = Loader::new(docker.clone());
    let first = loader.load(std::slice::from_ref(&v1), &stores).await?;
    ensure(
        first.nodes.iter().all(|node| node.bytes > 30_000_000),
        || format!("the first load did not send the base: {first:?}"),
    )?;

    let v2 = builder
        .build(&ImageSpec::new("load-layers", layered("v2", 3)?))
        .await?
        .image;
    let second = loader.load(std::slice::from_ref(&v2), &stores).await?;
    // The new layers: 3 MB of data and the marker; the base's two are held.
    let limit = 3 * 1024 * 1024 + 1_000_000;
    for node in &second.nodes {
        ensure(
            node.imported == [v2.reference().to_string()]
                && node.bytes <= limit
                && node.layers_sent == 2
                && node.layers_skipped == 2
                // The engine here is Debian's Docker on overlay2.
                && node.from_engine_storage,
            || format!("node {} got more than the new layers: {node:?}", node.node),
        )?;
    }
    support::kind_like::ensure_nodes_hold(&stores, &v2).await?;
    Ok(())
}

/// The same images loaded by the real `kind load docker-image` and by
/// `kindling load` into the same nodes end up under the same references.
#[kindling::test(requires = Requirement::docker(), requires = pinned_kind_requirement())]
async fn kind_load_and_kindling_load_leave_the_same_references() -> Outcome {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("vskind"), 1).await?;
    let stores = cluster.stores().await?;
    let dir = tempfile::tempdir()?;
    let tag = std::process::id();
    let images = [
        format!("localhost/load-vs-kind:a{tag}"),
        format!("localhost/load-vs-kind:b{tag}"),
    ];
    data_image(&docker, &dir.path().join("a"), 14, 3, &images[0]).await?;
    data_image(&docker, &dir.path().join("b"), 15, 3, &images[1]).await?;

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let kind = kind_wrapper(dir.path(), &home, &dir.path().join("kubeconfig"))?;
    let by_kind = std::process::Command::new(&kind)
        .args(["load", "docker-image", "--name", &cluster.name])
        .args(&images)
        .output()?;
    let by_kind = Ran::from(by_kind);
    ensure(by_kind.code == Some(0), || by_kind.text())?;
    let after_kind = references_held(&stores, "localhost/load-vs-kind:").await?;

    for store in &stores {
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        store.remove(&refs).await?;
    }
    let ours = kindling_load(&[
        &images[0],
        &images[1],
        "--provider",
        "kind",
        "--cluster",
        &cluster.name,
    ]);
    ensure(ours.code == Some(0), || ours.text())?;
    let after_ours = references_held(&stores, "localhost/load-vs-kind:").await?;
    let mut expected = images.to_vec();
    expected.sort();
    ensure(
        after_kind == after_ours && after_ours.iter().all(|node| node == &expected),
        || format!("kind left {after_kind:?}, kindling {after_ours:?}"),
    )?;
    Ok(())
}

/// `kindling load --provider local`, twice with a rebuilt top layer, then
/// a pod on the local cluster runs the loaded image.
#[kindling::test(requires = Requirement::docker(), requires = support::local_cluster("kindling").requirement())]
async fn a_pod_on_the_local_cluster_runs_the_loaded_image() -> Outcome {
    let docker = docker().await?;
    let cluster = support::local_cluster("kindling");
    cluster.up().await?;
    let toolbox = Builder::new(docker.clone())
        .build(&ImageSpec::go_binary(
            "toolbox",
            support::workspace_root().join("fixtures/toolbox"),
        ))
        .await?
        .image;
    let dir = tempfile::tempdir()?;
    let reference = |version: &str| format!("localhost/load-runs:{version}-{}", std::process::id());
    // Content of this run only: the local node keeps earlier runs' images.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    for version in ["v1", "v2"] {
        let context = dir.path().join(version);
        std::fs::create_dir_all(&context)?;
        std::fs::write(
            context.join("marker"),
            format!("{version} {}", run.as_nanos()),
        )?;
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {}\nCOPY marker /marker\n", toolbox.reference()),
        )?;
        let built = Builder::new(docker.clone())
            .build(&ImageSpec::new("load-runs", &context))
            .await?;
        tag_image(
            &docker,
            built.image.reference().as_str(),
            &reference(version),
        )
        .await?;
        let ran = kindling_load(&[&reference(version), "--provider", "local"]);
        ensure(ran.code == Some(0), || ran.text())?;
        if version == "v2" {
            // Only the marker's layer is new: the toolbox binary is held.
            ensure(ran.stdout.contains("(1 layer sent, "), || {
                format!("the rebuilt image was sent whole:\n{}", ran.text())
            })?;
        }
    }

    let client = cluster.admin_client().await?;
    let pods = Api::<Pod>::namespaced(client, "default");
    let name = format!("load-runs-{}", std::process::id());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": reference("v2"),
                "imagePullPolicy": "Never",
                "args": ["succeed"],
            }],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let phase = loop {
        let phase = pods
            .get(&name)
            .await?
            .status
            .and_then(|status| status.phase);
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed"))
            || std::time::Instant::now() > deadline
        {
            break phase;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = pods.delete(&name, &DeleteParams::default()).await;
    ensure(phase.as_deref() == Some("Succeeded"), || {
        format!("the pod of the loaded image ended {phase:?}")
    })?;
    Ok(())
}

/// The pinned kind the comparison with `kind load` runs.
fn pinned_kind_requirement() -> Requirement {
    Requirement::file(
        pinned_kind(),
        "build the pinned kind with `bash fixtures/kind/build.sh`",
    )
}

fn main() -> ExitCode {
    Suite::new().run()
}
