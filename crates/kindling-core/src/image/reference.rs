//! Image references normalised the way containerd on a node names images.
//!
//! containerd's CRI plugin and `ctr images import` store every image under
//! distribution's `ParseDockerRef` form: Docker Hub names gain `docker.io/`
//! (and `library/` for single-component names), every other registry,
//! `localhost` included, is kept verbatim, a bare name gets `:latest`, and a
//! reference with both a tag and a digest keeps only the digest. A name in
//! any other form never matches the node's image list.
//!
//! Hand-written: the reference crates parse for pulling (oci-distribution
//! keeps a tag beside a digest; oci-unpack says it is not bug-for-bug
//! compatible with Docker), and only the exact `ParseDockerRef` form
//! matches a node's list. Half of this file is the table of cases that
//! pins that form.

use std::fmt;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const LOCALHOST: &str = "localhost";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_PATH_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// An image reference normalised exactly as containerd on a node names it.
///
/// It carries either a tag or a digest, never both and never neither.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedReference {
    full: String,
    repository_len: usize,
}

impl NormalizedReference {
    /// The full reference, e.g. `docker.io/library/nginx:latest`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Domain and path without tag or digest, e.g. `docker.io/library/nginx`.
    pub fn repository(&self) -> &str {
        &self.full[..self.repository_len]
    }

    /// The tag; `None` when the reference is pinned by digest.
    pub fn tag(&self) -> Option<&str> {
        self.full[self.repository_len..].strip_prefix(':')
    }

    /// The digest, e.g. `sha256:...`.
    pub fn digest(&self) -> Option<&str> {
        self.full[self.repository_len..].strip_prefix('@')
    }
}

impl fmt::Display for NormalizedReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl serde::Serialize for NormalizedReference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

/// Why a reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error("image reference is empty; name an image such as `nginx:1.25`")]
    Empty,
    /// The reference contains whitespace.
    #[error("image reference `{reference}` contains whitespace; remove it")]
    Whitespace {
        /// The reference as given.
        reference: String,
    },
    /// The reference is a bare 64-character hex image ID, not a name.
    #[error(
        "image reference `{reference}` is a bare 64-character hex id, which containerd does not accept as a name; use a repository name with a tag or digest"
    )]
    ImageId {
        /// The reference as given.
        reference: String,
    },
    /// The repository path (not the tag) has uppercase letters.
    #[error(
        "image reference `{reference}` has uppercase letters in its repository path; references must be lowercase (only the tag may use uppercase), so lowercase the path"
    )]
    Uppercase {
        /// The reference as given.
        reference: String,
    },
    /// The first component is neither a valid registry host nor a valid path
    /// component.
    #[error(
        "image reference `{reference}` has an invalid registry host `{domain}`; use a host name or IP address with an optional numeric port, such as `localhost:5000`"
    )]
    InvalidDomain {
        /// The reference as given.
        reference: String,
        /// The invalid host.
        domain: String,
    },
    /// The path has an empty component (a leading, trailing or repeated `/`).
    #[error(
        "image reference `{reference}` has an empty path component; remove the leading, trailing or repeated `/`"
    )]
    EmptyComponent {
        /// The reference as given.
        reference: String,
    },
    /// A path component has characters or separators a repository path does not
    /// allow.
    #[error(
        "image reference `{reference}` has an invalid path component `{component}`; use lowercase letters and digits separated by `.`, `_`, `__` or dashes"
    )]
    InvalidComponent {
        /// The reference as given.
        reference: String,
        /// The invalid component.
        component: String,
    },
    /// The reference has a `:` with no tag after it.
    #[error("image reference `{reference}` has an empty tag after `:`; add a tag or drop the `:`")]
    EmptyTag {
        /// The reference as given.
        reference: String,
    },
    /// The tag is longer than 128 characters, starts with `.` or `-`, or has
    /// characters a tag does not allow.
    #[error(
        "image reference `{reference}` has an invalid tag `{tag}`; use at most 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The invalid tag.
        tag: String,
    },
    /// The part after `@` is not a `sha256:`, `sha384:` or `sha512:` digest of
    /// the right length in lowercase hex.
    #[error(
        "image reference `{reference}` has an invalid digest `{digest}`; use `sha256:` followed by 64 lowercase hex digits (sha384: 96, sha512: 128)"
    )]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// The invalid digest.
        digest: String,
    },
    /// The repository path is longer than 255 characters.
    #[error(
        "image reference `{reference}` has a repository path longer than 255 characters; shorten it"
    )]
    TooLong {
        /// The reference as given.
        reference: String,
    },
}

