//! A thousand tests, for the listing benchmark.

use kindling_harness::Suite;

fn suite() -> Suite {
    (0..1000).fold(Suite::new(), |suite, index| {
        suite.test(
            format!("group{}::case{index:04}", index % 10),
            |_ctx| async {},
        )
    })
}

kindling_harness::main!(suite());
