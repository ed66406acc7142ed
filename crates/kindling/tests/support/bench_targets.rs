//! The suites' tests and the files the benches run, named in one place so
//! that a test checks they still exist: a bench naming a renamed test or a
//! moved folder used to stop `cargo bench --workspace` halfway.

/// One test of a workspace suite: its package, test target and test name.
#[derive(Clone, Copy, Debug)]
pub struct SuiteTest {
    pub package: &'static str,
    pub target: &'static str,
    pub test: &'static str,
}

pub const DATASTORAGE_ONE_EVENT: SuiteTest = SuiteTest {
    package: "e2e-datastorage",
    target: "datastorage",
    test: "events::writes_and_reads_one_event",
};

pub const GATEWAY_INTAKE: SuiteTest = SuiteTest {
    package: "e2e-gateway",
    target: "gateway",
    test: "intake::an_alertmanager_alert_creates_a_request_with_its_spec",
};

pub const NOTIFICATION_DELIVERY: SuiteTest = SuiteTest {
    package: "e2e-notification",
    target: "notification",
    test: "delivery::a_request_reaches_sent_and_its_receiver",
};

pub const AUTHWEBHOOK_MUTATION: SuiteTest = SuiteTest {
    package: "e2e-authwebhook",
    target: "authwebhook",
    test: "admission::mutation_stamps_the_user_who_made_the_object",
};

/// The `basic` fixture suite's test the harness bench times.
pub const BASIC_CREATE: SuiteTest = SuiteTest {
    package: "kindling-harness-fixtures",
    target: "basic",
    test: "api::create",
};

/// Every suite test a bench runs.
pub const SUITE_TESTS: &[SuiteTest] = &[
    DATASTORAGE_ONE_EVENT,
    GATEWAY_INTAKE,
    NOTIFICATION_DELIVERY,
    AUTHWEBHOOK_MUTATION,
    BASIC_CREATE,
];

/// Every file or folder a bench reads, relative to the workspace root.
pub const PATHS: &[&str] = &[
    "fixtures/toolbox",
    "fixtures/postgres",
    "fixtures/redis",
    "fixtures/kind/two-nodes.yaml",
    "crates/kindling/tests/fixture-suites/stack/web/main.go",
    "crates/kindling/tests/fixture-suites/stack/web/go.mod",
    "e2e/datastorage",
    "e2e/gateway",
    "e2e/notification",
    "e2e/authwebhook",
];
