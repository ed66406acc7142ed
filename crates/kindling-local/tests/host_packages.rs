//! kindling's runtime-package step (`kindling prepare --packages-only`,
//! the first thing `up` does) run as root in Debian bookworm containers
//! against Debian's real archive. Beside packages carrying exactly the
//! relations of Docker's `containerd.io` (Provides, Conflicts and Replaces
//! `containerd, runc`) and `docker-ce` (Depends `containerd.io`), both stay
//! installed: the step uses their containerd, ctr and runc, or stops naming
//! what apt would remove. On a plain bookworm it installs Debian's.
//!
//! Needs a Docker engine, `dpkg-deb`, and mmdebstrap for the base (the
//! `ImageSpec::debian("debian", "bookworm")` the E2E stacks build, kept
//! like theirs); without them these tests are reported as skipped, and
//! fail when `CI` is set. Containers are named `kindling-host-packages-*`
//! and labelled `kindling.test=host-packages`.

#[path = "../../kindling/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use kindling::apt::{InstallPolicy, Piece, SearchPath};
use kindling::image::{Builder, ImageSpec};
use kindling::{BoxError, Requirement, Suite};
use support::{Ran, ensure};

type TestResult = Result<(), BoxError>;

/// The label every container of these tests carries.
const LABEL: &str = "kindling.test=host-packages";

/// The Debian bookworm base, built once by kindling's own recipe (its
/// content tag makes later calls cheap); processes take turns building it.
async fn bookworm() -> Result<String, BoxError> {
    let lock = std::fs::File::create(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-packages-base.lock"),
    )?;
    lock.lock()?;
    let docker = kindling::docker::connect().await?;
    let built = Builder::new(docker)
        .build(&ImageSpec::debian("debian", "bookworm"))
        .await?;
    Ok(built.image.reference().to_string())
}

/// A bookworm container of one test, removed when dropped.
struct Container {
    name: String,
}

impl Container {
    async fn start(test: &str) -> Result<Self, BoxError> {
        let image = bookworm().await?;
        let container = Container {
            name: format!("kindling-host-packages-{test}-{}", std::process::id()),
        };
        let started = docker(&[
            "run",
            "-d",
            "--name",
            &container.name,
            "--label",
            LABEL,
            &image,
            "sleep",
            "infinity",
        ])?;
        ensure(started.code == Some(0), || {
            format!("the container did not start: {}", started.text())
        })?;
        // The `kindling` CLI built on this host (bookworm, glibc) runs there as is.
        container.copy_in(support::cli_binary(), "/kindling")?;
        Ok(container)
    }

