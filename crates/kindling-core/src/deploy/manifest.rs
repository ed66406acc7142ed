//! Manifest files: multi-document YAML (or JSON) files and directories of
//! them, read into objects that remember where they came from.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its document's index in the file, from 0.
    pub index: usize,
    /// The line its document starts on, from 1.
    pub line: usize,
    /// The object itself, as JSON.
    pub object: Value,
}

impl Manifest {
    /// The object's `apiVersion` (empty if it has none).
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// The object's `kind` (empty if it has none).
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// The object's `metadata.name` (empty if it has none).
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The object's `metadata.namespace`, if it gives one.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    /// Where it came from, for messages: `deploy/app.yaml` document 2 (line 14).
    pub fn origin(&self) -> Origin<'_> {
        Origin(self)
    }
}

/// Displays a manifest's file, document index and line.
pub struct Origin<'a>(&'a Manifest);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} document {} (line {})",
            self.0.file.display(),
            self.0.index,
            self.0.line
        )
    }
}

/// A manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A manifest file or directory could not be read.
    #[error("cannot read manifest `{path}`: check that the path named in the suite exists")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error(
        "`{file}` document {index}, line {line} column {column}: invalid YAML: {message}",
        file = file.display()
    )]
    Yaml {
        /// The manifest file.
        file: PathBuf,
        /// The document's index in the file, from 0.
        index: usize,
        /// The line of the error in the file, from 1.
        line: u64,
        /// The column of the error, as the YAML parser gives it (0 when it
        /// gives no location).
        column: u64,
        /// The first line of the parser's message.
        message: String,
    },
    /// A document is valid YAML but not an object kindling can apply: not an
    /// object, or without `apiVersion`, `kind` or `metadata.name`.
    #[error(
        "`{file}` document {index} (line {line}): {problem}",
        file = file.display()
    )]
    Invalid {
        /// The manifest file.
        file: PathBuf,
        /// The document's index in the file, from 0.
        index: usize,
        /// The line the document starts on, from 1.
        line: usize,
        /// What is wrong, in words.
        problem: String,
    },
    /// A path the suite names holds no manifests.
    #[error("`{path}` holds no manifests (files ending in .yaml, .yml or .json)", path = path.display())]
    Empty {
        /// The file or directory.
        path: PathBuf,
    },
}

/// Reads every manifest in `paths`: files, or directories whose `.yaml`,
/// `.yml` and `.json` files are read in name order, recursively. The values
/// of the Secrets among them are redacted from then on
/// ([`crate::redaction`]).
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    for path in paths {
        let files = manifest_files(path)?;
        let before = manifests.len();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.clone(),
                source,
            })?;
            manifests.extend(parse_manifests(&file, &text)?);
        }
        if manifests.len() == before {
            return Err(ManifestError::Empty { path: path.clone() });
        }
    }
    crate::redaction::learn_manifests(&manifests);
    Ok(manifests)
}

fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            files.extend(manifest_files(&entry)?);
        } else if entry
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| matches!(extension, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Parses the documents of one file; empty documents are skipped, `List`
/// objects are expanded into their items.
pub fn parse_manifests(file: &Path, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    for (index, (line, document)) in split_documents(text).into_iter().enumerate() {
        let value: Value = if is_blank_yaml(&document) {
            Value::Null
        } else {
            serde_saphyr::from_str(&document).map_err(|error| {
                let location = error.location();
                ManifestError::Yaml {
                    file: file.to_owned(),
                    index,
                    line: location.map_or(line as u64, |at| at.line() + line as u64 - 1),
                    column: location.map_or(0, |at| at.column()),
                    message: first_line(&error.to_string()),
                }
            })?
        };
        let invalid = |problem: String| ManifestError::Invalid {
            file: file.to_owned(),
            index,
            line,
            problem,
        };
        match value {
            Value::Null => continue,
            Value::Object(_) => {}
            other => return Err(invalid(format!("expected an object, found `{other}`"))),
        }
        let items = if value["kind"].as_str() == Some("List") {
            value["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![value]
        };
        for object in items {
            for field in ["apiVersion", "kind"] {
                if !object[field].is_string() {
                    return Err(invalid(format!("the object has no `{field}`")));
                }
            }
            let named = object["metadata"]["name"]
                .as_str()
                .is_some_and(|name| !name.is_empty());
            if !named {
                return Err(invalid(format!(
                    "the {} has no `metadata.name` (generateName is not supported: kindling must know what it applied)",
                    object["kind"].as_str().unwrap_or_default()
                )));
            }
            manifests.push(Manifest {
                file: file.to_owned(),
                index,
                line,
                object,
            });
        }
    }
    Ok(manifests)
}

/// Splits YAML text at `---` document markers; each document comes with
/// the line (from 1) its text starts on. Comments before the first marker
/// are not a document of their own.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = (1, String::new());
    let mut seen_marker = false;
    for (number, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("---")
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            let finished = std::mem::replace(&mut current, (number + 2, String::new()));
            if seen_marker || !is_blank_yaml(&finished.1) {
                documents.push(finished);
            }
            seen_marker = true;
            // `--- {inline: document}` keeps its content on the marker's line.
            if !rest.trim().is_empty() {
                current = (number + 1, format!("{}\n", rest.trim_start()));
            }
        } else if line != "..." {
            current.1.push_str(line);
            current.1.push('\n');
        }
    }
    documents.push(current);
    documents
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Manifest>, ManifestError> {
        parse_manifests(Path::new("app.yaml"), text)
    }

    #[test]
    fn documents_keep_their_index_and_line() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# nothing\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n";
        let manifests = parse(text).unwrap();
        let found: Vec<_> = manifests
            .iter()
            .map(|m| (m.kind(), m.name(), m.index, m.line))
            .collect();
        assert_eq!(
            found,
            [("ConfigMap", "a", 0, 2), ("Secret", "b", 2, 8)],
            "{manifests:?}"
        );
    }

    #[test]
    fn a_yaml_error_names_document_and_absolute_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n data: [unclosed\n";
        let error = parse(text).unwrap_err();
        match &error {
            ManifestError::Yaml { index, line, .. } => {
                assert_eq!(*index, 1, "{error}");
                assert!((8..=10).contains(line), "line {line}: {error}");
            }
            other => panic!("expected a YAML error, got {other}"),
        }
        assert!(error.to_string().contains("app.yaml"), "{error}");
    }

    #[test]
    fn objects_without_kind_or_name_are_refused() {
        let error = parse("apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(error.to_string().contains("no `kind`"), "{error}");
        let error = parse("apiVersion: v1\nkind: Pod\nmetadata: {generateName: a-}\n").unwrap_err();
        assert!(error.to_string().contains("metadata.name"), "{error}");
        let error = parse("- a\n- b\n").unwrap_err();
        assert!(error.to_string().contains("expected an object"), "{error}");
    }

    #[test]
    fn lists_are_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let names: Vec<_> = parse(text)
            .unwrap()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