/// Normalises `reference`; the only way to make a [`NormalizedReference`].
pub fn normalize(reference: &str) -> Result<NormalizedReference, ReferenceError> {
    let owned = || reference.to_owned();
    if reference.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if reference.chars().any(char::is_whitespace) {
        return Err(ReferenceError::Whitespace { reference: owned() });
    }
    if reference.len() == 64 && reference.bytes().all(is_lower_hex) {
        return Err(ReferenceError::ImageId { reference: owned() });
    }

    let (domain, remainder) = split_docker_domain(reference);
    // Neither a path nor a tag may contain `@` or `:`, so the first of each
    // starts the digest and the tag.
    let (name_and_tag, digest) = match remainder.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (remainder.as_str(), None),
    };
    let (path, tag) = match name_and_tag.split_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (name_and_tag, None),
    };

    let path_len = check_path(reference, domain, path)?;
    check_tag_and_digest(reference, tag, digest)?;
    // distribution/reference v0.6 (containerd 2.x) counts the path only, not
    // the domain.
    if path_len > MAX_PATH_LEN {
        return Err(ReferenceError::TooLong { reference: owned() });
    }

    let repository = format!("{domain}/{path}");
    let repository_len = repository.len();
    // `ParseDockerRef` drops the tag when a digest is present: containerd
    // pulls and stores `name@digest`, never `name:tag@digest`.
    let full = match (digest, tag) {
        (Some(digest), _) => format!("{repository}@{digest}"),
        (None, Some(tag)) => format!("{repository}:{tag}"),
        (None, None) => format!("{repository}:{DEFAULT_TAG}"),
    };
    Ok(NormalizedReference {
        full,
        repository_len,
    })
}

/// The length of `reference`'s repository path (with `domain` when it is
/// no host but a path component), or why `domain` and `path` are not
/// valid.
fn check_path(reference: &str, domain: &str, path: &str) -> Result<usize, ReferenceError> {
    let owned = || reference.to_owned();
    if has_uppercase(path) {
        return Err(ReferenceError::Uppercase { reference: owned() });
    }
    // distribution's grammar makes the domain optional, so a first component
    // that is no valid host but is a valid path component (`my_reg.io`) still
    // parses, as part of the path; the string comes out the same.
    let path_len = if is_domain(domain) {
        path.len()
    } else if is_path_component(domain) {
        domain.len() + 1 + path.len()
    } else if has_uppercase(domain) && is_path_component(&domain.to_lowercase()) {
        return Err(ReferenceError::Uppercase { reference: owned() });
    } else {
        return Err(ReferenceError::InvalidDomain {
            reference: owned(),
            domain: domain.to_owned(),
        });
    };
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyComponent { reference: owned() });
        }
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidComponent {
                reference: owned(),
                component: component.to_owned(),
            });
        }
    }
    Ok(path_len)
}

