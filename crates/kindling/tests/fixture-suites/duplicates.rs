//! Two tests with one name: the harness must refuse to run or list them.

use kindling::Suite;

kindling::main!(
    Suite::new()
        .test("same::name", |_ctx| async {})
        .test("other", |_ctx| async {})
        .test("same::name", |_ctx| async {})
);