    fn exec(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Ran, BoxError> {
        let mut command = vec!["exec".to_owned()];
        for (key, value) in env {
            command.extend(["-e".to_owned(), format!("{key}={value}")]);
        }
        command.push(self.name.clone());
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        docker(&command.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `exec` that must succeed.
    fn run(&self, args: &[&str]) -> Result<Ran, BoxError> {
        let ran = self.exec(args, &[])?;
        ensure(ran.code == Some(0), || {
            format!(
                "`{}` failed in {}: {}",
                args.join(" "),
                self.name,
                ran.text()
            )
        })?;
        Ok(ran)
    }

    fn copy_in(&self, from: &Path, to: &str) -> Result<(), BoxError> {
        let copied = docker(&[
            "cp",
            &from.display().to_string(),
            &format!("{}:{to}", self.name),
        ])?;
        ensure(copied.code == Some(0), || {
            format!("copying {} failed: {}", from.display(), copied.text())
        })?;
        Ok(())
    }

    /// Builds the packages `debs` describes and installs them with `dpkg -i`.
    fn install_debs(&self, debs: &[Deb]) -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut paths = Vec::new();
        for deb in debs {
            let built = deb.build(dir.path())?;
            let inside = format!("/tmp/{}.deb", deb.package);
            self.copy_in(&built, &inside)?;
            paths.push(inside);
        }
        let mut args = vec!["dpkg", "-i"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args)?;
        Ok(())
    }

    /// Whether dpkg has `package` installed.
    fn installed(&self, package: &str) -> Result<bool, BoxError> {
        let status = self.exec(&["dpkg-query", "-W", "-f=${Status}", package], &[])?;
        Ok(status.code == Some(0) && status.stdout.trim() == "install ok installed")
    }

    /// Fails naming the packages of `packages` whose installed state is not `wanted`.
    fn expect_installed(&self, packages: &[&str], wanted: bool, when: &str) -> TestResult {
        let mut wrong = Vec::new();
        for package in packages {
            if self.installed(package)? != wanted {
                wrong.push(*package);
            }
        }
        ensure(wrong.is_empty(), || {
            format!(
                "{when}: {} {} installed",
                wrong.join(", "),
                if wanted { "should be" } else { "should not be" }
            )
        })?;
        Ok(())
    }

    /// `kindling prepare --packages-only`, as root, with `env`.
    fn packages_step(&self, env: &[(&str, &str)]) -> Result<Ran, BoxError> {
        self.exec(&["/kindling", "prepare", "--packages-only"], env)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

fn docker(args: &[&str]) -> Result<Ran, BoxError> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|error| format!("`docker {}` did not start: {error}", args.join(" ")))?;
    Ok(Ran::from(output))
}

/// A package made with `dpkg-deb --build`: its control relations and stub
/// executables.
struct Deb {
    package: &'static str,
    version: &'static str,
    relations: &'static [(&'static str, &'static str)],
    executables: &'static [&'static str],
}

impl Deb {
    fn build(&self, dir: &Path) -> Result<PathBuf, BoxError> {
        use std::os::unix::fs::PermissionsExt as _;
        let root = dir.join(self.package);
        std::fs::create_dir_all(root.join("DEBIAN"))?;
        let architecture = Command::new("dpkg").arg("--print-architecture").output()?;
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: kindling tests <tests@kindling.invalid>\n",
            self.package,
            self.version,
            String::from_utf8_lossy(&architecture.stdout).trim()
        );
        for (field, value) in self.relations {
            control.push_str(&format!("{field}: {value}\n"));
        }
        control.push_str(&format!(
            "Description: stand-in for Docker's {}, with its package relations\n",
            self.package
        ));
        std::fs::write(root.join("DEBIAN/control"), control)?;
        for executable in self.executables {
            let path = root.join(executable);
            std::fs::create_dir_all(path.parent().expect("nested"))?;
            std::fs::write(&path, "#!/bin/sh\necho \"$0: a stub\"\n")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        let deb = dir.join(format!("{}.deb", self.package));
        let built = Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg("--build")
            .arg(&root)
            .arg(&deb)
            .output()?;
        ensure(built.status.success(), || {
            format!(
                "dpkg-deb --build {} failed: {}",
                self.package,
                Ran::from(built.clone()).text()
            )
        })?;
        Ok(deb)
    }
}

/// Docker's containerd.io relations, as its bookworm packages declare them.
const CONTAINERD_IO_RELATIONS: &[(&str, &str)] = &[
    ("Provides", "containerd, runc"),
    ("Conflicts", "containerd, runc"),
    ("Replaces", "containerd, runc"),
];

const DOCKER_CE: Deb = Deb {
    package: "docker-ce",
    version: "5:27.3.1-1~debian.12~bookworm",
    relations: &[("Depends", "containerd.io")],
    executables: &["usr/bin/dockerd"],
};

/// The line of the step's progress that shows apt's plan, if any.
fn plan_line(ran: &Ran) -> Option<&str> {
    ran.stderr
        .lines()
        .find(|line| line.contains("with apt-get: installs"))
}

/// The packages the plan line says apt installs.
fn planned_installs(line: &str) -> Vec<String> {
    line.split_once("installs ")
        .map(|(_, rest)| rest.split(" (set ").next().unwrap_or_default())
        .unwrap_or_default()
        .split(", ")
        .map(str::to_owned)
        .collect()
}

#[kindling::test(timeout = "1200s", requires = Requirement::docker(), requires = dpkg_deb(), requires = mmdebstrap())]
async fn dockers_packages_stay_and_serve_containerd_ctr_and_runc() -> TestResult {
    let container = Container::start("docker-layout").await?;
    container.install_debs(&[
        Deb {
            package: "containerd.io",
            version: "1.7.22-1",
            relations: CONTAINERD_IO_RELATIONS,
            executables: &["usr/bin/containerd", "usr/bin/ctr", "usr/bin/runc"],
        },
        DOCKER_CE,
    ])?;

    let ran = container.packages_step(&[])?;
    ensure(ran.code == Some(0), || {
        format!("the step failed beside Docker's packages: {}", ran.text())
    })?;
    container.expect_installed(&["containerd.io", "docker-ce"], true, "after the step")?;
    container.expect_installed(&["containerd", "runc"], false, "after the step")?;
    container.expect_installed(
        &["containernetworking-plugins", "iptables"],
        true,
        "after the step",
    )?;
    ensure(
        ran.stdout.contains(
            "containerd /usr/bin/containerd, ctr /usr/bin/ctr, runc /usr/bin/runc, iptables /usr/sbin/iptables, CNI plugins in /usr/lib/cni",
        ),
        || format!("the step does not use containerd.io's pieces: {}", ran.text()),
    )?;
    let line = plan_line(&ran).ok_or_else(|| format!("no plan shown: {}", ran.text()))?;
    ensure(
        line.contains("installing Debian's containernetworking-plugins, iptables with apt-get"),
        || format!("it asked for more than the missing pieces: {line}"),
    )?;
    let installs = planned_installs(line);
    ensure(
        installs.iter().any(|package| package == "iptables")
            && !installs
                .iter()
                .any(|package| package == "runc" || package == "containerd"),
        || format!("the plan shown is not apt's: {line}"),
    )?;

    // Everything in place now: a second run installs nothing.
    let again = container.packages_step(&[])?;
    ensure(again.code == Some(0) && plan_line(&again).is_none(), || {
        format!("a second run did not find everything: {}", again.text())
    })?;
    Ok(())
}

#[kindling::test(timeout = "1200s", requires = Requirement::docker(), requires = dpkg_deb(), requires = mmdebstrap())]
async fn an_install_that_would_remove_dockers_packages_stops_naming_them() -> TestResult {
    let container = Container::start("would-remove").await?;
    // containerd.io without its runc: Debian's runc is then missing, and
    // it conflicts with containerd.io.
    container.install_debs(&[
        Deb {
            package: "containerd.io",
            version: "1.7.22-1",
            relations: CONTAINERD_IO_RELATIONS,
            executables: &["usr/bin/containerd", "usr/bin/ctr"],
        },
        DOCKER_CE,
    ])?;

    let ran = container.packages_step(&[])?;
    ensure(ran.code == Some(1), || {
        format!("the step should have stopped: {}", ran.text())
    })?;
    container.expect_installed(&["containerd.io", "docker-ce"], true, "after the refusal")?;
    // Nothing half done: not even the pieces that conflict with nothing.
    container.expect_installed(
        &["runc", "containernetworking-plugins", "iptables"],
        false,
        "after the refusal",
    )?;
    for wanted in [
        "installing Debian's containernetworking-plugins, iptables and runc would make apt-get remove",
        "docker-ce",
        "and kindling never removes a package",
        "containerd.io already provides containerd and ctr",
        "`runc` on PATH (from Debian's runc or Docker's containerd.io)",
        "or put them in /opt/cni/bin",
        "Remv containerd.io",
    ] {
        ensure(ran.stderr.contains(wanted), || {
            format!("the message lacks {wanted:?}: {}", ran.text())
        })?;
    }
    Ok(())
}

#[kindling::test(timeout = "1200s", requires = Requirement::docker(), requires = dpkg_deb(), requires = mmdebstrap())]
async fn a_plain_bookworm_gets_debians_packages() -> TestResult {
    let container = Container::start("plain").await?;
    let runtime = [
        "containerd",
        "runc",
        "containernetworking-plugins",
        "iptables",
    ];

    let refused = container.packages_step(&[("KINDLING_INSTALL", "never")])?;
    ensure(
        refused.code == Some(1)
            && refused.stderr.contains("cannot find `containerd` on PATH")
            && refused.stderr.contains(
                "`apt-get install --no-remove containerd containernetworking-plugins iptables runc`",
            )
            && refused.stderr.contains("KINDLING_INSTALL=never"),
        || {
            format!(
                "KINDLING_INSTALL=never should name what to install: {}",
                refused.text()
            )
        },
    )?;
    container.expect_installed(&runtime, false, "with KINDLING_INSTALL=never")?;

    let ran = container.packages_step(&[])?;
    ensure(ran.code == Some(0), || {
        format!("the step failed on a plain bookworm: {}", ran.text())
    })?;
    container.expect_installed(&runtime, true, "after the step")?;
    ensure(
        ran.stdout.contains(
            "containerd /usr/bin/containerd, ctr /usr/bin/ctr, runc /usr/sbin/runc, iptables /usr/sbin/iptables, CNI plugins in /usr/lib/cni",
        ),
        || format!("the step does not use Debian's paths: {}", ran.text()),
    )?;
    let line = plan_line(&ran).ok_or_else(|| format!("no plan shown: {}", ran.text()))?;
    let installs = planned_installs(line);
    ensure(
        runtime
            .iter()
            .all(|package| installs.iter().any(|planned| planned == package)),
        || format!("the plan shown lacks a runtime package: {line}"),
    )?;
    Ok(())
}

fn mmdebstrap() -> Requirement {
    Requirement::new("mmdebstrap, or kindling allowed to install it", || {
        kindling::apt::check(
            &[Piece::program("mmdebstrap", "mmdebstrap")],
            &SearchPath::from_env(),
            InstallPolicy::from_env(),
        )
        .map_err(|error| error.to_string())
    })
}

fn dpkg_deb() -> Requirement {
    Requirement::program("dpkg-deb", "install dpkg (`apt-get install dpkg`)")
}

// Each test's timeout leaves room for a cold machine, which builds the CLI
// and the base image first.
fn main() -> ExitCode {
    Suite::new().run()
}
