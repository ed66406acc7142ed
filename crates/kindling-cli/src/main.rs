//! The `kindling` command line: parses arguments and prints; the work is
//! in the `kindling` library.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod load;

use clap::{Parser, Subcommand, ValueEnum};
use kindling::cluster::local::{LocalCluster, LocalError};
use kindling::cluster::{ClusterName, PrepareScope, Provider, ReadyCluster, Removed};

/// Exit codes, in one place: 0 success, 1 a command failed, 2 bad usage
/// (clap's own code for argument errors).
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "kindling",
    version,
    about = "End-to-end tests of services on Kubernetes"
)]
struct Cli {
    /// The Cargo target directory whose suite state to use.
    #[arg(
        long,
        global = true,
        env = "CARGO_TARGET_DIR",
        default_value = "target"
    )]
    target_dir: PathBuf,
    /// The cluster to act on.
    #[arg(
        long,
        global = true,
        env = "KINDLING_CLUSTER",
        default_value = "kindling"
    )]
    cluster: ClusterName,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProviderKind {
    /// Upstream Kubernetes components run directly on this host.
    Local,
    /// A Kind cluster, through the `kind` CLI.
    Kind,
    /// A cluster kindling does not own (KINDLING_KUBECONFIG, KINDLING_CONTEXT, KINDLING_REGISTRY).
    Existing,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Obtain what a cluster needs without starting it. `local`: install
    /// the runtime pieces missing from PATH (containerd, ctr, runc,
    /// iptables) and the CNI plugins (/usr/lib/cni or /opt/cni/bin) from
    /// Debian's packages, as root on Debian unless KINDLING_INSTALL=never,
    /// never removing a package (Docker's containerd.io provides
    /// containerd, ctr and runc); then build the pinned components into the
    /// cache. `kind`: make kindling's Kind node image (its components
    /// first, into the cache) unless KINDLING_KIND_NODE_IMAGE names another,
    /// and find out whether the engine starts privileged containers.
    Prepare {
        /// `local` only: find and install the runtime pieces; build nothing.
        #[arg(long)]
        packages_only: bool,
        #[arg(long, env = "KINDLING_PROVIDER", value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Create the cluster, or check that it runs; prints each phase's time.
    Up {
        #[arg(long, env = "KINDLING_PROVIDER", value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Stop the cluster and remove what it left on the host.
    Down {
        #[arg(long, env = "KINDLING_PROVIDER", value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Show the cluster and each suite's recorded setup.
    Status {
        #[arg(long, env = "KINDLING_PROVIDER", value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Delete the namespaces of earlier runs: those whose heartbeat is older
    /// than the grace period, except the ones this target directory's
    /// recorded setups use. Never touches namespaces kindling did not make.
    Gc {
        /// Namespaces renewed within this time belong to runs in progress.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Only this suite's namespaces.
        #[arg(long)]
        suite: Option<String>,
        /// The cluster's kubeconfig (default: the local cluster's).
        #[arg(long, env = "KINDLING_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// The context in it (default: the cluster's name).
        #[arg(long, env = "KINDLING_CONTEXT")]
        context: Option<String>,
    },
    /// As a nextest setup script (`[scripts.setup.*]`): bring the cluster
    /// of KINDLING_PROVIDER up before any test starts, and hand the tests
    /// its coordinates through $NEXTEST_ENV, so their setups only check
    /// that it answers.
    NextestSetup,
    /// Load images from the local engine into every node of a cluster: a
    /// node that holds an image is skipped, one that holds it under another
    /// name gets the name, any other gets only the layers its content store
    /// lacks. Then every node is checked to hold every exact reference.
    Load {
        /// Images in the local engine (`name:tag`).
        #[arg(required = true)]
        images: Vec<String>,
        /// `kind`: the node containers labelled with the cluster's name;
        /// `local`: the local cluster's node.
        #[arg(long, env = "KINDLING_PROVIDER", value_enum)]
        provider: Option<ProviderKind>,
        /// Send each missing image's whole `docker save`, every platform the
        /// engine exports, as `kind load docker-image` does.
        #[arg(long)]
        all_platforms: bool,
    },
    /// Forget a suite's recorded setup so its next run sets up again.
    Reset {
        /// The suite (its test target's name).
        suite: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("failed to read the suite state")]
    State(#[from] kindling::harness::StateError),
    #[error("suite `{suite}` has no recorded setup in `{dir}`: known suites are {known}")]
    UnknownSuite {
        suite: String,
        dir: PathBuf,
        known: String,
    },
    #[error("local cluster `{cluster}`")]
    Local {
        cluster: String,
        #[source]
        source: LocalError,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Provider(#[from] kindling::cluster::ProviderError),
    #[error(transparent)]
    Environment(#[from] kindling::EnvironmentError),
    #[error(transparent)]
    Kubeconfig(#[from] kindling::kubeconfig::KubeconfigError),
    #[error("failed to collect namespaces")]
    Gc(#[from] kindling::deploy::NamespaceError),
    #[error(
        "NEXTEST_ENV is not set: `kindling nextest-setup` runs as a nextest setup script (`[scripts.setup.<name>] command = \"kindling nextest-setup\"` in .config/nextest.toml); use `kindling up` by hand"
    )]
    NotASetupScript,
    #[error(transparent)]
    Load(Box<load::LoadCommandError>),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the cluster's coordinates to $NEXTEST_ENV ({})", path.display())]
    NextestEnv {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<load::LoadCommandError> for CliError {
    fn from(error: load::LoadCommandError) -> Self {
        CliError::Load(Box::new(error))
    }
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::State(_)
            | CliError::UnknownSuite { .. }
            | CliError::Local { .. }
            | CliError::Runtime(_)
            | CliError::Provider(_)
            | CliError::Environment(_)
            | CliError::Kubeconfig(_)
            | CliError::Gc(_)
            | CliError::NotASetupScript
            | CliError::Load(_)
            | CliError::NextestEnv { .. } => ExitCode::from(EXIT_FAILED),
            CliError::Usage(_) => ExitCode::from(EXIT_USAGE),
        }
    }
}

impl From<ProviderKind> for kindling::cluster::ProviderKind {
    fn from(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Local => kindling::cluster::ProviderKind::Local,
            ProviderKind::Kind => kindling::cluster::ProviderKind::Kind,
            ProviderKind::Existing => kindling::cluster::ProviderKind::Existing,
        }
    }
}

/// Which provider `--provider` or KINDLING_PROVIDER names, else the one
/// this machine offers (Kind where an engine can run its nodes, else
/// `local` as root), said on stderr.
fn chosen_kind(
    cli: &Cli,
    named: Option<ProviderKind>,
) -> Result<kindling::cluster::ProviderKind, CliError> {
    let (kind, choice) = kindling::cluster::choose_kind(named.map(Into::into), &cli.cluster)?;
    if let Some(choice) = choice {
        eprintln!("kindling: {choice}");
    }
    Ok(kind)
}

/// The provider [`chosen_kind`] gives, configured by its variables.
fn chosen(cli: &Cli, named: Option<ProviderKind>) -> Result<Box<dyn Provider>, CliError> {
    let kind = chosen_kind(cli, named)?;
    Ok(kindling::cluster::provider_of(kind, &cli.cluster)?)
}

fn state_dir(cli: &Cli) -> PathBuf {
    std::env::var_os("KINDLING_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cli.target_dir.join("kindling/state"))
}

fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(work)
}

fn prepare(packages_only: bool, provider: &dyn Provider) -> Result<(), CliError> {
    if packages_only && provider.kind() != "local" {
        return Err(CliError::Usage(format!(
            "--packages-only is for the local provider: the {} provider installs no runtime packages (run `kindling prepare --provider {}`)",
            provider.kind(),
            provider.kind()
        )));
    }
    let scope = if packages_only {
        PrepareScope::RuntimePackagesOnly
    } else {
        PrepareScope::Everything
    };
    let said = block_on(async { Ok(provider.prepare_host(scope).await?) })?;
    println!("{said}");
    Ok(())
}

fn up(provider: &dyn Provider) -> Result<(), CliError> {
    let started = Instant::now();
    let report = block_on(async { Ok(provider.bring_up().await?) })?;
    for (phase, time) in &report.phases {
        println!("{phase:<24} {:>8.2}s", time.as_secs_f64());
    }
    println!(
        "{} cluster `{}` is up in {:.2}s{}; kubeconfig: {} (context {})",
        provider.kind(),
        report.info.name,
        started.elapsed().as_secs_f64(),
        if report.info.created {
            ""
        } else {
            ", already running"
        },
        report.info.kubeconfig.display(),
        report.info.context
    );
    Ok(())
}

fn down(provider: &dyn Provider) -> Result<(), CliError> {
    let report = block_on(async { Ok(provider.take_down().await?) })?;
    for left in &report.left {
        eprintln!("warning: left {left}; remove it by hand or run `kindling down` again");
    }
    let (kind, cluster) = (provider.kind(), provider.cluster());
    match report.removed {
        Removed::Deleted => println!("{kind} cluster `{cluster}` deleted"),
        Removed::Stopped(stopped) => {
            println!("{kind} cluster `{cluster}` stopped: {}", stopped.join(", "))
        }
        Removed::NotRunning => println!("{kind} cluster `{cluster}` was not running"),
        Removed::NotOwned => println!(
            "{kind} cluster `{cluster}` left as it is: kindling never deletes a cluster it does not own"
        ),
    }
    Ok(())
}

/// An error and its causes on one line, `outer: cause: root`.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn status(cli: &Cli, provider: &dyn Provider) -> Result<(), CliError> {
    let (kind, cluster) = (provider.kind(), provider.cluster());
    match block_on(async { Ok(provider.healthy().await) })? {
        Ok(()) => println!(
            "cluster `{cluster}` ({kind}): up{}",
            provider
                .kubeconfig_path()
                .map(|path| format!("; kubeconfig: {}", path.display()))
                .unwrap_or_default()
        ),
        Err(error) => println!(
            "cluster `{cluster}` ({kind}): not running: {}",
            kindling::redaction::redact_owned(one_line(&error))
        ),
    }
    let dir = state_dir(cli);
    let setups = kindling::harness::recorded_setups(&dir)?;
    if setups.is_empty() {
        println!("no suite has run yet (state directory `{}`)", dir.display());
    }
    for setup in setups {
        println!(
            "{}: {} (run {}, pid {}, started {})",
            setup.suite, setup.status, setup.run_id, setup.pid, setup.started_at
        );
        if let Some(from) = &setup.reused_from {
            println!("  reuses the environment of run {from}");
        }
        for (name, seconds, error) in &setup.phases {
            let state = if error.is_some() { "failed" } else { "ok" };
            println!("  {name:<24} {seconds:>8.2}s  {state}");
        }
        if let Some(error) = &setup.error {
            for line in error.lines() {
                println!("  | {line}");
            }
        }
    }
    Ok(())
}

fn gc(
    cli: &Cli,
    grace: std::time::Duration,
    suite: Option<&str>,
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> Result<(), CliError> {
    let kubeconfig = match kubeconfig {
        Some(path) => path.clone(),
        None => LocalCluster::with_defaults(&cli.cluster)
            .map_err(|source| CliError::Local {
                cluster: cli.cluster.to_string(),
                source,
            })?
            .kubeconfig(),
    };
    let context = context.unwrap_or(cli.cluster.as_str()).to_owned();
    let keep: Vec<String> = kindling::harness::recorded_setups(&state_dir(cli))?
        .into_iter()
        .filter_map(|setup| setup.namespace)
        .collect();
    let policy = kindling::deploy::GcPolicy {
        grace,
        suite: suite.map(str::to_owned),
        keep,
    };
    let report = block_on(async {
        let client = kindling::kubeconfig::client_for(&kubeconfig, &context).await?;
        let namespaces = kindling::deploy::collect_garbage(&client, &policy).await?;
        let objects = kindling::deploy::collect_cluster_garbage(&client).await?;
        Ok((namespaces, objects))
    })?;
    let (report, objects) = report;
    for namespace in &report.deleted {
        println!("deleted namespace {namespace}");
    }
    for object in &objects {
        println!("deleted {object}, which no namespace uses any more");
    }
    println!(
        "{} deleted, {} kept (in use, recorded by a suite here, or terminating)",
        report.deleted.len(),
        report.kept.len()
    );
    Ok(())
}

fn nextest_setup(cli: &Cli) -> Result<(), CliError> {
    let Some(env_file) = std::env::var_os("NEXTEST_ENV") else {
        return Err(CliError::NotASetupScript);
    };
    let (provider, choice) = kindling::cluster::from_env_choosing(&cli.cluster)?;
    if let Some(choice) = choice {
        println!("kindling: {choice}");
    }
    let started = Instant::now();
    let ready = block_on(async { Ok(ReadyCluster::ensure(provider.as_ref()).await?) })?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&env_file)
        .map_err(|source| CliError::NextestEnv {
            path: PathBuf::from(&env_file),
            source,
        })?;
    writeln!(file, "{}", ready.env_line()).map_err(|source| CliError::NextestEnv {
        path: PathBuf::from(&env_file),
        source,
    })?;
    println!(
        "{} cluster `{}` is up ({:.2}s{}); its tests use it as it is",
        provider.kind(),
        ready.info.name,
        started.elapsed().as_secs_f64(),
        if ready.info.created {
            ", brought up now"
        } else {
            ", already running"
        }
    );
    Ok(())
}

fn load_images(
    cli: &Cli,
    provider: kindling::cluster::ProviderKind,
    images: &[String],
    all_platforms: bool,
) -> Result<(), CliError> {
    let target = match provider {
        kindling::cluster::ProviderKind::Kind => load::Target::Kind,
        kindling::cluster::ProviderKind::Local => load::Target::Local,
        kindling::cluster::ProviderKind::Existing => {
            return Err(load::LoadCommandError::Existing.into());
        }
    };
    block_on(async { Ok(load::load(target, &cli.cluster, images, all_platforms).await?) })
}

fn reset(cli: &Cli, suite: &str) -> Result<(), CliError> {
    let dir = state_dir(cli);
    if kindling::harness::forget_setup(&dir, suite)? {
        println!("forgot the setup of suite `{suite}`: its next run sets up again");
        return Ok(());
    }
    let known: Vec<String> = kindling::harness::recorded_setups(&dir)?
        .into_iter()
        .map(|s| format!("`{}`", s.suite))
        .collect();
    Err(CliError::UnknownSuite {
        suite: suite.to_owned(),
        dir,
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Prepare {
            packages_only,
            provider,
        } => chosen(&cli, *provider).and_then(|provider| prepare(*packages_only, &*provider)),
        Command::Up { provider } => chosen(&cli, *provider).and_then(|provider| up(&*provider)),
        Command::Down { provider } => chosen(&cli, *provider).and_then(|provider| down(&*provider)),
        Command::Status { provider } => {
            chosen(&cli, *provider).and_then(|provider| status(&cli, &*provider))
        }
        Command::Reset { suite } => reset(&cli, suite),
        Command::NextestSetup => nextest_setup(&cli),
        Command::Load {
            images,
            provider,
            all_platforms,
        } => chosen_kind(&cli, *provider)
            .and_then(|provider| load_images(&cli, provider, images, *all_platforms)),
        Command::Gc {
            grace,
            suite,
            kubeconfig,
            context,
        } => gc(
            &cli,
            *grace,
            suite.as_deref(),
            kubeconfig.as_ref(),
            context.as_deref(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Registry credentials and diagnoses of pods may be in there.
            let redact = |text: String| kindling::redaction::redact_owned(text);
            eprintln!("error: {}", redact(error.to_string()));
            let mut source = std::error::Error::source(&error);
            if source.is_some() {
                eprintln!("\nCaused by:");
            }
            let mut index = 0;
            while let Some(cause) = source {
                eprintln!("  {index}: {}", redact(cause.to_string()));
                index += 1;
                source = cause.source();
            }
            error.exit_code()
        }
    }
}
