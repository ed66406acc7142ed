//! Builds through the Docker Engine API and returns the exact reference
//! and ID of what was built: several images at once, each after the images
//! of the same build its Dockerfile starts from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptions;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};

use super::ImageRef;
use super::archive::TarStream;
pub use super::build_error::BuildError;
use super::go_inputs::GoEnv;
use super::plan::{self, BuildPlan};
use super::recipes::{self, GENERATED_DOCKERFILE};
use super::reference::NormalizedReference;
use super::spec::{ImageSpec, Recipe, TagPolicy, TagPolicyError};

use super::build_error::TAIL_LINES;

/// One image: what it is now, and whether this call built it.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image, by its exact reference and ID.
    pub image: ImageRef,
    /// False when an image with the same content tag already existed.
    pub built: bool,
    /// How long building (or finding) it took, in seconds.
    pub seconds: f64,
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

    /// Builds every spec (at most `concurrency` at a time), each after the
    /// images its Dockerfile starts from; outcomes in the order of `specs`.
    pub async fn build_all(&self, specs: &[ImageSpec]) -> Result<Vec<BuildOutcome>, BuildError> {
        let plans = self.plan_all(specs).await?;
        self.build_planned(&plans).await
    }

    /// Plans every spec, each after the images its Dockerfile starts from
    /// (`FROM kindling:<name>`, resolved to their exact references); plans
    /// in the order of `specs`.
    pub async fn plan_all(&self, specs: &[ImageSpec]) -> Result<Vec<BuildPlan>, BuildError> {
        let mut bases = Vec::with_capacity(specs.len());
        for spec in specs {
            bases.push((spec.clone(), dockerfile_bases(spec).await?));
        }
        let order = plan::build_order(&bases)?;
        let mut planned: BTreeMap<String, NormalizedReference> = BTreeMap::new();
        let mut plans: Vec<Option<BuildPlan>> = vec![None; specs.len()];
        for index in order {
            let plan = self.plan_with(&specs[index], planned.clone()).await?;
            planned.insert(specs[index].name().to_owned(), plan.reference().clone());
            plans[index] = Some(plan);
        }
        Ok(plans
            .into_iter()
            .map(|plan| plan.expect("every spec planned"))
            .collect())
    }

    /// Builds planned images (at most `concurrency` at a time), each after
    /// the planned images it starts from; outcomes in the order of `plans`.
    pub async fn build_planned(
        &self,
        plans: &[BuildPlan],
    ) -> Result<Vec<BuildOutcome>, BuildError> {
        // Boxed as `dyn Future + Send` so the stream's type names no
        // closure: otherwise rustc cannot prove a suite's setup future Send.
        type Build<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<BuildOutcome, BuildError>> + Send + 'a>,
        >;
        let levels = levels(plans);
        let mut outcomes: Vec<Option<BuildOutcome>> = vec![None; plans.len()];
        for level in levels {
            let builds: Vec<Build<'_>> = level
                .iter()
                .map(|index| Box::pin(self.execute(&plans[*index])) as Build<'_>)
                .collect();
            let built: Vec<BuildOutcome> = futures_util::stream::iter(builds)
                .buffered(self.concurrency)
                .try_collect()
                .await?;
            for (index, outcome) in level.into_iter().zip(built) {
                outcomes[index] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every plan built"))
            .collect())
    }

    /// Builds one image, or finds it already built from the same inputs.
    /// A Dockerfile starting `FROM kindling:<name>` needs [`Builder::build_all`].
    pub async fn build(&self, spec: &ImageSpec) -> Result<BuildOutcome, BuildError> {
        let plan = self.plan(spec).await?;
        self.execute(&plan).await
    }

    /// Reads every input of `spec` and works out the reference its build
    /// gets, without building. Cheap: one pass over the context (for a Go
    /// binary, also over its other local modules, and `go env` once per
    /// process).
    pub async fn plan(&self, spec: &ImageSpec) -> Result<BuildPlan, BuildError> {
        self.plan_with(spec, BTreeMap::new()).await
    }

    async fn plan_with(
        &self,
        spec: &ImageSpec,
        planned: BTreeMap<String, NormalizedReference>,
    ) -> Result<BuildPlan, BuildError> {
        let spec = spec.clone();
        let policy = self.tag_policy()?.clone();
        let run = self.run.clone();
        tokio::task::spawn_blocking(move || {
            plan::plan(spec, &policy, &run, &planned, &GoEnv::current())
        })
        .await
        .expect("plan task")
    }

    async fn execute(&self, plan: &BuildPlan) -> Result<BuildOutcome, BuildError> {
        let started = Instant::now();
        let spec = plan.spec();
        let image = spec.name().to_owned();
        let reference = plan.reference();
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
        match &spec.recipe {
            Recipe::GoBinary { package } => {
                let work = recipes::work_dir(&image)?;
                let env = plan.go_env.clone().unwrap_or_else(GoEnv::current);
                let out = work.path().join(&image);
                recipes::go_build(&image, spec.context(), package, &out, &env).await?;
                let archive = recipes::scratch_archive(&image, work.path()).await?;
                self.run_build(spec, reference, archive, GENERATED_DOCKERFILE.to_owned())
                    .await?;
            }
            Recipe::StaticBinary { binary } => {
                let work = recipes::work_dir(&image)?;
                recipes::copy_binary(&image, binary, &work.path().join(&image))?;
                let archive = recipes::scratch_archive(&image, work.path()).await?;
                self.run_build(spec, reference, archive, GENERATED_DOCKERFILE.to_owned())
                    .await?;
            }
            Recipe::DebianRootfs {
                release,
                variant,
                packages,
            } => {
                recipes::import_debian(&self.docker, plan, release, variant, packages).await?;
            }
            Recipe::Dockerfile => {
                let extra = plan
                    .inside
                    .is_none()
                    .then(|| (GENERATED_DOCKERFILE, plan.dockerfile.clone()));
                let archive = plan.context.clone().stream_tar(extra);
                let dockerfile = plan
                    .inside
                    .clone()
                    .unwrap_or_else(|| GENERATED_DOCKERFILE.to_owned());
                self.run_build(spec, reference, archive, dockerfile).await?;
            }
        }
        let built = ImageRef::existing(&self.docker, &image, reference.as_str())
            .await
            .map_err(|source| BuildError::Lookup {
                reference: reference.to_string(),
                source,
            })?;
        tracing::info!(image = %image, reference = %reference, id = built.id(), "built");
        Ok(BuildOutcome {
            image: built,
            built: true,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `POST /build` of `archive`, tagged `reference`.
    async fn run_build(
        &self,
        spec: &ImageSpec,
        reference: &NormalizedReference,
        archive: TarStream,
        dockerfile: String,
    ) -> Result<(), BuildError> {
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
        let TarStream { body, writer } = archive;
        let stream = self
            .docker
            .build_image(options, None, Some(bollard::body_try_stream(body)));
        let engine = follow_build(&image, stream).await;
        // A context that could not be read broke the archive off: that is the
        // cause, whatever the engine made of the rest.
        writer
            .await
            .expect("archive task")
            .map_err(|source| BuildError::Context {
                image: image.clone(),
                source: Box::new(source),
            })?;
        engine
    }
}

/// Reads a build's output to its end: the build's failure with the step it
/// stopped at and the last lines of output, if it failed. Takes the stream
/// so that the request (and the archive it sends) is dropped on return.
async fn follow_build(
    image: &str,
    mut stream: impl Stream<Item = Result<BuildInfo, bollard::errors::Error>> + Unpin,
) -> Result<(), BuildError> {
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
                    image: image.to_owned(),
                    source,
                });
            }
        }
    }
    if let Some(message) = failure {
        let tail: Vec<String> = tail.into_iter().collect();
        return Err(BuildError::Failed {
            image: image.to_owned(),
            step: failing_step(&tail),
            message: message.trim().to_owned(),
            tail: tail.join("\n"),
        });
    }
    Ok(())
}

