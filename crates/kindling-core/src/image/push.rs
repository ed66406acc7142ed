//! Pushes images to a registry a remote cluster pulls from, and returns
//! each one by the exact manifest digest the registry stored.
//!
//! An image built as `localhost/kindling/api:c-1f2e` is tagged
//! `<registry>/kindling/api:c-1f2e`, pushed, and handed back as
//! `<registry>/kindling/api@sha256:<manifest digest>`: a tag in a shared
//! registry can move, a digest cannot.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, TagImageOptions};
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::ImageRef;
use super::reference::{NormalizedReference, ReferenceError, normalize};

/// Repository path under the registry that pushed images go to.
const PUSH_NAMESPACE: &str = "kindling";
/// Lines of push output kept for an error.
const TAIL_LINES: usize = 20;
/// Images pushed at once.
const CONCURRENCY: usize = 2;

/// Pushing to a registry failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The registry address is not `host[:port][/path]` with a host first (else
    /// images would name Docker Hub).
    #[error(
        "`{registry}` is not a registry address: use a host with a port or a domain, optionally with a path, such as `127.0.0.1:5000` or `registry.example.com/team`"
    )]
    InvalidRegistry {
        /// The address as given, without a trailing `/`.
        registry: String,
        /// Why a reference under it does not parse, when that is the reason.
        #[source]
        source: Option<ReferenceError>,
    },
    /// An image's reference in the registry (its push target, or the pushed
    /// digest reference) is not valid.
    #[error("image `{image}` cannot be named in registry `{registry}`")]
    Reference {
        /// The image's logical name.
        image: String,
        /// The registry's address.
        registry: String,
        /// Why the reference is not valid.
        #[source]
        source: ReferenceError,
    },
    /// Tagging the image with its push target in the local engine failed.
    #[error("failed to tag image `{image}` ({id}) as `{target}` in the local engine")]
    Tag {
        /// The image's logical name.
        image: String,
        /// The image's ID.
        id: String,
        /// The reference it was to be tagged as.
        target: String,
        /// The Docker client's error.
        #[source]
        source: Box<bollard::errors::Error>,
    },
    /// The engine's push of the image to the registry failed.
    #[error(
        "failed to push image `{image}` as `{target}` to registry `{registry}`: {message}\ncheck that the registry answers (`curl http://{registry}/v2/` or https), that KINDLING_REGISTRY_USERNAME and KINDLING_REGISTRY_PASSWORD are right if it needs credentials, and that the engine trusts it (a plain-HTTP registry outside 127.0.0.0/8 must be listed in the engine's `insecure-registries`){}",
        tail_section(.tail)
    )]
    Push {
        /// The image's logical name.
        image: String,
        /// The registry's address.
        registry: String,
        /// The reference pushed.
        target: String,
        /// The engine's error message.
        message: String,
        /// The last lines of the push's progress output, joined by newlines
        /// (empty when there were none).
        tail: String,
    },
    /// The push ended without the engine reporting the manifest digest of what
    /// it pushed.
    #[error(
        "the engine pushed image `{image}` as `{target}` but reported no manifest digest{}",
        tail_section(.tail)
    )]
    NoDigest {
        /// The image's logical name.
        image: String,
        /// The reference pushed.
        target: String,
        /// The last lines of the push's progress output, joined by newlines.
        tail: String,
    },
}

fn tail_section(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n--- last lines of push output ---\n{tail}")
    }
}

