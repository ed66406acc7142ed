//! `.dockerignore`, read and matched exactly as moby's `ignorefile` and
//! `patternmatcher` do (cleaning, `**`, exclusions with `!`, the Dockerfile
//! and `.dockerignore` always kept). Hand-written on globset: no crate
//! implements moby's rules, and a different match changes what is sent
//! and so every content tag.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// The file's name in a context.
pub(super) const DOCKERIGNORE: &str = ".dockerignore";

/// A `.dockerignore` that cannot be used.
#[derive(Debug)]
pub(super) enum IgnoreError {
    Read {
        file: PathBuf,
        source: io::Error,
    },
    BadPattern {
        file: PathBuf,
        line: usize,
        pattern: String,
        source: globset::Error,
    },
}

/// The parsed `.dockerignore`.
pub(super) struct Ignore {
    patterns: Vec<Pattern>,
}

struct Pattern {
    /// The cleaned pattern without its `!`, as moby keeps it.
    text: String,
    exclusion: bool,
    matcher: GlobMatcher,
}

impl Ignore {
    /// The `.dockerignore` of the context at `root` (none: nothing ignored).
    pub(super) fn load(root: &Path) -> Result<Ignore, IgnoreError> {
        let file = root.join(DOCKERIGNORE);
        match fs::read(&file) {
            Ok(bytes) => Ignore::parse(&String::from_utf8_lossy(&bytes), &file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Ignore {
                patterns: Vec::new(),
            }),
            Err(source) => Err(IgnoreError::Read { file, source }),
        }
    }

    /// moby's `ignorefile.ReadAll` followed by `patternmatcher.New`.
    pub(super) fn parse(text: &str, file: &Path) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            // Only a `#` in the very first column starts a comment; Docker
            // checks before trimming.
            if line.starts_with('#') {
                continue;
            }
            let Some(read) = read_all_line(line) else {
                continue;
            };
            let Some((exclusion, text)) = matcher_pattern(&read) else {
                continue;
            };
            let matcher = GlobBuilder::new(&to_glob(&text))
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|source| IgnoreError::BadPattern {
                    file: file.to_path_buf(),
                    line: index + 1,
                    pattern: line.trim().to_owned(),
                    source,
                })?
                .compile_matcher();
            patterns.push(Pattern {
                text,
                exclusion,
                matcher,
            });
        }
        Ok(Ignore { patterns })
    }

    /// What the docker CLI does so that the Dockerfile and `.dockerignore`
    /// are always sent: if the patterns exclude `relative` (or a parent
    /// directory of it), append the exception `!relative`. The path is taken
    /// literally rather than as a pattern.
    pub(super) fn keep(&mut self, relative: &str) {
        if !self.matches_or_parent_matches(relative) {
            return;
        }
        let escaped: String = relative
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\');
                escape.then_some('\\').into_iter().chain([c])
            })
            .collect();
        let glob = GlobBuilder::new(&escaped)
            .literal_separator(true)
            .backslash_escape(true)
            .build();
        if let Ok(glob) = glob {
            self.patterns.push(Pattern {
                text: escaped,
                exclusion: true,
                matcher: glob.compile_matcher(),
            });
        }
    }

    /// moby's `MatchesOrParentMatches`: whether `path` is excluded, checking
    /// each pattern against the path and each of its parent directories.
    fn matches_or_parent_matches(&self, path: &str) -> bool {
        let parents: Vec<&str> = path.match_indices('/').map(|(at, _)| &path[..at]).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.exclusion != excluded {
                continue;
            }
            let hit = pattern.matcher.is_match(path)
                || parents
                    .iter()
                    .any(|parent| pattern.matcher.is_match(parent));
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// moby's `MatchesUsingParentResults`: whether `path` is excluded, and
    /// per pattern whether it matched `path`, for the children of `path`.
    /// `parent` is that vector for the parent directory, empty at the top.
    /// A pattern matched by a parent counts as matched by the child; the
    /// last matching pattern decides.
    pub(super) fn matches(&self, path: &str, parent: &[bool]) -> (bool, Vec<bool>) {
        let mut excluded = false;
        let mut matched = vec![false; self.patterns.len()];
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.get(index).copied().unwrap_or(false);
            if !hit {
                // moby skips patterns that could not change the outcome, and
                // leaves them unmatched for the children too; mirrored so
                // that the same files are sent.
                if pattern.exclusion != excluded {
                    continue;
                }
                hit = pattern.matcher.is_match(path);
            }
            matched[index] = hit;
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        (excluded, matched)
    }

    /// Whether an exception pattern can match some path starting with
    /// `dir_slash`, judged by the literal text before its first wildcard.
    /// Only a path the exception matches directly can flip an excluded
    /// directory's child back to included.
    pub(super) fn exceptions_may_match_below(&self, dir_slash: &str) -> bool {
        self.patterns
            .iter()
            .filter(|pattern| pattern.exclusion)
            .any(|pattern| {
                let literal = literal_prefix(&pattern.text);
                let has_wildcard = literal.len() < pattern.text.len();
                literal.starts_with(dir_slash) || (has_wildcard && dir_slash.starts_with(literal))
            })
    }
}

fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// One line through moby's `ignorefile.ReadAll` (comments already dropped):
/// trimmed, `!` kept in front of a cleaned path without leading `/`.
fn read_all_line(line: &str) -> Option<String> {
    let mut pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let invert = pattern.starts_with('!');
    if invert {
        pattern = pattern[1..].trim();
    }
    let mut cleaned = String::new();
    if !pattern.is_empty() {
        cleaned = go_clean(pattern);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
    }
    Some(if invert {
        format!("!{cleaned}")
    } else {
        cleaned
    })
}

/// moby's `patternmatcher.New` for one pattern: cleaned again, then split
/// into exception flag and pattern. A lone `!` is an error in moby; it is
/// dropped here as it can exclude nothing.
fn matcher_pattern(read: &str) -> Option<(bool, String)> {
    let trimmed = read.trim();
    if trimmed.is_empty() {
        return None;
    }
    let cleaned = go_clean(trimmed);
    match cleaned.strip_prefix('!') {
        Some("") => None,
        Some(rest) => Some((true, rest.to_owned())),
        None => Some((false, cleaned)),
    }
}

/// Go's `path/filepath.Clean` for `/`-separated paths.
pub(super) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Translates a moby pattern into globset syntax where the two disagree:
/// braces are literal in moby; `**` that is not a whole path component
/// means `(.*/)?` (or `.*` at the end, or a suffix match at the start);
/// `[!...]` is a class containing `!`, not a negation (Go regexp syntax).
fn to_glob(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut glob = String::with_capacity(pattern.len() + 8);
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '*' if chars.get(index + 1) == Some(&'*') => {
                let at_start = index == 0;
                index += 2;
                let ate_slash = chars.get(index) == Some(&'/');
                if ate_slash {
                    index += 1;
                }
                let at_end = index == chars.len();
                let after_slash = glob.ends_with('/');
                let piece = if at_start && at_end {
                    "**"
                } else if at_start {
                    // moby matches `**x` without further wildcards as "ends
                    // with x", with them as `(.*/)?x`.
                    let rest_has_wildcard = chars[index..]
                        .iter()
                        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\'));
                    if ate_slash || rest_has_wildcard {
                        "**/"
                    } else {
                        "**/*"
                    }
                } else if at_end {
                    if after_slash { "**" } else { "{*,*/**}" }
                } else if after_slash {
                    "**/"
                } else {
                    "{,*/**/}"
                };
                glob.push_str(piece);
            }
            '\\' => {
                glob.push('\\');
                if let Some(next) = chars.get(index + 1) {
                    glob.push(*next);
                }
                index += 2;
            }
            '{' | '}' => {
                glob.push('\\');
                glob.push(chars[index]);
                index += 1;
            }
            '[' => index = push_class(&chars, index, &mut glob),
            other => {
                glob.push(other);
                index += 1;
            }
        }
    }
    glob
}

