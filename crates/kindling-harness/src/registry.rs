//! Tests registered with `#[kindling::test]`.
//!
//! The attribute emits a `static Registration` and a constructor (`ctor`)
//! that links it into a list before `main`. The constructor only takes an
//! uncontended lock and stores a pointer: no allocation, no I/O, nothing
//! printed, so listing stays free of side effects.

use std::any::Any;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::error::TestResult;
use crate::requirement::Requirement;
use crate::suite::{Test, TestContext, TestOptions};
use crate::util::BoxFuture;

/// The body of a registered test.
#[doc(hidden)]
pub enum RegisteredBody {
    /// `async fn name() -> ...`: needs no environment.
    Standalone(fn() -> BoxFuture<TestResult>),
    /// `async fn name(ctx: TestContext<E>) -> ...`: `make` holds a
    /// `fn(TestContext<E>) -> BoxFuture<TestResult>`.
    WithEnv {
        environment_type: &'static str,
        make: &'static (dyn Any + Send + Sync),
    },
}

/// One `#[kindling::test]`.
#[doc(hidden)]
pub struct Registration {
    module_path: &'static str,
    function: &'static str,
    ignored: bool,
    timeout_ms: Option<u64>,
    requirements: Option<fn() -> Vec<Requirement>>,
    body: RegisteredBody,
    next: OnceLock<&'static Registration>,
}

impl Registration {
    pub const fn new(
        module_path: &'static str,
        function: &'static str,
        ignored: bool,
        timeout_ms: Option<u64>,
        requirements: Option<fn() -> Vec<Requirement>>,
        body: RegisteredBody,
    ) -> Self {
        Registration {
            module_path,
            function,
            ignored,
            timeout_ms,
            requirements,
            body,
            next: OnceLock::new(),
        }
    }

    /// `crate::a::b` + `f` gives `a::b::f`: the crate name is not part of a test name.
    fn test_name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_crate, modules)) => format!("{modules}::{}", self.function),
            None => self.function.to_owned(),
        }
    }
}

static HEAD: Mutex<Option<&'static Registration>> = Mutex::new(None);

/// Called by the constructor the attribute emits.
#[doc(hidden)]
pub fn register(registration: &'static Registration) {
    let mut head = HEAD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(previous) = *head
        && registration.next.set(previous).is_err()
    {
        return; // already registered
    }
    *head = Some(registration);
}

/// A registered test's environment type is not the suite's.
#[derive(Debug, thiserror::Error)]
#[error(
    "test `{test}` takes `{found}` but the suite's environment is `{expected}`: change the test's parameter type, or remove it if the test needs no environment"
)]
pub struct RegistryError {
    /// The test's name, its module path without the crate and its function.
    pub test: String,
    /// The type of the test's parameter as written in its signature, spaces
    /// removed.
    pub found: &'static str,
    /// The suite's environment type, as [`std::any::type_name`] gives it.
    pub expected: &'static str,
}

/// Every registered test, as tests of a suite with environment `E`.
pub(crate) fn collect<E: Send + Sync + 'static>() -> Result<Vec<Test<E>>, RegistryError> {
    let mut tests = Vec::new();
    let mut cursor = *HEAD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while let Some(registration) = cursor {
        let name = registration.test_name();
        let options = TestOptions {
            ignored: registration.ignored,
            timeout: registration.timeout_ms.map(Duration::from_millis),
            requirements: registration
                .requirements
                .map(|requirements| requirements())
                .unwrap_or_default(),
        };
        let test = match &registration.body {
            RegisteredBody::Standalone(body) => Test::standalone(name, options, *body),
            RegisteredBody::WithEnv {
                environment_type,
                make,
            } => {
                let Some(body) = make.downcast_ref::<fn(TestContext<E>) -> BoxFuture<TestResult>>()
                else {
                    return Err(RegistryError {
                        test: name,
                        found: environment_type,
                        expected: std::any::type_name::<E>(),
                    });
                };
                Test::with_env(name, options, *body)
            }
        };
        tests.push(test);
        cursor = registration.next.get().copied();
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(_: TestContext<u32>) -> BoxFuture<TestResult> {
        Box::pin(async { Ok(()) })
    }

    static BODY: fn(TestContext<u32>) -> BoxFuture<TestResult> = body;

    static REGISTRATION: Registration = Registration::new(
        "fixture::api",
        "counts",
        false,
        None,
        None,
        RegisteredBody::WithEnv {
            environment_type: "TestContext<u32>",
            make: &BODY,
        },
    );

    #[test]
    fn a_test_of_another_environment_type_is_refused_naming_both_types() {
        register(&REGISTRATION);
        assert_eq!(collect::<u32>().map(|tests| tests.len()).ok(), Some(1));
        let error = collect::<String>()
            .err()
            .expect("a String suite refuses it");
        assert_eq!(
            error.to_string(),
            "test `api::counts` takes `TestContext<u32>` but the suite's environment is `alloc::string::String`: change the test's parameter type, or remove it if the test needs no environment"
        );
    }
}
