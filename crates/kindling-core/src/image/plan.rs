//! What building a spec would make, worked out without building: every
//! input read once, the content digest behind tags, the exact reference,
//! and the images of the same build a Dockerfile names as its base
//! (`FROM kindling:<name>`), replaced by their exact references.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::build_error::BuildError;
use super::context::{BuildContext, ContextError};
use super::go_inputs::{self, GoEnv, GoInputs};
use super::reference::{NormalizedReference, normalize};
use super::spec::{ImageSpec, Recipe, TagPolicy};

/// What keeps a base small (70 MB instead of 159 MB, measured): bookworm's
/// merged /usr set up by mmdebstrap's hook instead of the `usrmerge`
/// package (which pulls in perl), and no manuals, translations or
/// documentation but copyrights, for this and every later `apt-get install`.
pub(crate) const SLIM: &[&str] = &[
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
];

/// The placeholder a Dockerfile's `FROM` uses for an image of the same build.
const BASE_PLACEHOLDER: &str = "kindling:";

/// A spec's build, planned.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub(crate) spec: ImageSpec,
    pub(crate) reference: NormalizedReference,
    /// The content digest of every build input (also under other policies).
    pub(crate) input_digest: String,
    pub(crate) context: BuildContext,
    /// The Dockerfile with its `FROM kindling:<name>` lines resolved.
    pub(crate) dockerfile: Vec<u8>,
    /// The Dockerfile's path inside the context, when it lies there and
    /// needed no resolving (else it is sent beside the context).
    pub(crate) inside: Option<String>,
    /// Images of the same build this one starts from.
    pub(crate) bases: Vec<String>,
    /// The environment a Go binary's inputs were read in, and its build runs in.
    pub(crate) go_env: Option<GoEnv>,
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

    /// A digest of every build input (an image it starts from included): it
    /// changes exactly when the image would be built differently.
    pub fn input_digest(&self) -> &str {
        &self.input_digest
    }

    /// The logical names of the images of the same build this one's
    /// Dockerfile starts from (`FROM kindling:<name>`).
    pub fn bases(&self) -> &[String] {
        &self.bases
    }
}