/// Copies the character class starting at `chars[start] == '['` and returns
/// the index after it. An unclosed class is copied as is for globset to
/// reject, as moby does.
fn push_class(chars: &[char], start: usize, glob: &mut String) -> usize {
    let mut end = start + 1;
    if chars.get(end) == Some(&'^') {
        end += 1;
    }
    // A `]` right after the opening (Go regexp) is a member, not the end.
    if chars.get(end) == Some(&']') {
        end += 1;
    }
    while end < chars.len() && chars[end] != ']' {
        if chars[end] == '['
            && chars.get(end + 1) == Some(&':')
            && let Some(close) = (end + 2..chars.len().saturating_sub(1))
                .find(|&at| chars[at] == ':' && chars[at + 1] == ']')
        {
            end = close + 2;
            continue;
        }
        end += if chars[end] == '\\' { 2 } else { 1 };
    }
    if end >= chars.len() {
        glob.extend(&chars[start..]);
        return chars.len();
    }
    let members = &chars[start + 1..end];
    match members.first() {
        Some('!') => {
            // `!` and `^` at the front of globset's class would negate it,
            // so they become alternatives of their own.
            let rest = &members[1..];
            let literals = rest.iter().take_while(|c| matches!(c, '!' | '^')).count();
            glob.push_str("{!");
            for literal in &rest[..literals] {
                glob.push(',');
                glob.push(*literal);
            }
            if literals < rest.len() {
                glob.push_str(",[");
                glob.extend(&rest[literals..]);
                glob.push(']');
            }
            glob.push('}');
        }
        _ => glob.extend(&chars[start..=end]),
    }
    end + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::image::context::BuildContext;
    use crate::image::test_tree::{relatives, tree};

    const ALL: &[&str] = &[
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "app.log",
        "build",
        "build/keep.txt",
        "build/out.bin",
        "docker",
        "docker/api.Dockerfile",
        "docker/other.txt",
        "docs",
        "docs/guide.md",
        "rooted",
        "src",
        "src/cache",
        "src/cache/x.tmp",
        "src/debug.log",
        "src/main.rs",
        "sub",
        "sub/rooted",
    ];

    fn all_except(excluded: &[&str]) -> Vec<&'static str> {
        ALL.iter()
            .copied()
            .filter(|path| !excluded.contains(path))
            .collect()
    }

    #[test]
    fn dockerignore_cases() {
        struct Case {
            name: &'static str,
            dockerignore: &'static str,
            dockerfile: Option<&'static str>,
            expected: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "empty file keeps everything",
                dockerignore: "",
                dockerfile: Some("Dockerfile"),
                expected: ALL.to_vec(),
            },
            Case {
                name: "plain names; a directory takes its contents along",
                dockerignore: "README.md\nbuild\n",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["README.md", "build", "build/keep.txt", "build/out.bin"]),
            },
            Case {
                name: "star does not cross directories",
                dockerignore: "*.log",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["app.log"]),
            },
            Case {
                name: "double star matches any depth",
                dockerignore: "**/*.tmp",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["src/cache/x.tmp"]),
            },
            Case {
                name: "leading double star glued to a name is a suffix match",
                dockerignore: "**.log",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["app.log", "src/debug.log"]),
            },
            Case {
                name: "exception below an excluded directory",
                dockerignore: "build/\n!build/keep.txt",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["build", "build/out.bin"]),
            },
            Case {
                name: "wildcard exception below an excluded directory",
                dockerignore: "build\n!**/keep.txt",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["build", "build/out.bin"]),
            },
            Case {
                name: "exception re-including a directory re-includes its contents",
                dockerignore: "src\n!src/cache",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["src", "src/debug.log", "src/main.rs"]),
            },
            Case {
                name: "leading slash anchors at the root only",
                dockerignore: "/rooted",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["rooted"]),
            },
            Case {
                name: "path cleaning",
                dockerignore: "./docs/../src//main.rs\nsub/\n",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["src/main.rs", "sub", "sub/rooted"]),
            },
            Case {
                name: "comments, blank lines and surrounding whitespace",
                dockerignore: "# README.md\n\n   \n\t  docs  \r\n#app.log\n",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["docs", "docs/guide.md"]),
            },
            Case {
                name: "a # after whitespace is no comment",
                dockerignore: "  #README.md\n",
                dockerfile: Some("Dockerfile"),
                expected: ALL.to_vec(),
            },
            Case {
                name: "last match wins: exception after the exclusion",
                dockerignore: "**/*.md\n! README.md",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["docs/guide.md"]),
            },
            Case {
                name: "last match wins: exclusion after the exception",
                dockerignore: "!README.md\n**/*.md",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["README.md", "docs/guide.md"]),
            },
            Case {
                name: "question mark and character classes",
                dockerignore: "app.lo?\nsrc/[dm]*.rs",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["app.log", "src/main.rs"]),
            },
            Case {
                name: "[!...] is a class containing `!` as in Go, not a negation",
                dockerignore: "[!a]pp.log\n[!x]EADME.md",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["app.log"]),
            },
            Case {
                name: "braces are literal",
                dockerignore: "{app,README}.*",
                dockerfile: Some("Dockerfile"),
                expected: ALL.to_vec(),
            },
            Case {
                name: "Dockerfile and .dockerignore are sent even when excluded",
                dockerignore: "Dockerfile\n.dockerignore\n*",
                dockerfile: Some("Dockerfile"),
                expected: vec![".dockerignore", "Dockerfile"],
            },
            Case {
                name: "a Dockerfile inside an excluded directory is sent alone",
                dockerignore: "docker\n",
                dockerfile: Some("./docker/api.Dockerfile"),
                expected: all_except(&["docker", "docker/other.txt"]),
            },
            Case {
                name: "without a Dockerfile in the context nothing is forced but .dockerignore",
                dockerignore: "*",
                dockerfile: None,
                expected: vec![".dockerignore"],
            },
            Case {
                name: "an exception for a parent does not undo a later child exclusion",
                dockerignore: "src/main.rs\n!src",
                dockerfile: Some("Dockerfile"),
                expected: all_except(&["src/main.rs"]),
            },
        ];
        for case in cases {
            let dir = tree(case.dockerignore);
            let context = BuildContext::scan(dir.path(), case.dockerfile).unwrap();
            assert_eq!(relatives(&context), case.expected, "case: {}", case.name);
        }
    }

    #[test]
    fn patterns_match_like_moby() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/**", "a", false),
            ("a/**", "a/x/y", true),
            ("**", "any/thing", true),
            ("a**", "abc/d", true),
            ("foo**bar", "foobar", true),
            ("foo**bar", "fooz/bar", true),
            ("foo**bar", "foo/x/bar", true),
            ("foo**bar", "fooxbar", false),
            ("**.lo?", "x/.log", true),
            ("**.lo?", "x.log", false),
            ("**/foo", "foo", true),
            ("**/foo", "a/b/foo", true),
            ("**/foo", "afoo", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/*/b", "a/x/y/b", false),
            ("[^a]b", "cb", true),
            ("[^a]b", "ab", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("{a,b}", "{a,b}", true),
            ("{a,b}", "a", false),
            ("[!]", "!", true),
            ("[!^a]", "^", true),
            ("[!^a]", "a", true),
            ("[!^a]", "b", false),
            ("[[:digit:]]x", "1x", true),
            ("x,y", "x,y", true),
        ];
        for (pattern, path, expected) in cases {
            let ignore = Ignore::parse(pattern, Path::new(DOCKERIGNORE)).unwrap();
            let (matched, _) = ignore.matches(path, &[]);
            assert_eq!(matched, *expected, "pattern {pattern:?} on {path:?}");
        }
    }

    #[test]
    fn go_clean_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("a/", "a"),
            ("./a//b/./c/", "a/b/c"),
            ("a/../b", "b"),
            ("a/../..", ".."),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("!../a", "!../a"),
        ];
        for (input, expected) in cases {
            assert_eq!(go_clean(input), expected, "input {input:?}");
        }
    }
}
