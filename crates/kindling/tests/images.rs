//! Images against a real Docker engine and real containerd in kind-like
//! node containers: builds return exact references, content tags, loads
//! stream only what nodes lack, and verification is loud.
//!
//! Without a Docker engine these tests are reported as ignored (skipped),
//! and fail when `CI` is set.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use bollard::Docker;
use kindling::image::{
    BuildError, Builder, ContextError, ImageError, ImageRef, ImageSpec, LoadError, Loader,
};
use kindling::{Requirement, Suite};
use support::ensure;
use support::kind_like::{KindLikeCluster, ensure_nodes_hold, write_data_image};

async fn docker() -> Result<Docker, kindling::BoxError> {
    Ok(kindling::docker::connect().await?)
}

/// A cluster name unique to this test process.
fn cluster_name(test: &str) -> String {
    format!("kt-{test}-{}", std::process::id())
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[kindling::test(requires = Requirement::docker())]
async fn build_then_load_into_two_nodes_holds_exact_reference() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("load"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 1, 4, "v1")?;
    let built = Builder::new(docker.clone())
        .build(&ImageSpec::new("load-exact", &context))
        .await?;
    let image = built.image;
    ensure(
        image
            .reference()
            .as_str()
            .starts_with("localhost/kindling/load-exact:c-"),
        || format!("unexpected reference {}", image.reference()),
    )?;
    let stores = cluster.stores().await?;
    ensure(stores.len() == 2, || {
        format!("{} nodes discovered", stores.len())
    })?;
    let report = Loader::new(docker.clone())
        .load(std::slice::from_ref(&image), &stores)
        .await?;
    for node in &report.nodes {
        ensure(node.imported == [image.reference().to_string()], || {
            format!("{node:?}")
        })?;
    }
    ensure_nodes_hold(&stores, &image).await?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn unchanged_inputs_neither_rebuild_nor_stream() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("warm"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 2, 4, "v1")?;
    let builder = Builder::new(docker.clone());
    let spec = ImageSpec::new("warm", &context);
    let first = builder.build(&spec).await?;
    let second = builder.build(&spec).await?;
    ensure(!second.built && second.image == first.image, || {
        format!("rebuilt: {} then {}", first.image, second.image)
    })?;
    let stores = cluster.stores().await?;
    let loader = Loader::new(docker.clone());
    let cold = loader
        .load(std::slice::from_ref(&first.image), &stores)
        .await?;
    ensure(cold.bytes_streamed() > 0, || {
        "nothing streamed on the first load".to_owned()
    })?;
    let warm = loader
        .load(std::slice::from_ref(&second.image), &stores)
        .await?;
    ensure(warm.bytes_streamed() == 0, || {
        format!(
            "{} bytes streamed on an unchanged load",
            warm.bytes_streamed()
        )
    })?;
    ensure(
        warm.nodes
            .iter()
            .all(|node| node.present.len() == 1 && node.imported.is_empty()),
        || format!("{warm:?}"),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn changed_source_gives_a_new_content_tag_that_gets_loaded() -> Result<(), kindling::BoxError>
{
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("change"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 3, 2, "v1")?;
    let builder = Builder::new(docker.clone());
    let spec = ImageSpec::new("change", &context);
    let before = builder.build(&spec).await?.image;
    let stores = cluster.stores().await?;
    let loader = Loader::new(docker.clone());
    loader.load(std::slice::from_ref(&before), &stores).await?;
    std::fs::write(context.join("marker"), "v2")?;
    let after = builder.build(&spec).await?;
    ensure(after.image.reference() != before.reference(), || {
        format!("{} did not get a new tag", after.image)
    })?;
    let report = loader
        .load(std::slice::from_ref(&after.image), &stores)
        .await?;
    ensure(
        report
            .nodes
            .iter()
            .all(|node| node.imported == [after.image.reference().to_string()]),
        || format!("{report:?}"),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn content_tag_covers_outside_dockerfile_build_args_and_dockerignore()
-> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 4, 1, "v1")?;
    std::fs::remove_file(context.join("Dockerfile"))?;
    std::fs::write(context.join(".dockerignore"), "notes.txt\n")?;
    std::fs::write(context.join("notes.txt"), "ignored")?;
    let outside = dir.path().join("docker/app.Dockerfile");
    std::fs::create_dir_all(outside.parent().unwrap())?;
    std::fs::write(
        &outside,
        "FROM scratch\nARG FLAVOUR\nCOPY data /data\nCOPY marker /marker\n",
    )?;
    let builder = Builder::new(docker.clone());
    let spec = ImageSpec::new("tagging", &context)
        .dockerfile(&outside)
        .build_arg("FLAVOUR", "a");
    let base = builder.build(&spec).await?.image;
    std::fs::write(context.join("notes.txt"), "still ignored")?;
    let ignored_change = builder.build(&spec).await?;
    ensure(
        !ignored_change.built && ignored_change.image == base,
        || "an ignored file changed the tag".to_owned(),
    )?;
    let other_arg = builder
        .build(&spec.clone().build_arg("FLAVOUR", "b"))
        .await?
        .image;
    ensure(other_arg.reference() != base.reference(), || {
        "a build argument did not change the tag".to_owned()
    })?;
    std::fs::write(
        &outside,
        "FROM scratch\nARG FLAVOUR\nCOPY marker /marker\nCOPY data /data\n",
    )?;
    let other_dockerfile = builder.build(&spec).await?.image;
    ensure(other_dockerfile.reference() != base.reference(), || {
        "a Dockerfile outside the context did not change the tag".to_owned()
    })?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn node_holding_the_id_under_another_name_is_tagged_without_streaming()
-> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("retag"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 5, 2, "v1")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("retag", &context))
        .await?
        .image;
    let stores = cluster.stores().await?;
    let loader = Loader::new(docker.clone());
    loader.load(std::slice::from_ref(&image), &stores).await?;
    let alias = format!("localhost/kindling/retag-alias:{}", std::process::id());
    let status = std::process::Command::new("docker")
        .args(["tag", image.reference().as_str(), &alias])
        .status()?;
    ensure(status.success(), || "docker tag failed".to_owned())?;
    let aliased = ImageRef::existing(&docker, "retag-alias", &alias).await?;
    ensure(aliased.id() == image.id(), || {
        "alias has another ID".to_owned()
    })?;
    let report = loader.load(std::slice::from_ref(&aliased), &stores).await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", &alias])
        .output();
    let report = report?;
    ensure(report.bytes_streamed() == 0, || {
        format!("{} bytes streamed for a re-tag", report.bytes_streamed())
    })?;
    ensure(
        report
            .nodes
            .iter()
            .all(|node| node.tagged == [aliased.reference().to_string()]),
        || format!("{report:?}"),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn verification_catches_a_reference_a_node_lacks() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("verify"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 6, 1, "v1")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("verify", &context))
        .await?
        .image;
    let stores = cluster.stores().await?;
    let loader = Loader::new(docker.clone());
    loader
        .load(std::slice::from_ref(&image), &stores[..1])
        .await?;
    let error = loader
        .verify(std::slice::from_ref(&image), &stores)
        .await
        .err()
        .ok_or("verification passed although the worker holds nothing")?;
    let text = error.to_string();
    ensure(
        matches!(error, LoadError::Missing { ref node, .. } if node == stores[1].name()),
        || text.clone(),
    )?;
    ensure(
        text.contains(image.reference().as_str()) && text.contains("it holds: no images"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn external_image_missing_fails_clearly() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let error = ImageRef::external(&docker, "database", "registry.example.invalid/postgres:16")
        .await
        .err()
        .ok_or("a missing external image was accepted")?;
    let text = error.to_string();
    ensure(matches!(error, ImageError::NotLocal { .. }), || {
        text.clone()
    })?;
    ensure(
        text.contains("`registry.example.invalid/postgres:16` is not in the local engine")
            && text.contains("docker pull"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn failed_build_shows_the_failing_step_and_log_tail() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let dir = scratch();
    std::fs::write(dir.path().join("present"), "here")?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY present /present\nCOPY absent /absent\n",
    )?;
    let error = Builder::new(docker)
        .build(&ImageSpec::new("broken", dir.path()))
        .await
        .err()
        .ok_or("a broken build succeeded")?;
    let text = error.to_string();
    let BuildError::Failed { step, tail, .. } = &error else {
        return Err(format!("unexpected error: {text}").into());
    };
    ensure(
        step.as_deref()
            .is_some_and(|s| s.contains("COPY absent /absent")),
        || text.clone(),
    )?;
    ensure(tail.contains("COPY present /present"), || text.clone())?;
    ensure(
        text.contains("image `broken` failed to build at `Step 3/3 : COPY absent /absent`"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn missing_dockerfile_or_context_names_the_path() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let builder = Builder::new(docker);
    let dir = scratch();
    let missing = dir.path().join("no-such-context");
    std::fs::write(dir.path().join("Dockerfile.x"), "FROM scratch\n")?;
    let error = builder
        .build(&ImageSpec::new("ghost", &missing).dockerfile(dir.path().join("Dockerfile.x")))
        .await
        .err()
        .ok_or("a missing context was accepted")?;
    ensure(
        matches!(&error, BuildError::Context { source, .. } if matches!(source.as_ref(), ContextError::MissingContext { path } if *path == missing)),
        || format!("{error:?}"),
    )?;
    ensure(
        support::error_text(&error).contains(&missing.display().to_string()),
        || support::error_text(&error),
    )?;

    let context = dir.path().join("context");
    std::fs::create_dir_all(&context)?;
    let error = builder
        .build(&ImageSpec::new("ghost", &context))
        .await
        .err()
        .ok_or("a missing Dockerfile was accepted")?;
    let expected = context.join("Dockerfile");
    ensure(
        matches!(&error, BuildError::MissingDockerfile { path, .. } if *path == expected),
        || format!("{error:?}"),
    )?;
    ensure(
        error.to_string().contains(&expected.display().to_string()),
        || error.to_string(),
    )?;
    Ok(())
}

/// Large enough that holding the archive in memory would show; sparse, so
/// it takes no disk on the host.
const LARGE_CONTEXT_MB: u64 = 400;

#[kindling::test(requires = Requirement::docker())]
async fn a_large_context_streams_to_the_engine() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let dir = scratch();
    std::fs::File::create(dir.path().join("large"))?.set_len(LARGE_CONTEXT_MB << 20)?;
    // A new content tag every run, so the image is built, not found.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    std::fs::write(dir.path().join("marker"), now.as_nanos().to_string())?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY marker /marker\n",
    )?;
    support::reset_peak_rss()?;
    let before = support::peak_rss_mb().ok_or("no VmHWM in /proc/self/status")?;
    let outcome = Builder::new(docker.clone())
        .build(&ImageSpec::new("large-context", dir.path()))
        .await?;
    let growth = support::peak_rss_mb().ok_or("no VmHWM in /proc/self/status")? - before;
    let _ = docker
        .remove_image(
            outcome.image.reference().as_str(),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    ensure(outcome.built, || format!("{} was not built", outcome.image))?;
    ensure(growth < (LARGE_CONTEXT_MB / 8) as f64, || {
        format!(
            "the peak resident size grew by {growth:.0} MB while a {LARGE_CONTEXT_MB} MB context was built"
        )
    })?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn a_context_file_changed_after_planning_fails_naming_it() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let dir = scratch();
    // Entries go in name order: the engine has received `a-data` when the
    // changed file breaks the archive off.
    std::fs::write(dir.path().join("a-data"), vec![7_u8; 8 << 20])?;
    std::fs::write(dir.path().join("z-changing"), "before")?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY a-data z-changing /\n",
    )?;
    let builder = Builder::new(docker.clone());
    let plans = builder
        .plan_all(&[ImageSpec::new("changing", dir.path())])
        .await?;
    std::fs::write(dir.path().join("z-changing"), "after, and longer")?;
    let error = builder
        .build_planned(&plans)
        .await
        .err()
        .ok_or("a context that changed while it was sent was built")?;
    ensure(
        matches!(&error, BuildError::Context { source, .. } if matches!(source.as_ref(), ContextError::Read { path, .. } if path.ends_with("z-changing"))),
        || format!("{error:?}"),
    )?;
    ensure(
        ImageRef::existing(&docker, "changing", plans[0].reference().as_str())
            .await
            .is_err(),
        || {
            format!(
                "{} was tagged from a broken-off context",
                plans[0].reference()
            )
        },
    )?;
    Ok(())
}

#[kindling::test]
async fn unreachable_daemon_says_how_to_start_one() -> Result<(), kindling::BoxError> {
    let host = "unix:///nonexistent/kindling/docker.sock";
    let error = kindling::docker::connect_to(host)
        .await
        .err()
        .ok_or("connected to nothing")?;
    let text = error.to_string();
    ensure(
        text.contains(host) && text.contains("start one") && text.contains("DOCKER_HOST"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn node_disappearing_mid_load_fails_naming_the_node() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("vanish"), 1).await?;
    let dir = scratch();
    let context = write_data_image(&dir.path().join("app"), 7, 200, "v1")?;
    let image = Builder::new(docker.clone())
        .build(&ImageSpec::new("vanish", &context))
        .await?
        .image;
    let stores = cluster.stores().await?;
    let victim = stores[1].name().to_owned();
    let loader = Loader::new(docker.clone());
    let load = tokio::spawn({
        let image = image.clone();
        let stores = stores.clone();
        async move { loader.load(std::slice::from_ref(&image), &stores).await }
    });
    cluster
        .await_process(&victim, "images import", Duration::from_secs(60))
        .await?;
    cluster.remove_node(&victim).await?;
    let result = load.await?;
    let error = result
        .err()
        .ok_or("the load succeeded although a node vanished")?;
    let text = support::error_text(&error);
    ensure(text.contains(&format!("node `{victim}`")), || text.clone())?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn a_node_command_without_progress_is_killed_in_the_node() -> Result<(), kindling::BoxError> {
    use kindling::node::{DockerExec, NodeError, NodeTransport as _};
    let docker = docker().await?;
    let cluster = KindLikeCluster::start(&docker, &cluster_name("stall"), 0).await?;
    let node = cluster.node_names[0].clone();
    // Waits for containerd events, which an idle node never has: prints
    // nothing, reads nothing, and outlives the connection of its exec.
    let argv = vec!["ctr".to_owned(), "events".to_owned()];
    let idle = Duration::from_secs(2);
    let exec = tokio::spawn({
        let transport = DockerExec::new(docker.clone(), node.clone());
        let argv = argv.clone();
        async move { transport.exec(argv, None, idle).await }
    });
    cluster
        .await_process(&node, "ctr events", Duration::from_secs(30))
        .await?;
    let error = exec.await?.err().ok_or("`ctr events` ended by itself")?;
    let text = error.to_string();
    ensure(
        matches!(&error, NodeError::Stalled { node: named, command, waited }
            if *named == node && command == "ctr events" && *waited == idle),
        || format!("{error:?}"),
    )?;
    ensure(
        text.starts_with(&format!(
            "`ctr events` on node `{node}` made no progress for 2s, and was killed"
        )),
        || text.clone(),
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let top = docker.top_processes(&node, None).await?;
        let left: Vec<String> = top
            .processes
            .unwrap_or_default()
            .into_iter()
            .map(|row| row.join(" "))
            .filter(|row| row.contains("ctr events"))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("still running in node {node}: {left:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[kindling::test(requires = Requirement::docker())]
async fn kind_nodes_are_discovered_by_their_labels() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let name = cluster_name("discover");
    let _cluster = KindLikeCluster::start(&docker, &name, 2).await?;
    let nodes = kindling::node::discover_kind_nodes(&docker, &name).await?;
    let found: Vec<(String, String)> = nodes
        .iter()
        .map(|node| (node.name.clone(), node.role.clone()))
        .collect();
    let expected = vec![
        (format!("{name}-control-plane"), "control-plane".to_owned()),
        (format!("{name}-worker"), "worker".to_owned()),
        (format!("{name}-worker2"), "worker".to_owned()),
    ];
    ensure(found == expected, || format!("{found:?}"))?;
    ensure(
        kindling::node::discover_kind_nodes(&docker, "kt-no-such-cluster")
            .await?
            .is_empty(),
        || "found nodes of a cluster that does not exist".to_owned(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn local_component_images_build_from_scratch_and_run() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let sources = support::workspace_root().join("crates/kindling-core/local-cluster/images");
    let pause = support::go_image(&docker, "pause", &sources, "./pause").await?;
    let smoke = support::go_image(&docker, "smoke", &sources, "./smoke").await?;
    let again = support::go_image(&docker, "smoke", &sources, "./smoke").await?;
    ensure(again == smoke, || {
        format!("a rebuilt smoke binary changed its content tag: {smoke} then {again}")
    })?;
    ensure(
        pause
            .reference()
            .as_str()
            .starts_with("localhost/kindling/pause:c-"),
        || pause.to_string(),
    )?;
    // The smoke image serves and checks itself: two containers sharing one
    // network namespace, talking over its loopback.
    let server = format!("kt-smoke-{}", std::process::id());
    let docker_cli = |args: &[&str]| std::process::Command::new("docker").args(args).output();
    let started = docker_cli(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &server,
        smoke.reference().as_str(),
        "serve",
        "127.0.0.1:8080",
    ])?;
    ensure(started.status.success(), || {
        String::from_utf8_lossy(&started.stderr).into_owned()
    })?;
    let mut answered = None;
    for _ in 0..50 {
        let probe = docker_cli(&[
            "run",
            "--rm",
            "--network",
            &format!("container:{server}"),
            smoke.reference().as_str(),
            "get",
            "http://127.0.0.1:8080/",
        ])?;
        if probe.status.success() {
            answered = Some(String::from_utf8_lossy(&probe.stdout).trim().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = docker_cli(&["rm", "-f", &server]);
    ensure(answered.as_deref() == Some("kindling smoke ok"), || {
        format!("smoke answered {answered:?}")
    })?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn a_dockerfile_starts_from_an_image_of_the_same_build() -> Result<(), kindling::BoxError> {
    let docker = docker().await?;
    let dir = scratch();
    let base = dir.path().join("base");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&base)?;
    std::fs::create_dir_all(&app)?;
    std::fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nCOPY base.txt /base.txt\n",
    )?;
    std::fs::write(base.join("base.txt"), "from the base, first")?;
    std::fs::write(
        app.join("Dockerfile"),
        "FROM kindling:kt-base AS built\nCOPY app.txt /app.txt\n",
    )?;
    std::fs::write(app.join("app.txt"), "the app")?;
    let specs = [
        ImageSpec::new("kt-app", &app),
        ImageSpec::new("kt-base", &base),
    ];
    let builder = Builder::new(docker.clone());
    let first = builder.build_all(&specs).await?;
    ensure(
        first[0].image.name() == "kt-app" && first[1].image.name() == "kt-base",
        || format!("outcomes out of order: {first:?}"),
    )?;
    let inspected = docker
        .inspect_image(first[0].image.reference().as_str())
        .await?;
    let layers = inspected
        .root_fs
        .and_then(|fs| fs.layers)
        .unwrap_or_default();
    ensure(layers.len() == 2, || {
        format!("the app should hold the base's layer and its own: {layers:?}")
    })?;
    // A changed base is a new base, and so a new app.
    std::fs::write(base.join("base.txt"), "from the base, second")?;
    let second = builder.build_all(&specs).await?;
    ensure(
        second[1].image.reference() != first[1].image.reference(),
        || "the base kept its tag".to_owned(),
    )?;
    ensure(
        second[0].image.reference() != first[0].image.reference(),
        || "an app on a changed base kept its tag".to_owned(),
    )?;
    let unknown = Builder::new(docker)
        .build_all(&specs[..1])
        .await
        .err()
        .ok_or("an app whose base is not in the build was accepted")?;
    let text = support::error_text(&unknown);
    ensure(
        text.contains("`FROM kindling:kt-base`") && text.contains("kt-app"),
        || text.clone(),
    )?;
    Ok(())
}

#[kindling::test(requires = Requirement::docker())]
async fn a_missing_third_party_image_says_how_to_get_it() -> Result<(), kindling::BoxError> {
    let setup = kindling::SetupContext::standalone("kt-third-party", &std::env::temp_dir());
    let mut environment = kindling::Environment::builder(&setup).image(kindling::ThirdParty::new(
        "db",
        "registry.invalid/team/db:never-pulled",
    ));
    let error = environment
        .fingerprint()
        .await
        .err()
        .ok_or("an absent third-party image was accepted")?;
    let text = support::error_text(&error);
    for part in [
        "third-party image `registry.invalid/team/db:never-pulled` (`kindling:db`) is not in the local engine",
        "docker pull registry.invalid/team/db:never-pulled",
        "ThirdParty::or_build",
    ] {
        ensure(text.contains(part), || {
            format!("`{part}` missing from: {text}")
        })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    Suite::new().run()
}