/// The names a Dockerfile's `FROM kindling:<name>` lines name, in order.
pub(crate) fn base_placeholders(dockerfile: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in dockerfile.lines() {
        if let Some((_, image)) = from_image(line)
            && let Some(name) = image.strip_prefix(BASE_PLACEHOLDER)
            && !names.iter().any(|known| known == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// A `FROM` line's image and where it starts in the line, past any
/// `--platform=` flag.
fn from_image(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    let offset = line.len() - trimmed.len();
    let keyword = trimmed.get(..4)?;
    if !keyword.eq_ignore_ascii_case("from") || !trimmed[4..].starts_with([' ', '\t']) {
        return None;
    }
    let mut position = offset + 4;
    for word in line[position..].split_whitespace() {
        let start = position + line[position..].find(word)?;
        position = start + word.len();
        if !word.starts_with("--") {
            return Some((start, word));
        }
    }
    None
}

/// The Dockerfile with each `FROM kindling:<name>` replaced by the exact
/// reference of `<name>` in `built`.
fn resolve_bases(
    image: &str,
    dockerfile: &str,
    built: &BTreeMap<String, NormalizedReference>,
) -> Result<String, BuildError> {
    let mut resolved = String::with_capacity(dockerfile.len());
    for line in dockerfile.split_inclusive('\n') {
        match from_image(line) {
            Some((start, base)) if base.starts_with(BASE_PLACEHOLDER) => {
                let name = &base[BASE_PLACEHOLDER.len()..];
                let reference = built.get(name).ok_or_else(|| BuildError::UnknownBase {
                    image: image.to_owned(),
                    base: name.to_owned(),
                    known: built.keys().cloned().collect(),
                })?;
                resolved.push_str(&line[..start]);
                resolved.push_str(reference.as_str());
                resolved.push_str(&line[start + base.len()..]);
            }
            _ => resolved.push_str(line),
        }
    }
    Ok(resolved)
}

/// The order in which `specs` can be planned and built: every image after
/// the images its Dockerfile starts from. Fails naming a cycle.
pub(crate) fn build_order(specs: &[(ImageSpec, Vec<String>)]) -> Result<Vec<usize>, BuildError> {
    let mut order = Vec::with_capacity(specs.len());
    let mut placed = vec![false; specs.len()];
    while order.len() < specs.len() {
        let ready = (0..specs.len()).find(|&index| {
            !placed[index]
                && specs[index].1.iter().all(|base| {
                    specs
                        .iter()
                        .position(|(spec, _)| spec.name() == base)
                        .is_none_or(|at| placed[at])
                })
        });
        match ready {
            Some(index) => {
                placed[index] = true;
                order.push(index);
            }
            None => {
                let waiting: Vec<String> = (0..specs.len())
                    .filter(|index| !placed[*index])
                    .map(|index| specs[index].0.name().to_owned())
                    .collect();
                return Err(BuildError::BaseCycle { images: waiting });
            }
        }
    }
    Ok(order)
}

/// Reads the inputs of `spec` and names what its build will be. `built`
/// holds the planned references of the images it may start from; a Go
/// binary is planned, and later built, in `go_env`.
pub(crate) fn plan(
    spec: ImageSpec,
    policy: &TagPolicy,
    run: &str,
    built: &BTreeMap<String, NormalizedReference>,
    go_env: &GoEnv,
) -> Result<BuildPlan, BuildError> {
    let image = spec.name().to_owned();
    let context_error = |source| BuildError::Context {
        image: image.clone(),
        source: Box::new(source),
    };
    // Besides the context: the Dockerfile, or the binary of a static one.
    let mut digested = Vec::new();
    let mut go = None;
    let (context, dockerfile, inside, bases) = match &spec.recipe {
        Recipe::StaticBinary { binary } => {
            digested = std::fs::read(binary).map_err(|source| BuildError::ReadBinary {
                image: image.clone(),
                path: binary.clone(),
                source,
            })?;
            (BuildContext::empty(), Vec::new(), None, Vec::new())
        }
        Recipe::DebianRootfs { .. } => (BuildContext::empty(), Vec::new(), None, Vec::new()),
        Recipe::GoBinary { .. } => {
            let (context, inputs) = read_go_module(&spec, go_env)?;
            go = Some(inputs);
            (context, Vec::new(), None, Vec::new())
        }
        Recipe::Dockerfile => read_dockerfile(&spec, built)?,
    };
    if digested.is_empty() {
        digested.clone_from(&dockerfile);
    }
    let input_digest =
        content_tag(&spec, &context, &digested, go.as_ref()).map_err(context_error)?;
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
        bases,
        go_env: go.map(|_| go_env.clone()),
    })
}

/// The context of the Go binary `spec` and the inputs of its build, read
/// in `go_env`.
fn read_go_module(
    spec: &ImageSpec,
    go_env: &GoEnv,
) -> Result<(BuildContext, GoInputs), BuildError> {
    let image = spec.name().to_owned();
    if !spec.context().join("go.mod").is_file() {
        return Err(BuildError::NotAGoModule {
            image,
            path: spec.context().to_owned(),
        });
    }
    let context =
        BuildContext::scan(spec.context(), None).map_err(|source| BuildError::Context {
            image: image.clone(),
            source: Box::new(source),
        })?;
    let inputs =
        go_inputs::read(spec.context(), go_env).map_err(|source| BuildError::GoInputs {
            image,
            source: Box::new(source),
        })?;
    Ok((context, inputs))
}

/// What a build reads besides its spec: its context, its Dockerfile (with
/// the bases resolved), the Dockerfile's path inside the context when it
/// is sent from there, and the images of the same build it starts from.
type RecipeInputs = (BuildContext, Vec<u8>, Option<String>, Vec<String>);

/// The context of the Dockerfile build `spec`, its Dockerfile with the
/// `FROM kindling:<name>` lines resolved from `built`, the Dockerfile's
/// path inside the context when it is sent from there, and the bases it
/// names.
fn read_dockerfile(
    spec: &ImageSpec,
    built: &BTreeMap<String, NormalizedReference>,
) -> Result<RecipeInputs, BuildError> {
    let image = spec.name().to_owned();
    let path = spec.dockerfile_path();
    if !path.is_file() {
        return Err(BuildError::MissingDockerfile { image, path });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| BuildError::ReadDockerfile {
        image: image.clone(),
        path: path.clone(),
        source,
    })?;
    let bases = base_placeholders(&text);
    let resolved = resolve_bases(&image, &text, built)?;
    let inside = dockerfile_inside_context(spec.context(), &path);
    let context = BuildContext::scan(spec.context(), inside.as_deref()).map_err(|source| {
        BuildError::Context {
            image,
            source: Box::new(source),
        }
    })?;
    // A resolved Dockerfile is sent beside the context, not read from it.
    let inside = inside.filter(|_| bases.is_empty());
    Ok((context, resolved.into_bytes(), inside, bases))
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
/// after `.dockerignore`, `file` (the Dockerfile, also one outside the
/// context, with the exact references of the images it starts from; the
/// binary of a static one), build arguments, target and platform; for a Go
/// binary its package and what else `go build` reads (`go`: the toolchain,
/// its settings and the other local modules), for a Debian root
/// filesystem its release, variant and packages.
pub(crate) fn content_tag(
    spec: &ImageSpec,
    context: &BuildContext,
    file: &[u8],
    go: Option<&GoInputs>,
) -> Result<String, ContextError> {
    let mut hasher = Sha256::new();
    frame(&mut hasher, b"kindling content tag v1");
    context.feed_digest(&mut hasher)?;
    frame(&mut hasher, file);
    match &spec.recipe {
        Recipe::Dockerfile => {}
        Recipe::GoBinary { package } => {
            frame(&mut hasher, b"go binary v2");
            frame(&mut hasher, package.as_bytes());
            frame(&mut hasher, std::env::consts::ARCH.as_bytes());
            if let Some(go) = go {
                go.feed_digest(&mut hasher)?;
            }
        }
        Recipe::StaticBinary { .. } => {
            frame(&mut hasher, b"static binary v1");
            frame(&mut hasher, spec.name().as_bytes());
        }
        Recipe::DebianRootfs {
            release,
            variant,
            packages,
        } => {
            frame(&mut hasher, b"debian rootfs v1");
            for flag in SLIM {
                frame(&mut hasher, flag.as_bytes());
            }
            frame(&mut hasher, release.as_bytes());
            frame(&mut hasher, variant.as_bytes());
            for package in packages {
                frame(&mut hasher, package.as_bytes());
            }
            frame(&mut hasher, std::env::consts::ARCH.as_bytes());
        }
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
/// being random per builder, so two builds in one second differ.
pub(crate) fn unique_tag(spec: &ImageSpec, run: &str) -> String {
    let user = crate::config::Config::current()
        .var("USER")
        .unwrap_or_else(|| "user".to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn from_placeholders_are_found_and_resolved() {
        let dockerfile = "# syntax\nFROM kindling:debian AS base\nRUN true\nfrom --platform=linux/amd64 kindling:debian\nFROM scratch\nCOPY --from=base / /\n";
        assert_eq!(base_placeholders(dockerfile), ["debian"]);
        let built = BTreeMap::from([(
            "debian".to_owned(),
            normalize("localhost/kindling/debian:c-1").unwrap(),
        )]);
        let resolved = resolve_bases("pg", dockerfile, &built).unwrap();
        assert_eq!(
            resolved,
            "# syntax\nFROM localhost/kindling/debian:c-1 AS base\nRUN true\nfrom --platform=linux/amd64 localhost/kindling/debian:c-1\nFROM scratch\nCOPY --from=base / /\n"
        );
        let error = resolve_bases("pg", "FROM kindling:ubuntu\n", &built).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("`FROM kindling:ubuntu`") && text.contains("(it has `debian`)"),
            "{text}"
        );
    }

    #[test]
    fn bases_build_first_and_cycles_are_named() {
        let spec = |name: &str| ImageSpec::new(name, "/x");
        let specs = vec![
            (spec("pg"), vec!["debian".to_owned()]),
            (spec("debian"), vec![]),
            (spec("redis"), vec!["debian".to_owned()]),
        ];
        assert_eq!(build_order(&specs).unwrap(), vec![1, 0, 2]);
        let cycle = vec![
            (spec("a"), vec!["b".to_owned()]),
            (spec("b"), vec!["a".to_owned()]),
        ];
        let error = build_order(&cycle).unwrap_err().to_string();
        assert!(error.contains("`a`, `b`"), "{error}");
    }
}
