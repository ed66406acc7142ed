//! The `Suite` builder a suite author writes, and the tests it holds.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, TestResult};
use crate::requirement::Requirement;
use crate::setup::{AliveFn, FailureFn, FingerprintFn, SetupContext, SetupFn};
use crate::util::{BoxFuture, name_part, run_name_part};

/// What a test body receives: the run-wide environment and facts about the test.
pub struct TestContext<E = ()> {
    pub(crate) environment: Arc<E>,
    pub(crate) test_name: String,
    pub(crate) run_id: String,
    pub(crate) suite: String,
    pub(crate) artifacts_root: PathBuf,
}

impl<E> TestContext<E> {
    /// The environment the run-wide setup produced.
    pub fn env(&self) -> &E {
        &self.environment
    }

    /// The test's full `::`-separated name.
    pub fn test_name(&self) -> &str {
        &self.test_name
    }

    /// The run this test belongs to (nextest's run id under nextest).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The suite's name.
    pub fn suite(&self) -> &str {
        &self.suite
    }

    /// Where this test's artifacts go on failure:
    /// `target/kindling/artifacts/<run id>/<suite>/<test name>`.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.artifacts_root
            .join(&self.run_id)
            .join(&self.suite)
            .join(self.test_name.replace("::", "__"))
    }

    /// A name unique to this test and run, usable as a Kubernetes object
    /// name: lowercase letters, digits and `-`, at most 63 characters. A
    /// long prefix is cut, never the run and test hash that end the name.
    pub fn unique_name(&self, prefix: &str) -> String {
        unique_name(&self.run_id, &self.test_name, prefix)
    }
}

/// The context's environment's methods are the context's: a test of a
/// suite whose environment is `E` calls `ctx.method()` for `E::method`.
impl<E> std::ops::Deref for TestContext<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.environment
    }
}

/// The test whose body is running on the current task, as libraries built
/// on the harness see it: [`current_test`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentTest {
    /// The test's full `::`-separated name.
    pub test_name: String,
    /// The run it belongs to.
    pub run_id: String,
    /// The suite's name.
    pub suite: String,
}

impl CurrentTest {
    /// [`TestContext::unique_name`] of this test.
    pub fn unique_name(&self, prefix: &str) -> String {
        unique_name(&self.run_id, &self.test_name, prefix)
    }
}

tokio::task_local! {
    static CURRENT_TEST: CurrentTest;
}

/// The test whose body is running on this task (not on tasks it spawned),
/// or `None` outside a test body.
pub fn current_test() -> Option<CurrentTest> {
    CURRENT_TEST.try_with(Clone::clone).ok()
}

/// Runs `body` as the body of `test`: [`current_test`] gives it there.
pub(crate) async fn as_current_test<T>(test: CurrentTest, body: impl Future<Output = T>) -> T {
    CURRENT_TEST.scope(test, body).await
}

fn unique_name(run_id: &str, test_name: &str, prefix: &str) -> String {
    let run = run_name_part(run_id);
    let suffix = format!("{run}-{:08x}", fnv1a(test_name.as_bytes()));
    let prefix = name_part(prefix, 63 - suffix.len() - 1);
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

pub(crate) enum TestBody<E> {
    /// Needs the run-wide environment: triggers the setup.
    WithEnv(Box<dyn FnOnce(TestContext<E>) -> BoxFuture<TestResult> + Send>),
    /// Needs nothing: never triggers the setup.
    Standalone(Box<dyn FnOnce() -> BoxFuture<TestResult> + Send>),
}

/// Options of one test.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    pub(crate) ignored: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) requirements: Vec<Requirement>,
}

impl TestOptions {
    /// No options: not ignored, the suite's timeout.
    pub fn new() -> Self {
        TestOptions::default()
    }

    /// Marks the test ignored: it runs only with `--ignored` or `--include-ignored`.
    pub fn ignored(mut self) -> Self {
        self.ignored = true;
        self
    }

    /// This test's timeout, overriding the suite's and `KINDLING_TEST_TIMEOUT`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Something this test needs from the machine: when it is missing the
    /// test is listed as ignored, or fails when `CI` is set (see
    /// [`Suite::requires`]).
    pub fn requires(mut self, requirement: Requirement) -> Self {
        self.requirements.push(requirement);
        self
    }
}

/// One test: a `::`-separated name, a body, and options.
pub(crate) struct Test<E> {
    pub(crate) name: String,
    pub(crate) body: TestBody<E>,
    pub(crate) options: TestOptions,
}