/// The images of the same build a spec's Dockerfile starts from.
async fn dockerfile_bases(spec: &ImageSpec) -> Result<Vec<String>, BuildError> {
    if spec.recipe != Recipe::Dockerfile {
        return Ok(Vec::new());
    }
    let path = spec.dockerfile_path();
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => Ok(plan::base_placeholders(&text)),
        // Planning names the missing Dockerfile.
        Err(_) => Ok(Vec::new()),
    }
}

/// The plans in groups that can build at once: each group after the
/// groups holding the images its members start from.
fn levels(plans: &[BuildPlan]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; plans.len()];
    // A plan's level is one more than its deepest base's: the longest chain
    // has at most as many links as there are plans.
    for _ in 0..plans.len() {
        for index in 0..plans.len() {
            let deepest = plans[index]
                .bases()
                .iter()
                .filter_map(|base| plans.iter().position(|plan| plan.spec().name() == base))
                .map(|at| level[at] + 1)
                .max()
                .unwrap_or(0);
            level[index] = level[index].max(deepest);
        }
    }
    let depth = level.iter().copied().max().map_or(0, |deepest| deepest + 1);
    (0..depth)
        .map(|depth| {
            (0..plans.len())
                .filter(|index| level[*index] == depth)
                .collect()
        })
        .collect()
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
}
