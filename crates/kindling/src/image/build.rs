//! Builds through the Docker Engine API and returns the exact reference
//! and ID of what was built.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use super::context::{BuildContext, ContextError};
use super::reference::{NormalizedReference, ReferenceError, normalize};
use super::spec::{ImageSpec, Recipe, TagPolicy, TagPolicyError};
use super::{ImageError, ImageRef};

/// Lines of build output kept for an error.
const TAIL_LINES: usize = 50;
/// Name of a Dockerfile that lies outside its context, inside the archive.
const OUTSIDE_DOCKERFILE: &str = ".kindling.Dockerfile";

/// Building an image failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "Dockerfile `{path}` of image `{image}` does not exist: fix the ImageSpec's dockerfile path"
    )]
    MissingDockerfile { image: String, path: PathBuf },
    #[error("failed to read Dockerfile `{path}` of image `{image}`")]
    ReadDockerfile {
        image: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the build context of image `{image}`")]
    Context {
        image: String,
        #[source]
        source: Box<ContextError>,
    },
    #[error("image `{image}` gets an invalid reference")]
    Reference {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error("image `{image}` failed to build{}: {message}\n--- last {} lines of build output ---\n{tail}", step.as_ref().map(|s| format!(" at `{s}`")).unwrap_or_default(), TAIL_LINES)]
    Failed {
        image: String,
        step: Option<String>,
        message: String,
        tail: String,
    },
    #[error("the engine failed while building image `{image}`")]
    Engine {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "image `{reference}` (KINDLING_TAG_POLICY=fixed) is not in the local engine: build it in the pipeline before the tests, or unset KINDLING_TAG_POLICY"
    )]
    FixedMissing {
        reference: String,
        #[source]
        source: ImageError,
    },
    #[error("cannot look up image `{reference}` after building it")]
    Lookup {
        reference: String,
        #[source]
        source: ImageError,
    },
    #[error(transparent)]
    Policy(TagPolicyError),
    #[error(
        "image `{image}` is a Go binary but `{}` holds no go.mod: point ImageSpec::go_binary at the module's directory",
        path.display()
    )]
    NotAGoModule { image: String, path: PathBuf },
    #[error("failed to run `go build` for image `{image}`: is Go installed and on PATH?")]
    GoMissing {
        image: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`go build {package}` in `{}` failed for image `{image}`:\n{stderr}", module.display())]
    GoBuild {
        image: String,
        module: PathBuf,
        package: String,
        stderr: String,
    },
    #[error("cannot read the binary `{}` of image `{image}`", path.display())]
    ReadBinary {
        image: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a work directory to build image `{image}`")]
    WorkDir {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

/// One image: what it is now, and whether this call built it.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image: ImageRef,
    /// False when an image with the same content tag already existed.
    pub built: bool,
    pub seconds: f64,
}

/// What building a spec would make, worked out without building: its exact
/// reference and the digest of its build inputs.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    spec: ImageSpec,
    reference: NormalizedReference,
    /// The content digest of every build input (also under other policies).
    input_digest: String,
    context: BuildContext,
    dockerfile: Vec<u8>,
    /// The Dockerfile's path inside the context, when it lies there.
    inside: Option<String>,
}

impl BuildPlan {
    /// The spec this plan builds.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// The exact reference the build will have.
    pub fn reference(&self) -> &NormalizedReference {
        &self.reference
    }

    /// A digest of every build input: it changes exactly when the image
    /// would be built differently.
    pub fn input_digest(&self) -> &str {
        &self.input_digest
    }
}

/// Builds [`ImageSpec`]s, several at a time.
#[derive(Clone)]
pub struct Builder {
    docker: Docker,
    policy: Result<TagPolicy, TagPolicyError>,
    concurrency: usize,
    /// Tells this builder's `unique` tags from another's.
    run: String,
}

impl Builder {
    /// Tags by `KINDLING_TAG_POLICY` (and `KINDLING_IMAGE_TAG`), content
    /// tags when unset; two builds at a time.
    pub fn new(docker: Docker) -> Self {
        Builder {
            docker,
            policy: TagPolicy::from_env(TagPolicy::Content),
            concurrency: 2,
            run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        }
    }

    /// Tags by `policy`, whatever the environment says.
    pub fn policy(mut self, policy: TagPolicy) -> Self {
        self.policy = Ok(policy);
        self
    }

    /// How many images build at once (at least one).
    pub fn concurrency(mut self, builds: usize) -> Self {
        self.concurrency = builds.max(1);
        self
    }

    fn tag_policy(&self) -> Result<&TagPolicy, BuildError> {
        self.policy
            .as_ref()
            .map_err(|error| BuildError::Policy(error.clone()))
    }

    /// Builds every spec (at most `concurrency` at a time), in order.
    pub async fn build_all(&self, specs: &[ImageSpec]) -> Result<Vec<BuildOutcome>, BuildError> {
        let mut plans = Vec::with_capacity(specs.len());
        for spec in specs {
            plans.push(self.plan(spec).await?);
        }
        self.build_planned(&plans).await
    }

    /// Builds planned images (at most `concurrency` at a time), in order.
    pub async fn build_planned(
        &self,
        plans: &[BuildPlan],
    ) -> Result<Vec<BuildOutcome>, BuildError> {
        // Boxed as `dyn Future + Send` so the stream's type names no
        // closure: otherwise rustc cannot prove a suite's setup future Send.
        type Build<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<BuildOutcome, BuildError>> + Send + 'a>,
        >;
        let builds: Vec<Build<'_>> = plans
            .iter()
            .map(|plan| Box::pin(self.execute(plan)) as Build<'_>)
            .collect();
        futures_util::stream::iter(builds)
            .buffered(self.concurrency)
            .try_collect()
            .await
    }

    /// Builds one image, or finds it already built from the same inputs.
    pub async fn build(&self, spec: &ImageSpec) -> Result<BuildOutcome, BuildError> {
        let plan = self.plan(spec).await?;
        self.execute(&plan).await
    }

    /// Reads every input of `spec` and works out the reference its build
    /// gets, without building. Cheap: one pass over the context.
    pub async fn plan(&self, spec: &ImageSpec) -> Result<BuildPlan, BuildError> {
        let spec = spec.clone();
        let policy = self.tag_policy()?.clone();
        let run = self.run.clone();
        tokio::task::spawn_blocking(move || plan_blocking(spec, &policy, &run))
            .await
            .expect("plan task")
    }

    async fn execute(&self, plan: &BuildPlan) -> Result<BuildOutcome, BuildError> {
        let started = Instant::now();
        let spec = &plan.spec;
        let image = spec.name().to_owned();
        let reference = &plan.reference;
        if let TagPolicy::Fixed(_) = self.tag_policy()? {
            let found = ImageRef::existing(&self.docker, &image, reference.as_str()).await;
            return found
                .map(|image| BuildOutcome {
                    image,
                    built: false,
                    seconds: started.elapsed().as_secs_f64(),
                })
                .map_err(|source| BuildError::FixedMissing {
                    reference: reference.to_string(),
                    source,
                });
        }
        if *self.tag_policy()? == TagPolicy::Content
            && let Ok(existing) = ImageRef::existing(&self.docker, &image, reference.as_str()).await
        {
            tracing::info!(image = %image, reference = %reference, "inputs unchanged: reusing the built image");
            return Ok(BuildOutcome {
                image: existing,
                built: false,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let built = match &spec.recipe {
            Recipe::GoBinary { package } => self.build_go_binary(plan, package).await?,
            Recipe::StaticBinary { binary } => {
                let work = self.work_dir(&image)?;
                let target = work.path().join(&image);
                std::fs::copy(binary, &target).map_err(|source| BuildError::ReadBinary {
                    image: image.clone(),
                    path: binary.clone(),
                    source,
                })?;
                self.build_scratch(plan, work.path()).await?
            }
            Recipe::Dockerfile => {
                let archive = {
                    let extra = plan.inside.is_none().then(|| plan.dockerfile.clone());
                    let context = plan.context.clone();
                    tokio::task::spawn_blocking(move || {
                        context.to_tar(extra.as_deref().map(|bytes| (OUTSIDE_DOCKERFILE, bytes)))
                    })
                    .await
                    .expect("archive task")
                    .map_err(|source| BuildError::Context {
                        image: image.clone(),
                        source: Box::new(source),
                    })?
                };
                let dockerfile = plan
                    .inside
                    .clone()
                    .unwrap_or_else(|| OUTSIDE_DOCKERFILE.to_owned());
                self.run_build(spec, reference, archive, dockerfile).await?
            }
        };
        Ok(BuildOutcome {
            image: built,
            built: true,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn work_dir(&self, image: &str) -> Result<tempfile::TempDir, BuildError> {
        tempfile::Builder::new()
            .prefix("kindling-binary-")
            .tempdir()
            .map_err(|source| BuildError::WorkDir {
                image: image.to_owned(),
                source,
            })
    }

    /// `go build` on the host into a scratch context, then `FROM scratch`.
    async fn build_go_binary(
        &self,
        plan: &BuildPlan,
        package: &str,
    ) -> Result<ImageRef, BuildError> {
        let spec = &plan.spec;
        let image = spec.name().to_owned();
        let work = self.work_dir(&image)?;
        let binary = work.path().join(&image);
        tracing::info!(image = %image, package, "go build");
        let output = tokio::process::Command::new("go")
            .args(["build", "-trimpath", "-o"])
            .arg(&binary)
            .arg(package)
            .current_dir(spec.context())
            .env("CGO_ENABLED", "0")
            .output()
            .await
            .map_err(|source| BuildError::GoMissing {
                image: image.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(BuildError::GoBuild {
                image,
                module: spec.context().to_owned(),
                package: package.to_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        self.build_scratch(plan, work.path()).await
    }

    /// A `FROM scratch` image of the binary `<work>/<name>`.
    async fn build_scratch(&self, plan: &BuildPlan, work: &Path) -> Result<ImageRef, BuildError> {
        let spec = &plan.spec;
        let image = spec.name().to_owned();
        let dockerfile =
            format!("FROM scratch\nCOPY {image} /{image}\nENTRYPOINT [\"/{image}\"]\n");
        let root = work.to_owned();
        let archive = tokio::task::spawn_blocking(move || {
            BuildContext::scan(&root, None).and_then(|context| {
                context.to_tar(Some((OUTSIDE_DOCKERFILE, dockerfile.as_bytes())))
            })
        })
        .await
        .expect("archive task")
        .map_err(|source| BuildError::Context {
            image: image.clone(),
            source: Box::new(source),
        })?;
        self.run_build(
            spec,
            &plan.reference,
            archive,
            OUTSIDE_DOCKERFILE.to_owned(),
        )
        .await
    }

    /// `POST /build` of `archive`, tagged `reference`; the image it made.
    async fn run_build(
        &self,
        spec: &ImageSpec,
        reference: &NormalizedReference,
        archive: Vec<u8>,
        dockerfile: String,
    ) -> Result<ImageRef, BuildError> {
        let image = spec.name().to_owned();
        let options = BuildImageOptions {
            dockerfile,
            t: Some(reference.to_string()),
            buildargs: Some(
                spec.build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ),
            target: spec.target.clone().unwrap_or_default(),
            platform: spec.platform.clone().unwrap_or_default(),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        tracing::info!(image = %image, reference = %reference, "building");
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(archive.into())));
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut failure: Option<String> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in text.lines().filter(|line| !line.trim().is_empty()) {
                            tracing::debug!(target: "kindling::build", image = %image, "{line}");
                            if tail.len() == TAIL_LINES {
                                tail.pop_front();
                            }
                            tail.push_back(line.to_owned());
                        }
                    }
                    if let Some(message) = info.error_detail.and_then(|detail| detail.message) {
                        failure = Some(message);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => failure = Some(error),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    failure = Some(message)
                }
                Err(source) => {
                    return Err(BuildError::Engine {
                        image: image.clone(),
                        source,
                    });
                }
            }
        }
        if let Some(message) = failure {
            let tail: Vec<String> = tail.into_iter().collect();
            return Err(BuildError::Failed {
                image,
                step: failing_step(&tail),
                message: message.trim().to_owned(),
                tail: tail.join("\n"),
            });
        }
        let built = ImageRef::existing(&self.docker, &image, reference.as_str())
            .await
            .map_err(|source| BuildError::Lookup {
                reference: reference.to_string(),
                source,
            })?;
        tracing::info!(image = %image, reference = %reference, id = built.id(), "built");
        Ok(built)
    }
}

/// Reads the inputs of `spec` and names what its build will be.
fn plan_blocking(spec: ImageSpec, policy: &TagPolicy, run: &str) -> Result<BuildPlan, BuildError> {
    let image = spec.name().to_owned();
    if let Recipe::StaticBinary { binary } = &spec.recipe {
        let bytes = std::fs::read(binary).map_err(|source| BuildError::ReadBinary {
            image: image.clone(),
            path: binary.clone(),
            source,
        })?;
        let mut hasher = Sha256::new();
        frame(&mut hasher, b"kindling static binary v1");
        frame(&mut hasher, image.as_bytes());
        frame(&mut hasher, &bytes);
        let input_digest = format!("c-{}", &hex::encode(hasher.finalize())[..20]);
        return finish_plan(
            spec,
            policy,
            run,
            input_digest,
            BuildContext::empty(),
            Vec::new(),
            None,
        );
    }
    let (dockerfile, inside) = match &spec.recipe {
        Recipe::GoBinary { .. } => {
            if !spec.context().join("go.mod").is_file() {
                return Err(BuildError::NotAGoModule {
                    image,
                    path: spec.context().to_owned(),
                });
            }
            (Vec::new(), None)
        }
        Recipe::Dockerfile | Recipe::StaticBinary { .. } => {
            let dockerfile_path = spec.dockerfile_path();
            if !dockerfile_path.is_file() {
                return Err(BuildError::MissingDockerfile {
                    image,
                    path: dockerfile_path,
                });
            }
            let dockerfile =
                std::fs::read(&dockerfile_path).map_err(|source| BuildError::ReadDockerfile {
                    image: image.clone(),
                    path: dockerfile_path.clone(),
                    source,
                })?;
            let inside = dockerfile_inside_context(spec.context(), &dockerfile_path);
            (dockerfile, inside)
        }
    };
    let context = BuildContext::scan(spec.context(), inside.as_deref()).map_err(|source| {
        BuildError::Context {
            image: image.clone(),
            source: Box::new(source),
        }
    })?;
    let input_digest =
        content_tag(&spec, &context, &dockerfile).map_err(|source| BuildError::Context {
            image: image.clone(),
            source: Box::new(source),
        })?;
    finish_plan(spec, policy, run, input_digest, context, dockerfile, inside)
}

fn finish_plan(
    spec: ImageSpec,
    policy: &TagPolicy,
    run: &str,
    input_digest: String,
    context: BuildContext,
    dockerfile: Vec<u8>,
    inside: Option<String>,
) -> Result<BuildPlan, BuildError> {
    let image = spec.name().to_owned();
    let tag = match policy {
        TagPolicy::Fixed(tag) => tag.clone(),
        TagPolicy::Content => input_digest.clone(),
        TagPolicy::Unique => unique_tag(&spec, run),
    };
    let reference = normalize(&format!("{}:{tag}", spec.repository())).map_err(|source| {
        BuildError::Reference {
            image: image.clone(),
            source,
        }
    })?;
    Ok(BuildPlan {
        spec,
        reference,
        input_digest,
        context,
        dockerfile,
        inside,
    })
}

/// The Dockerfile's path inside the context, if it lies there.
fn dockerfile_inside_context(context: &Path, dockerfile: &Path) -> Option<String> {
    let context = context.canonicalize().ok()?;
    let dockerfile = dockerfile.canonicalize().ok()?;
    let relative = dockerfile.strip_prefix(&context).ok()?;
    Some(relative.to_string_lossy().replace('\\', "/"))
}

fn frame(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// `c-` and 20 hex digits of a digest of every build input: the context
/// after `.dockerignore`, the Dockerfile (also one outside the context),
/// build arguments, target and platform.
pub(crate) fn content_tag(
    spec: &ImageSpec,
    context: &BuildContext,
    dockerfile: &[u8],
) -> Result<String, ContextError> {
    let mut hasher = Sha256::new();
    frame(&mut hasher, b"kindling content tag v1");
    context.feed_digest(&mut hasher)?;
    frame(&mut hasher, dockerfile);
    if let Recipe::GoBinary { package } = &spec.recipe {
        // A Go binary: what `go build` makes depends on these as well.
        frame(&mut hasher, b"go binary v1");
        frame(&mut hasher, package.as_bytes());
        frame(&mut hasher, std::env::consts::ARCH.as_bytes());
    }
    for (key, value) in &spec.build_args {
        frame(&mut hasher, key.as_bytes());
        frame(&mut hasher, value.as_bytes());
    }
    frame(
        &mut hasher,
        spec.target.as_deref().unwrap_or_default().as_bytes(),
    );
    frame(
        &mut hasher,
        spec.platform.as_deref().unwrap_or_default().as_bytes(),
    );
    let digest = hex::encode(hasher.finalize());
    Ok(format!("c-{}", &digest[..20]))
}

/// `<name>-<user>-<git short sha>[-dirty]-<unix seconds>-<run>`, `run`
/// being random per [`Builder`], so two builds in one second differ.
fn unique_tag(spec: &ImageSpec, run: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".to_owned());
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(spec.context())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let sha = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "nogit".to_owned());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|status| !status.is_empty());
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let raw = format!(
        "{}-{user}-{sha}{}-{seconds}-{run}",
        spec.name(),
        if dirty { "-dirty" } else { "" }
    );
    let mut tag: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    tag.truncate(128);
    tag
}

/// The step the build stopped at: the last `Step N/M : ...` (classic
/// builder) or `#N [...]` (BuildKit) line.
fn failing_step(tail: &[String]) -> Option<String> {
    tail.iter()
        .rev()
        .find(|line| {
            line.starts_with("Step ") && line.contains(" : ")
                || line.starts_with('#') && line.contains(" [")
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_step_is_the_last_step_line() {
        let tail: Vec<String> = [
            "Step 1/3 : FROM scratch",
            " ---> abc",
            "Step 2/3 : RUN false",
            " ---> Running in 123",
            "/bin/sh: false: not found",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(failing_step(&tail).as_deref(), Some("Step 2/3 : RUN false"));
        assert_eq!(failing_step(&["no steps".to_owned()]), None);
    }

    #[test]
    fn unique_tags_are_valid_tags() {
        let tag = unique_tag(&ImageSpec::new("api", "/nonexistent"), "0a1b2c3d");
        assert!(tag.ends_with("-0a1b2c3d"), "{tag}");
        assert!(tag.starts_with("api-"), "{tag}");
        assert!(tag.contains("-nogit-"), "{tag}");
        assert!(
            normalize(&format!("localhost/kindling/api:{tag}")).is_ok(),
            "{tag}"
        );
    }
}