impl<E: Send + Sync + 'static> Test<E> {
    pub(crate) fn with_env<F, Fut, R>(name: String, options: TestOptions, body: F) -> Self
    where
        F: FnOnce(TestContext<E>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTestResult,
    {
        Test {
            name,
            body: TestBody::WithEnv(Box::new(move |context| {
                let future = body(context);
                Box::pin(async move { future.await.into_test_result() })
            })),
            options,
        }
    }

    pub(crate) fn standalone<F, Fut, R>(name: String, options: TestOptions, body: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTestResult,
    {
        Test {
            name,
            body: TestBody::Standalone(Box::new(move || {
                let future = body();
                Box::pin(async move { future.await.into_test_result() })
            })),
            options,
        }
    }
}

/// What a fingerprint closure may return: the fingerprint, or a
/// `Result` whose error fails the setup (naming the fingerprint).
pub trait IntoFingerprint {
    /// The fingerprint, or the error that fails the setup.
    fn into_fingerprint(self) -> Result<String, BoxError>;
}

impl IntoFingerprint for String {
    fn into_fingerprint(self) -> Result<String, BoxError> {
        Ok(self)
    }
}

impl<Er: Into<BoxError>> IntoFingerprint for Result<String, Er> {
    fn into_fingerprint(self) -> Result<String, BoxError> {
        self.map_err(Into::into)
    }
}

/// What a test body may return: `()` or `Result<(), E>` for any error `E`
/// that converts into [`BoxError`].
pub trait IntoTestResult {
    /// The test's result, its error boxed.
    fn into_test_result(self) -> TestResult;
}

impl IntoTestResult for () {
    fn into_test_result(self) -> TestResult {
        Ok(())
    }
}

impl<Er: Into<BoxError>> IntoTestResult for Result<(), Er> {
    fn into_test_result(self) -> TestResult {
        self.map_err(Into::into)
    }
}

/// An E2E suite: a run-wide setup producing an environment `E`, and tests.
///
/// ```no_run
/// use kindling_harness::Suite;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Env { greeting: String }
///
/// fn main() -> std::process::ExitCode {
///     Suite::with_setup(|setup| async move {
///         let greeting = setup.phase("greet", async { Ok::<_, std::io::Error>("hello".to_owned()) }).await?;
///         Ok(Env { greeting })
///     })
///     .test("greeting::is_hello", |ctx| async move {
///         assert_eq!(ctx.env().greeting, "hello");
///     })
///     .run()
/// }
/// ```
pub struct Suite<E = ()> {
    pub(crate) name: Option<String>,
    pub(crate) package: Option<String>,
    pub(crate) build_target_tmpdir: Option<std::path::PathBuf>,
    pub(crate) build_manifest_dir: Option<std::path::PathBuf>,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) setup: Option<SetupFn<E>>,
    pub(crate) alive: Vec<(String, AliveFn<E>)>,
    pub(crate) fingerprints: Vec<(String, FingerprintFn)>,
    pub(crate) tests: Vec<Test<E>>,
    pub(crate) test_timeout: Option<Duration>,
    pub(crate) setup_timeout: Option<Duration>,
    pub(crate) on_failure: Option<FailureFn<E>>,
}

impl Suite<()> {
    /// A suite without run-wide setup.
    pub fn new() -> Self {
        Suite::empty(None)
    }
}

impl Default for Suite<()> {
    fn default() -> Self {
        Suite::new()
    }
}