/// Why `reference`'s `tag` or `digest` is not valid, if it is not.
fn check_tag_and_digest(
    reference: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<(), ReferenceError> {
    let owned = || reference.to_owned();
    match tag {
        Some("") => return Err(ReferenceError::EmptyTag { reference: owned() }),
        Some(tag) if !is_tag(tag) => {
            return Err(ReferenceError::InvalidTag {
                reference: owned(),
                tag: tag.to_owned(),
            });
        }
        _ => {}
    }
    if let Some(digest) = digest.filter(|digest| !is_digest(digest)) {
        return Err(ReferenceError::InvalidDigest {
            reference: owned(),
            digest: digest.to_owned(),
        });
    }
    Ok(())
}

/// distribution's `splitDockerDomain`: the domain and the rest (path, tag and
/// digest), with Docker Hub's `library/` added where it applies.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((maybe_domain, rest)) = name.split_once('/') else {
        // A single component is always a Docker Hub name, even `localhost`
        // or `localhost:5000` (then `5000` is the tag).
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) = if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if maybe_domain == LOCALHOST
        || maybe_domain.contains(['.', ':'])
        // Uppercase is not allowed in a path, so distribution takes such a
        // first component (`Registry/app`) as a host name.
        || has_uppercase(maybe_domain)
    {
        (maybe_domain, rest)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote.to_owned())
    }
}

fn has_uppercase(text: &str) -> bool {
    text.to_lowercase() != text
}

fn is_lower_hex(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'a'..=b'f')
}

