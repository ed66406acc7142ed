//! A setup that builds one image with `kindling::image::Builder::new`,
//! which tags by `KINDLING_TAG_POLICY` (and `KINDLING_IMAGE_TAG`). Its test
//! writes the built reference into `$FIXTURE_REPORT`. No cluster needed.

use std::path::PathBuf;

use kindling::image::{Builder, ImageSpec};
use kindling::{Requirement, Suite};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Built {
    reference: String,
}

fn context() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tags")
}

fn main() -> std::process::ExitCode {
    Suite::with_setup(|setup| async move {
        let docker = kindling::docker::connect().await?;
        let built = setup
            .phase(
                "build",
                Builder::new(docker).build(&ImageSpec::new("fixture-tags", context())),
            )
            .await?;
        Ok(Built {
            reference: built.image.reference().to_string(),
        })
    })
    .requires(Requirement::docker())
    .test("tags::report", |ctx| async move {
        if let Some(path) = std::env::var_os("FIXTURE_REPORT") {
            std::fs::write(path, &ctx.env().reference).expect("report write");
        }
    })
    .run()
}