impl<E> Suite<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn empty(setup: Option<SetupFn<E>>) -> Self {
        Suite {
            name: None,
            package: None,
            build_target_tmpdir: None,
            build_manifest_dir: None,
            requirements: Vec::new(),
            setup,
            alive: Vec::new(),
            fingerprints: Vec::new(),
            tests: Vec::new(),
            test_timeout: None,
            setup_timeout: None,
            on_failure: None,
        }
    }

    /// A suite whose tests share an environment made once per run by
    /// `setup`. The environment is recorded as JSON in the suite's state
    /// file so the other processes of a nextest run read it instead of
    /// setting up again.
    pub fn with_setup<F, Fut>(setup: F) -> Self
    where
        F: Fn(SetupContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E, BoxError>> + Send + 'static,
    {
        Suite::empty(Some(Box::new(move |context| Box::pin(setup(context)))))
    }

    /// Names the suite (default: the test target's name). State, JUnit and
    /// setup reports are keyed by it.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a test that uses the run-wide environment. `name` is a
    /// `::`-separated path such as `api::create_order`.
    pub fn test<F, Fut, R>(self, name: impl Into<String>, body: F) -> Self
    where
        F: FnOnce(TestContext<E>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTestResult,
    {
        self.test_with(name, TestOptions::new(), body)
    }

    /// [`Suite::test`] with options (ignored, timeout).
    pub fn test_with<F, Fut, R>(
        mut self,
        name: impl Into<String>,
        options: TestOptions,
        body: F,
    ) -> Self
    where
        F: FnOnce(TestContext<E>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTestResult,
    {
        self.tests.push(Test::with_env(name.into(), options, body));
        self
    }

    /// Adds a test that needs no environment: selecting only such tests runs no setup.
    pub fn standalone<F, Fut, R>(
        mut self,
        name: impl Into<String>,
        options: TestOptions,
        body: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoTestResult,
    {
        self.tests
            .push(Test::standalone(name.into(), options, body));
        self
    }

    /// An input of the setup that the setup does not declare itself (a
    /// file the services read, a tool's version). When one changes, the
    /// next run sets up from scratch. A custom setup whose every input is
    /// fingerprinted this way is skipped on a later run while the
    /// fingerprints are unchanged and every [`Suite::alive`] check passes;
    /// kindling's `Environment` fingerprints what it declares by itself.
    /// Computed only when the setup is needed; an error fails the setup.
    pub fn fingerprint<R: IntoFingerprint>(
        mut self,
        key: impl Into<String>,
        compute: impl Fn() -> R + Send + Sync + 'static,
    ) -> Self {
        self.fingerprints
            .push((key.into(), Box::new(move || compute().into_fingerprint())));
        self
    }

    /// Something every test of the suite needs from the machine (a Docker
    /// engine, root, a cluster provider's pieces). Checked the same way
    /// when listing and when running: when it is missing, the tests are
    /// listed as ignored (SKIP under nextest, ignored under `cargo test`),
    /// or, when `CI` is set, fail with what is missing and how to get it.
    pub fn requires(mut self, requirement: Requirement) -> Self {
        self.requirements.push(requirement);
        self
    }

    /// A check that an earlier run's environment still works (the cluster
    /// answers, the namespace exists). Reuse happens only if all pass.
    pub fn alive<F, Fut>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.alive
            .push((name.into(), Box::new(move |env| Box::pin(check(env)))));
        self
    }

    /// Runs when a test that received the environment fails (a returned
    /// error, a panic or a timeout), with the folder for that test's
    /// artifacts; the failure message names the folder. See
    /// kindling's `Environment::collect_artifacts`.
    pub fn on_failure<F, Fut>(mut self, collect: F) -> Self
    where
        F: Fn(Arc<E>, PathBuf) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_failure = Some(Box::new(move |env, dir| Box::pin(collect(env, dir))));
        self
    }

    /// Default per-test timeout for this suite (`KINDLING_TEST_TIMEOUT` overrides it).
    pub fn test_timeout(mut self, timeout: Duration) -> Self {
        self.test_timeout = Some(timeout);
        self
    }

    /// Setup timeout for this suite (`KINDLING_SETUP_TIMEOUT` overrides it).
    pub fn setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = Some(timeout);
        self
    }

    #[doc(hidden)]
    pub fn __package(mut self, package: &str) -> Self {
        self.package = Some(package.to_owned());
        self
    }

    /// Where the suite binary was built: `CARGO_TARGET_TMPDIR` and
    /// `CARGO_MANIFEST_DIR` at compile time (set by `main!`).
    #[doc(hidden)]
    pub fn __built_in(mut self, target_tmpdir: Option<&str>, manifest_dir: &str) -> Self {
        self.build_target_tmpdir = target_tmpdir.map(Into::into);
        self.build_manifest_dir = Some(manifest_dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(test: &str, run: &str) -> TestContext<()> {
        TestContext {
            environment: Arc::new(()),
            test_name: test.to_owned(),
            run_id: run.to_owned(),
            suite: "s".to_owned(),
            artifacts_root: PathBuf::from("target/kindling/artifacts"),
        }
    }

    #[test]
    fn unique_names_are_valid_and_differ_per_test_and_run() {
        let a = context("api::get", "0b5e-11aa").unique_name("Orders_DB");
        let b = context("api::put", "0b5e-11aa").unique_name("Orders_DB");
        let c = context("api::get", "ffff-0000").unique_name("Orders_DB");
        assert!(a.starts_with("orders-db-0b5e11aa-"), "{a}");
        assert!(a != b && a != c && b != c);
        for name in [&a, &b, &c] {
            assert!(name.len() <= 63);
            assert!(
                name.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            );
        }
        assert_eq!(a, context("api::get", "0b5e-11aa").unique_name("Orders_DB"));
    }

    #[test]
    fn a_long_prefix_is_cut_and_the_test_hash_kept() {
        let long = "x".repeat(80);
        let a = context("api::get", "0b5e-11aa").unique_name(&long);
        let b = context("api::put", "0b5e-11aa").unique_name(&long);
        assert!(a.len() <= 63 && b.len() <= 63, "{a}");
        assert_ne!(a, b);
        assert!(
            a.ends_with(&format!("-0b5e11aa-{:08x}", fnv1a(b"api::get"))),
            "{a}"
        );
        assert_eq!(
            context("t", "r").unique_name("--"),
            format!("r-{:08x}", fnv1a(b"t"))
        );
    }
}