/// Credentials for a registry that requires them.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// The user name to log in to the registry with.
    pub username: String,
    /// The password that goes with it.
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A registry images are pushed to: `host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    address: String,
    credentials: Option<RegistryCredentials>,
}

impl Registry {
    /// A registry at `address` such as `127.0.0.1:5000` or
    /// `registry.example.com/team`. The first component must be a host
    /// (with a port, a `.`, or `localhost`), or the reference would name
    /// Docker Hub instead.
    pub fn new(address: &str) -> Result<Registry, PushError> {
        let address = address.trim_end_matches('/').to_owned();
        let invalid = |source| PushError::InvalidRegistry {
            registry: address.clone(),
            source,
        };
        let probe = format!("{address}/{PUSH_NAMESPACE}/probe");
        let normalized = normalize(&probe).map_err(|error| invalid(Some(error)))?;
        if normalized.repository() != probe {
            return Err(invalid(None));
        }
        Ok(Registry {
            address,
            credentials: None,
        })
    }

    /// Logs in to the registry with `credentials` for every push.
    /// The password (and `base64(user:password)`) is redacted from
    /// everything this process writes from then on ([`crate::redaction`]).
    pub fn with_credentials(mut self, credentials: RegistryCredentials) -> Self {
        let label = format!("password of registry {}", self.address);
        let mut redactions = crate::redaction::Redactions::new();
        redactions
            .add(&credentials.password, &label)
            .add_basic_auth(&credentials.username, &credentials.password, &label);
        crate::redaction::learn(redactions);
        self.credentials = Some(credentials);
        self
    }

    /// The address as configured, e.g. `127.0.0.1:5000`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The host (and port) part, the registry docker logs into.
    pub fn host(&self) -> &str {
        self.address.split('/').next().unwrap_or(&self.address)
    }

    /// Where `image` goes, by tag: `<registry>/kindling/<name>:<tag>`. The
    /// tag is the image's own (its content tag), or `id-<12 hex>` of its ID
    /// when it is pinned by digest only.
    pub fn target(&self, image: &ImageRef) -> Result<NormalizedReference, PushError> {
        let tag = match image.reference().tag() {
            Some(tag) => tag.to_owned(),
            None => {
                let hex = image.id().strip_prefix("sha256:").unwrap_or(image.id());
                format!("id-{}", &hex[..hex.len().min(12)])
            }
        };
        normalize(&format!(
            "{}/{PUSH_NAMESPACE}/{}:{tag}",
            self.address,
            image.name()
        ))
        .map_err(|source| PushError::Reference {
            image: image.name().to_owned(),
            registry: self.address.clone(),
            source,
        })
    }

    fn docker_credentials(&self) -> Option<DockerCredentials> {
        self.credentials
            .as_ref()
            .map(|credentials| DockerCredentials {
                username: Some(credentials.username.clone()),
                password: Some(credentials.password.clone()),
                serveraddress: Some(self.host().to_owned()),
                ..Default::default()
            })
    }
}

/// Pushes images through the engine to one registry.
#[derive(Clone)]
pub struct Pusher {
    docker: Docker,
    registry: Registry,
}

impl Pusher {
    /// A pusher of images from the local engine `docker` to `registry`.
    pub fn new(docker: Docker, registry: Registry) -> Self {
        Pusher { docker, registry }
    }

    /// The registry images are pushed to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Pushes every image (a few at a time), returning them in order.
    pub async fn push_all(&self, images: &[ImageRef]) -> Result<Vec<ImageRef>, PushError> {
        // Owned futures: a stream of futures borrowing `images` is not
        // `Send` for every lifetime, which boxed provider futures need.
        let pushes = images.iter().cloned().map(|image| {
            let pusher = self.clone();
            async move { pusher.push(&image).await }
        });
        futures_util::stream::iter(pushes)
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Pushes one image and returns it by the manifest digest the registry
    /// stored: same logical name, same image ID.
    pub async fn push(&self, image: &ImageRef) -> Result<ImageRef, PushError> {
        let target = self.registry.target(image)?;
        let repository = target.repository().to_owned();
        let tag = target.tag().expect("a push target has a tag").to_owned();
        // Tag by ID, not by reference: the engine pushes exactly the image
        // the ImageRef was made from even if its old name moved since.
        self.docker
            .tag_image(
                image.id(),
                Some(TagImageOptions {
                    repo: Some(repository.clone()),
                    tag: Some(tag.clone()),
                }),
            )
            .await
            .map_err(|source| PushError::Tag {
                image: image.name().to_owned(),
                id: image.id().to_owned(),
                target: target.to_string(),
                source: Box::new(source),
            })?;

        let mut stream = self.docker.push_image(
            &repository,
            Some(PushImageOptions {
                tag: Some(tag.clone()),
                platform: None,
            }),
            self.registry.docker_credentials(),
        );
        let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|error| PushError::Push {
                image: image.name().to_owned(),
                registry: self.registry.address.clone(),
                target: target.to_string(),
                message: stream_error_message(error),
                tail: tail.iter().cloned().collect::<Vec<String>>().join("\n"),
            })?;
            if let Some(status) = info.status {
                if let Some(found) = pushed_digest(&status, &tag) {
                    digest = Some(found.to_owned());
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(status);
            }
        }
        let tail = tail.into_iter().collect::<Vec<String>>().join("\n");
        let Some(digest) = digest else {
            return Err(PushError::NoDigest {
                image: image.name().to_owned(),
                target: target.to_string(),
                tail,
            });
        };
        let reference = normalize(&format!("{repository}@{digest}")).map_err(|source| {
            PushError::Reference {
                image: image.name().to_owned(),
                registry: self.registry.address.clone(),
                source,
            }
        })?;
        tracing::info!(image = %image.name(), reference = %reference, "pushed");
        Ok(ImageRef {
            name: image.name().to_owned(),
            reference,
            id: image.id().to_owned(),
        })
    }
}

fn stream_error_message(error: bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

/// The manifest digest in the engine's closing push line,
/// `<tag>: digest: sha256:<hex> size: <bytes>` (bollard drops the `aux`
/// object that carries it too).
fn pushed_digest<'a>(status: &'a str, tag: &str) -> Option<&'a str> {
    let rest = status.strip_prefix(tag)?.strip_prefix(": digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let (algorithm, hex) = digest.split_once(':')?;
    (!algorithm.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    fn image(name: &str, reference: &str) -> ImageRef {
        ImageRef {
            name: name.to_owned(),
            reference: normalize(reference).unwrap(),
            id: format!("sha256:{HEX}"),
        }
    }

    #[test]
    fn registry_addresses_must_name_a_host() {
        for good in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost/team",
            "registry.example.com",
            "registry.example.com/team/e2e",
            "[::1]:5000",
            "127.0.0.1:5000/",
        ] {
            Registry::new(good).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for bad in [
            "",
            "registry",
            "team/e2e",
            "Registry.example.com/Team",
            "127.0.0.1:5000/x:1",
            "127.0.0.1:5000/x@sha256:00",
            "http://127.0.0.1:5000",
        ] {
            let error = Registry::new(bad).expect_err(bad);
            assert!(
                error.to_string().contains("is not a registry address"),
                "{bad}: {error}"
            );
        }
        assert_eq!(
            Registry::new("127.0.0.1:5000/").unwrap().address(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            Registry::new("reg.io:443/team").unwrap().host(),
            "reg.io:443"
        );
    }

    #[test]
    fn targets_keep_the_content_tag_or_use_the_id() {
        let registry = Registry::new("127.0.0.1:5000").unwrap();
        let built = image("api", "localhost/kindling/api:c-1f2e");
        assert_eq!(
            registry.target(&built).unwrap().as_str(),
            "127.0.0.1:5000/kindling/api:c-1f2e"
        );
        let pinned = image("postgres", &format!("postgres@sha256:{HEX}"));
        assert_eq!(
            registry.target(&pinned).unwrap().as_str(),
            "127.0.0.1:5000/kindling/postgres:id-7cc4b5aefd1d"
        );
        let error = registry
            .target(&image("Bad_Name", "localhost/x:1"))
            .unwrap_err();
        assert!(error.to_string().contains("`Bad_Name`"), "{error}");
        assert!(error.to_string().contains("`127.0.0.1:5000`"), "{error}");
    }

    #[test]
    fn the_digest_comes_from_the_closing_push_line() {
        let line = format!("c-1f2e: digest: sha256:{HEX} size: 528");
        assert_eq!(
            pushed_digest(&line, "c-1f2e"),
            Some(format!("sha256:{HEX}").as_str())
        );
        assert_eq!(pushed_digest(&line, "c-1f"), None);
        assert_eq!(pushed_digest("Pushed", "c-1f2e"), None);
        assert_eq!(
            pushed_digest("c-1f2e: digest: nope size: 1", "c-1f2e"),
            None
        );
    }

    #[test]
    fn credentials_are_not_printed() {
        let credentials = RegistryCredentials {
            username: "ci".to_owned(),
            password: "hunter2".to_owned(),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