/// `host[:port]` where host is a domain name, IPv4 address or `[IPv6]`.
fn is_domain(domain: &str) -> bool {
    let port = if let Some(rest) = domain.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        after
    } else {
        let (host, after) = domain.split_at(domain.find(':').unwrap_or(domain.len()));
        if !host.split('.').all(is_domain_component) {
            return false;
        }
        after
    };
    match port.strip_prefix(':') {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    }
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut at = 0;
    loop {
        let run_start = at;
        while at < bytes.len() && is_alphanumeric(bytes[at]) {
            at += 1;
        }
        if at == run_start {
            return false;
        }
        if at == bytes.len() {
            return true;
        }
        match bytes[at] {
            b'.' => at += 1,
            b'_' => {
                at += 1;
                if bytes.get(at) == Some(&b'_') {
                    at += 1;
                }
            }
            b'-' => {
                while bytes.get(at) == Some(&b'-') {
                    at += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [first, rest @ ..] => {
            is_word(*first)
                && rest.len() < MAX_TAG_LEN
                && rest.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    }
}

/// A digest go-digest accepts: a registered algorithm and its exact length
/// of lowercase hex.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    encoded.len() == hex_len && encoded.bytes().all(is_lower_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    /// Replaces `<H>` with a valid sha256 hex string.
    fn expand(text: &str) -> String {
        text.replace("<H>", SHA256)
    }

    /// Shorthand for owned strings in table rows.
    fn s(text: &str) -> String {
        expand(text)
    }

    #[test]
    fn normalizes_like_containerd() {
        let table = [
            // Docker Hub names.
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            (
                "docker.io/library/nginx:latest",
                "docker.io/library/nginx:latest",
            ),
            ("org/x:1", "docker.io/org/x:1"),
            ("nginx:V1.2_RC-3", "docker.io/library/nginx:V1.2_RC-3"),
            ("a__b/c--d/e.f_g", "docker.io/a__b/c--d/e.f_g:latest"),
            // Without a `/` nothing is a domain, not even `localhost`.
            ("localhost", "docker.io/library/localhost:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            // A real team stripped `localhost/` before deploying although
            // containerd keeps it, and pods sat in ErrImageNeverPull.
            ("localhost/kindling/api:abc", "localhost/kindling/api:abc"),
            ("localhost/x:1", "localhost/x:1"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("registry:5000/x:1", "registry:5000/x:1"),
            ("gcr.io/a/b/c:v1", "gcr.io/a/b/c:v1"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("[fc00::1]:5000/x", "[fc00::1]:5000/x:latest"),
            ("docker.io:443/nginx", "docker.io:443/nginx:latest"),
            // A `:` before the first `/` makes a registry, not a tag.
            ("nginx:1/x", "nginx:1/x:latest"),
            // distribution takes an uppercase first component as a host.
            ("Org/x", "Org/x:latest"),
            ("LOCALDOMAIN/debian", "LOCALDOMAIN/debian:latest"),
            // Not a valid host, but a valid path component.
            ("my_reg.io/x", "my_reg.io/x:latest"),
            // Only a bare 64-hex string is an image id.
            ("docker.io/<H>", "docker.io/library/<H>:latest"),
            // Digests; with both, containerd keeps only the digest.
            ("nginx@sha256:<H>", "docker.io/library/nginx@sha256:<H>"),
            ("nginx:1@sha256:<H>", "docker.io/library/nginx@sha256:<H>"),
            ("localhost/x:1@sha256:<H>", "localhost/x@sha256:<H>"),
            (
                "nginx@sha512:<H><H>",
                "docker.io/library/nginx@sha512:<H><H>",
            ),
        ];
        for (input, expected) in table {
            let (input, expected) = (expand(input), expand(expected));
            let normalized = normalize(&input).unwrap_or_else(|error| panic!("`{input}`: {error}"));
            assert_eq!(normalized.as_str(), expected, "input `{input}`");
            assert_eq!(normalized.to_string(), expected);
            let again = normalize(normalized.as_str()).expect("normalized form is valid");
            assert_eq!(again, normalized, "normalizing `{expected}` again");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        use ReferenceError::*;
        let long_tag = format!("nginx:{}", "a".repeat(129));
        let table = [
            ("", Empty),
            (
                " nginx",
                Whitespace {
                    reference: s(" nginx"),
                },
            ),
            (
                "nginx\n",
                Whitespace {
                    reference: s("nginx\n"),
                },
            ),
            (
                "ng inx",
                Whitespace {
                    reference: s("ng inx"),
                },
            ),
            (
                "<H>",
                ImageId {
                    reference: s("<H>"),
                },
            ),
            (
                "Nginx",
                Uppercase {
                    reference: s("Nginx"),
                },
            ),
            (
                "org/X",
                Uppercase {
                    reference: s("org/X"),
                },
            ),
            (
                "Nginx:",
                Uppercase {
                    reference: s("Nginx:"),
                },
            ),
            (
                "docker.io/library/Nginx:1",
                Uppercase {
                    reference: s("docker.io/library/Nginx:1"),
                },
            ),
            (
                "Foo_Bar/x",
                Uppercase {
                    reference: s("Foo_Bar/x"),
                },
            ),
            (
                "https://github.com/docker/docker",
                InvalidDomain {
                    reference: s("https://github.com/docker/docker"),
                    domain: s("https:"),
                },
            ),
            (
                "nginx:v1/x",
                InvalidDomain {
                    reference: s("nginx:v1/x"),
                    domain: s("nginx:v1"),
                },
            ),
            (
                "-.io/x",
                InvalidDomain {
                    reference: s("-.io/x"),
                    domain: s("-.io"),
                },
            ),
            (
                "dock..er/x",
                InvalidDomain {
                    reference: s("dock..er/x"),
                    domain: s("dock..er"),
                },
            ),
            (
                "fc00::1:5000/x",
                InvalidDomain {
                    reference: s("fc00::1:5000/x"),
                    domain: s("fc00::1:5000"),
                },
            ),
            (
                "-nginx",
                InvalidComponent {
                    reference: s("-nginx"),
                    component: s("-nginx"),
                },
            ),
            (
                "nginx-",
                InvalidComponent {
                    reference: s("nginx-"),
                    component: s("nginx-"),
                },
            ),
            (
                "a___b",
                InvalidComponent {
                    reference: s("a___b"),
                    component: s("a___b"),
                },
            ),
            (
                "org/a._b",
                InvalidComponent {
                    reference: s("org/a._b"),
                    component: s("a._b"),
                },
            ),
            (
                "[fc00::1]:5000",
                InvalidComponent {
                    reference: s("[fc00::1]:5000"),
                    component: s("[fc00"),
                },
            ),
            (
                "docker/",
                EmptyComponent {
                    reference: s("docker/"),
                },
            ),
            (
                "docker///docker",
                EmptyComponent {
                    reference: s("docker///docker"),
                },
            ),
            (
                "localhost/",
                EmptyComponent {
                    reference: s("localhost/"),
                },
            ),
            (
                "nginx:",
                EmptyTag {
                    reference: s("nginx:"),
                },
            ),
            (
                "nginx:-x",
                InvalidTag {
                    reference: s("nginx:-x"),
                    tag: s("-x"),
                },
            ),
            (
                "nginx:.x",
                InvalidTag {
                    reference: s("nginx:.x"),
                    tag: s(".x"),
                },
            ),
            (
                "nginx:a:b",
                InvalidTag {
                    reference: s("nginx:a:b"),
                    tag: s("a:b"),
                },
            ),
            (
                long_tag.as_str(),
                InvalidTag {
                    reference: long_tag.clone(),
                    tag: long_tag[6..].to_owned(),
                },
            ),
            (
                "nginx@",
                InvalidDigest {
                    reference: s("nginx@"),
                    digest: s(""),
                },
            ),
            (
                "nginx@sha256:abc",
                InvalidDigest {
                    reference: s("nginx@sha256:abc"),
                    digest: s("sha256:abc"),
                },
            ),
            (
                "nginx@sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA",
                InvalidDigest {
                    reference: s(
                        "nginx@sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA",
                    ),
                    digest: s(
                        "sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA",
                    ),
                },
            ),
            (
                "nginx@md5:<H>",
                InvalidDigest {
                    reference: s("nginx@md5:<H>"),
                    digest: s("md5:<H>"),
                },
            ),
            (
                "nginx@<H>",
                InvalidDigest {
                    reference: s("nginx@<H>"),
                    digest: s("<H>"),
                },
            ),
            (
                "nginx@sha256:<H>@sha256:<H>",
                InvalidDigest {
                    reference: s("nginx@sha256:<H>@sha256:<H>"),
                    digest: s("sha256:<H>@sha256:<H>"),
                },
            ),
        ];
        for (input, expected) in table {
            let input = expand(input);
            let error = normalize(&input).expect_err(&input);
            assert_eq!(error, expected, "input `{input}`");
            let message = error.to_string();
            assert!(
                message.contains(&format!("`{input}`")) || input.is_empty(),
                "{message}"
            );
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
        assert!(Empty.to_string().contains("empty"));
    }

    #[test]
    fn path_length_limit_excludes_the_domain() {
        // `library/` counts: it is part of the path.
        let at_limit = "a".repeat(MAX_PATH_LEN - OFFICIAL_REPO_PREFIX.len());
        assert!(normalize(&at_limit).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(
            normalize(&over),
            Err(ReferenceError::TooLong {
                reference: over.clone()
            })
        );
        assert!(normalize(&over).unwrap_err().to_string().contains(&over));

        let local = format!("localhost/{}", "a".repeat(MAX_PATH_LEN));
        assert!(normalize(&local).is_ok());
        let local_over = format!("{local}a");
        assert_eq!(
            normalize(&local_over),
            Err(ReferenceError::TooLong {
                reference: local_over.clone()
            })
        );
    }

    #[test]
    fn exposes_parts() {
        let table = [
            ("nginx", "docker.io/library/nginx", Some("latest"), None),
            ("localhost:5000/x", "localhost:5000/x", Some("latest"), None),
            (
                "localhost/kindling/api:abc",
                "localhost/kindling/api",
                Some("abc"),
                None,
            ),
            (
                "nginx@sha256:<H>",
                "docker.io/library/nginx",
                None,
                Some("sha256:<H>"),
            ),
            (
                "gcr.io/a/b/c:v1@sha256:<H>",
                "gcr.io/a/b/c",
                None,
                Some("sha256:<H>"),
            ),
        ];
        for (input, repository, tag, digest) in table {
            let normalized = normalize(&expand(input)).unwrap();
            assert_eq!(normalized.repository(), repository, "{input}");
            assert_eq!(normalized.tag(), tag, "{input}");
            assert_eq!(
                normalized.digest().map(expand),
                digest.map(expand),
                "{input}"
            );
        }
    }

    #[test]
    fn serializes_as_the_full_string() {
        let normalized = normalize("localhost/x:1").unwrap();
        assert_eq!(
            serde_json::to_string(&normalized).unwrap(),
            "\"localhost/x:1\""
        );
    }
}
