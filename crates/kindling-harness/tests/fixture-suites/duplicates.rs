//! Two tests with one name: the harness must refuse to run or list them.

use kindling_harness::Suite;

kindling_harness::main!(
    Suite::new()
        .test("same::name", |_ctx| async {})
        .test("other", |_ctx| async {})
        .test("same::name", |_ctx| async {})
);
