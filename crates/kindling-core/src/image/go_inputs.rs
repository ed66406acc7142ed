//! What the build of a Go binary reads besides its module's folder, for
//! its content tag: the toolchain and the `go env` settings that change
//! the binary, and every other local module `go build` loads: the folders
//! the `replace` directives name, or, when `go` finds a workspace, its
//! `go.work`, `go.work.sum`, every `use` member and the folders their
//! `replace` directives name.
//!
//! Only main modules' `replace` directives count (the module's, or in a
//! workspace each member's and the `go.work`'s): `go` ignores those of
//! every other module, a replaced one included.
//!
//! `go.mod` and `go.work` are read by a parser of their own that follows
//! the lexer and grammar of `golang.org/x/mod/modfile` (tokens, `//`
//! comments, quoted strings, `verb (` blocks). `go mod edit -json` would
//! cost a process (6 ms here) per file on every fingerprint; the
//! toolchain's `go env` costs one per process and is kept.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::context::{BuildContext, ContextError};

/// The `go env` settings that change what `go build` makes of the same
/// sources, the toolchain's version first. Not among them: where modules
/// come from and where caches are (`GOPROXY`, `GOPATH`, `GOMODCACHE`,
/// `GOCACHE`, ...: modules fetched are checked against `go.sum`), and the
/// C toolchain (`CC`, `CGO_CFLAGS`, ...), unused since kindling builds with
/// `CGO_ENABLED=0` (reported here as that).
pub(crate) const BUILD_SETTINGS: &[&str] = &[
    "GOVERSION",
    "GOTOOLCHAIN",
    "GOOS",
    "GOARCH",
    "GO386",
    "GOAMD64",
    "GOARM",
    "GOARM64",
    "GOMIPS",
    "GOMIPS64",
    "GOPPC64",
    "GORISCV64",
    "GOWASM",
    "GOFLAGS",
    "GOEXPERIMENT",
    "GOFIPS140",
    "GO111MODULE",
    "GODEBUG",
    "GCCGO",
    "CGO_ENABLED",
];

/// Reading what a Go build reads outside its module failed.
#[derive(Debug, thiserror::Error)]
pub enum GoInputsError {
    /// A `replace` directive of a required module, or a `use` directive,
    /// names a local folder that is not there.
    #[error(
        "`{directive}` in `{}` line {line} names the local folder `{path}`, but `{}` is not a directory: create it, or correct the path (relative to the folder of `{}`)",
        file.display(), resolved.display(), file.display()
    )]
    MissingLocalModule {
        /// The go.mod or go.work holding the directive.
        file: PathBuf,
        /// The directive's line, from 1.
        line: usize,
        /// `replace` or `use`.
        directive: &'static str,
        /// The path as written.
        path: String,
        /// The path resolved against the file's folder.
        resolved: PathBuf,
    },
    /// `GOWORK` is neither `off`, `auto`, empty, nor an absolute path.
    #[error(
        "GOWORK=`{value}` is not an absolute path: set it to the absolute path of a go.work file, to `off`, or unset it"
    )]
    RelativeGowork {
        /// The value given.
        value: String,
    },
    /// A go.mod, go.work or go.work.sum could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A local module's folder could not be read.
    #[error("cannot read the local module `{}`", path.display())]
    Module {
        /// The module's folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: Box<ContextError>,
    },
    /// `go` could not be run.
    #[error(
        "failed to run `go env` for the toolchain's version and settings: is Go installed and on PATH?"
    )]
    GoMissing {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `go env` ran and failed.
    #[error("`go env -json` failed ({status}): fix the Go settings it names:\n{stderr}")]
    GoEnv {
        /// How it ended.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// `go env -json` printed something else than a JSON object of strings.
    #[error("`go env -json` printed no JSON object of strings: {output}")]
    GoEnvOutput {
        /// What it printed.
        output: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// The environment `go build` runs in: this process's (kindling adds
/// `CGO_ENABLED=0` to it when it runs `go`).
#[derive(Clone)]
pub(crate) struct GoEnv {
    vars: BTreeMap<OsString, OsString>,
}

/// Names only: values may be secrets.
impl std::fmt::Debug for GoEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl GoEnv {
    /// This process's environment.
    pub(crate) fn current() -> GoEnv {
        GoEnv {
            vars: std::env::vars_os().collect(),
        }
    }

    /// This environment with `key` set to `value`.
    #[cfg(test)]
    pub(crate) fn with(mut self, key: &str, value: &str) -> GoEnv {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// A command running `program` in exactly this environment, with
    /// `CGO_ENABLED=0`.
    pub(crate) fn command(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.env_clear().envs(&self.vars).env("CGO_ENABLED", "0");
        command
    }

    fn get(&self, key: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(key)).map(OsString::as_os_str)
    }

    /// All that `go env` can depend on: the variables `go` reads, where it
    /// is found, and the settings file `go env -w` writes.
    fn toolchain_key(&self) -> ToolchainKey {
        let vars = self
            .vars
            .iter()
            .filter(|(key, _)| {
                let key = key.to_string_lossy();
                key.starts_with("GO")
                    || key.starts_with("CGO_")
                    || matches!(&*key, "GCCGO" | "PATH" | "HOME" | "XDG_CONFIG_HOME")
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let settings = self
            .settings_file()
            .and_then(|path| std::fs::read(path).ok())
            .unwrap_or_default();
        ToolchainKey { vars, settings }
    }

    /// `go env -w`'s file: `$GOENV`, else `os.UserConfigDir()/go/env`.
    fn settings_file(&self) -> Option<PathBuf> {
        if let Some(file) = self.get("GOENV") {
            return (file != "off" && !file.is_empty()).then(|| PathBuf::from(file));
        }
        let config = match self.get("XDG_CONFIG_HOME").map(Path::new) {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            _ => Path::new(self.get("HOME")?).join(".config"),
        };
        Some(config.join("go").join("env"))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct ToolchainKey {
    vars: Vec<(OsString, OsString)>,
    settings: Vec<u8>,
}

/// The toolchain `go build` uses and its settings.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Toolchain {
    /// `go env`'s value of each of [`BUILD_SETTINGS`], in that order.
    pub(crate) settings: Vec<String>,
    /// Walking up from a module inside GOROOT, `go` stops below it.
    goroot: PathBuf,
}

/// The toolchain of `env`, asked of `go env` once per process and
/// environment (10 ms each time).
pub(crate) fn toolchain(env: &GoEnv) -> Result<Arc<Toolchain>, GoInputsError> {
    static KNOWN: Mutex<Vec<(ToolchainKey, Arc<Toolchain>)>> = Mutex::new(Vec::new());
    let key = env.toolchain_key();
    // Held while `go env` runs, so that builds planned at once ask once.
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, toolchain)) = known.iter().find(|(known, _)| *known == key) {
        return Ok(toolchain.clone());
    }
    let toolchain = Arc::new(ask_go_env(env)?);
    known.push((key, toolchain.clone()));
    Ok(toolchain)
}

fn ask_go_env(env: &GoEnv) -> Result<Toolchain, GoInputsError> {
    // Run where no go.mod or go.work can select another toolchain: the
    // build's own go.mod and go.work are digested, and with them that choice.
    let output = env
        .command("go")
        .args(["env", "-json"])
        .args(BUILD_SETTINGS)
        .arg("GOROOT")
        .env("GOWORK", "off")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| GoInputsError::GoMissing { source })?;
    if !output.status.success() {
        return Err(GoInputsError::GoEnv {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let values: BTreeMap<String, String> =
        serde_json::from_slice(&output.stdout).map_err(|source| GoInputsError::GoEnvOutput {
            output: String::from_utf8_lossy(&output.stdout).into_owned(),
            source,
        })?;
    Ok(Toolchain {
        settings: BUILD_SETTINGS
            .iter()
            .map(|name| values.get(*name).cloned().unwrap_or_default())
            .collect(),
        goroot: PathBuf::from(values.get("GOROOT").cloned().unwrap_or_default()),
    })
}

/// What a Go module's build reads outside its folder.
#[derive(Debug)]
pub(crate) struct GoInputs {
    pub(crate) toolchain: Arc<Toolchain>,
    /// The workspace's `go.work` and `go.work.sum` (`None`: absent), when
    /// the build is in a workspace.
    pub(crate) files: Vec<(String, Option<Vec<u8>>)>,
    /// Every other local module the directives name, as written, with
    /// its folder (`None`: a `replace` of a module nothing requires, to a
    /// folder that is not there).
    pub(crate) modules: Vec<(String, Option<BuildContext>)>,
}

impl GoInputs {
    /// Feeds the toolchain's settings, the workspace files and each local
    /// module's digest (the same as a build context's) into `hasher`.
    pub(crate) fn feed_digest(&self, hasher: &mut Sha256) -> Result<(), ContextError> {
        frame(hasher, b"go inputs v1");
        for (name, value) in BUILD_SETTINGS.iter().zip(&self.toolchain.settings) {
            frame(hasher, name.as_bytes());
            frame(hasher, value.as_bytes());
        }
        hasher.update((self.files.len() as u64).to_le_bytes());
        for (name, contents) in &self.files {
            frame(hasher, name.as_bytes());
            match contents {
                Some(contents) => frame(hasher, contents),
                None => hasher.update([0]),
            }
        }
        hasher.update((self.modules.len() as u64).to_le_bytes());
        for (label, module) in &self.modules {
            frame(hasher, label.as_bytes());
            match module {
                Some(context) => {
                    let mut digest = Sha256::new();
                    context.feed_digest(&mut digest)?;
                    frame(hasher, &digest.finalize());
                }
                None => hasher.update([0]),
            }
        }
        Ok(())
    }
}

fn frame(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Reads what building the module in `module` with `env` reads outside it.
pub(crate) fn read(module: &Path, env: &GoEnv) -> Result<GoInputs, GoInputsError> {
    let toolchain = toolchain(env)?;
    // `go` runs in the module's folder and sees its real path (getcwd).
    let module = module
        .canonicalize()
        .map_err(|source| GoInputsError::Read {
            path: module.to_owned(),
            source,
        })?;
    let mut found = Found {
        seen: vec![module.clone()],
        modules: Vec::new(),
    };
    let mut gathered = Gathered::default();
    match workspace_file(&module, env, &toolchain.goroot)? {
        Some(work) => read_workspace(&work, &mut found, &mut gathered)?,
        None => {
            let go_mod = module.join("go.mod");
            gathered.add_go_mod(&go_mod, &module)?;
        }
    }
    for (file, base, replace) in gathered.replaces {
        let resolved = base.join(&replace.path);
        let label = format!("replace {} => {}", replace.module, replace.path);
        if resolved.is_dir() {
            found.add(label, &resolved)?;
        } else if gathered.required.contains(&replace.module) {
            return Err(GoInputsError::MissingLocalModule {
                file,
                line: replace.line,
                directive: "replace",
                path: replace.path,
                resolved,
            });
        } else {
            // `go` loads no module that nothing requires: its folder may be
            // absent, and its appearing changes the tag.
            found.modules.push((label, None));
        }
    }
    Ok(GoInputs {
        toolchain,
        files: gathered.files,
        modules: found.modules,
    })
}

/// What the go.mod and go.work files a build reads say, gathered.
#[derive(Default)]
struct Gathered {
    /// `replace`s, each with its file and the folder its paths are relative to.
    replaces: Vec<(PathBuf, PathBuf, LocalReplace)>,
    /// Modules some go.mod requires.
    required: Vec<String>,
    /// Files digested whole: `go.work` and `go.work.sum`.
    files: Vec<(String, Option<Vec<u8>>)>,
}

impl Gathered {
    /// The requirements and `replace`s of `go_mod`, of the module in `dir`.
    fn add_go_mod(&mut self, go_mod: &Path, dir: &Path) -> Result<(), GoInputsError> {
        let parsed = parse(&String::from_utf8_lossy(&read_file(go_mod)?));
        self.required.extend(parsed.requires);
        self.replaces.extend(
            parsed
                .replaces
                .into_iter()
                .map(|replace| (go_mod.to_owned(), dir.to_owned(), replace)),
        );
        Ok(())
    }
}

/// The `use`d modules of the workspace file `work` (each a folder of the
/// build, its go.mod read), its `replace`s, and it and its sums.
fn read_workspace(
    work: &Path,
    found: &mut Found,
    gathered: &mut Gathered,
) -> Result<(), GoInputsError> {
    let text = read_file(work)?;
    let parsed = parse(&String::from_utf8_lossy(&text));
    let dir = work.parent().unwrap_or(Path::new("/")).to_owned();
    for member in parsed.uses {
        let resolved = dir.join(&member.path);
        if !resolved.is_dir() {
            return Err(GoInputsError::MissingLocalModule {
                file: work.to_owned(),
                line: member.line,
                directive: "use",
                path: member.path,
                resolved,
            });
        }
        let go_mod = resolved.join("go.mod");
        if go_mod.is_file() {
            gathered.add_go_mod(&go_mod, &resolved)?;
        }
        found.add(format!("use {}", member.path), &resolved)?;
    }
    gathered.replaces.extend(
        parsed
            .replaces
            .into_iter()
            .map(|replace| (work.to_owned(), dir.clone(), replace)),
    );
    let sum = dir.join("go.work.sum");
    let sum = match std::fs::read(&sum) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(GoInputsError::Read { path: sum, source }),
    };
    gathered.files.push(("go.work".to_owned(), Some(text)));
    gathered.files.push(("go.work.sum".to_owned(), sum));
    Ok(())
}

struct Found {
    /// Canonical folders already digested, the module's own first.
    seen: Vec<PathBuf>,
    modules: Vec<(String, Option<BuildContext>)>,
}

impl Found {
    fn add(&mut self, label: String, dir: &Path) -> Result<(), GoInputsError> {
        let canonical = dir.canonicalize().map_err(|source| GoInputsError::Read {
            path: dir.to_owned(),
            source,
        })?;
        if self.seen.contains(&canonical) {
            return Ok(());
        }
        let context =
            BuildContext::scan(&canonical, None).map_err(|source| GoInputsError::Module {
                path: canonical.clone(),
                source: Box::new(source),
            })?;
        self.seen.push(canonical);
        self.modules.push((label, Some(context)));
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, GoInputsError> {
    std::fs::read(path).map_err(|source| GoInputsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The go.work `go` uses for a build in `module` (a canonical path), as
/// `go` finds it: `GOWORK` when set to a file, none when `off`, else the
/// first go.work in `module` or a folder above it, stopping below GOROOT.
fn workspace_file(
    module: &Path,
    env: &GoEnv,
    goroot: &Path,
) -> Result<Option<PathBuf>, GoInputsError> {
    match env.get("GOWORK").map(OsStr::to_string_lossy).as_deref() {
        Some("off") => return Ok(None),
        Some("" | "auto") | None => {}
        Some(value) => {
            let path = PathBuf::from(value);
            if !path.is_absolute() {
                return Err(GoInputsError::RelativeGowork {
                    value: value.to_owned(),
                });
            }
            return Ok(Some(path));
        }
    }
    let mut dir = module;
    loop {
        let candidate = dir.join("go.work");
        if candidate.is_file() {
            return Ok(Some(candidate));
        }
        match dir.parent() {
            Some(parent) if parent != goroot => dir = parent,
            _ => return Ok(None),
        }
    }
}

/// The directives of a go.mod or go.work that name modules and folders.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// The module paths of `require` directives.
    pub(crate) requires: Vec<String>,
    /// `replace` directives whose replacement is a local folder.
    pub(crate) replaces: Vec<LocalReplace>,
    /// `use` directives (go.work).
    pub(crate) uses: Vec<Use>,
}

/// `replace <module> [version] => <path>`, `path` a local folder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LocalReplace {
    /// Its line, from 1.
    pub(crate) line: usize,
    /// The module replaced.
    pub(crate) module: String,
    /// The folder, unquoted, relative to the file's folder unless absolute.
    pub(crate) path: String,
}

/// `use <path>`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Use {
    /// Its line, from 1.
    pub(crate) line: usize,
    /// The folder, unquoted, relative to the go.work's folder unless absolute.
    pub(crate) path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier, or a quoted string with its quotes.
    Word(String),
    Open,
    Close,
    /// `[`, `]`, `{`, `}` or `,`: a word of its own.
    Punct(char),
    /// A newline, or a comment with the newline it ends at.
    EndOfLine,
}

/// The tokens of `text` with their lines, as modfile's lexer makes them.
/// Text the lexer refuses ends the tokens there: `go` refuses such a file
/// and the build fails whatever the tag.
fn lex(text: &str) -> Vec<(Token, usize)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut rest = text;
    loop {
        let Some(c) = rest.chars().next() else {
            return tokens;
        };
        match c {
            ' ' | '\t' | '\r' => rest = &rest[1..],
            '\n' => {
                tokens.push((Token::EndOfLine, line));
                line += 1;
                rest = &rest[1..];
            }
            '/' if rest.starts_with("//") => {
                tokens.push((Token::EndOfLine, line));
                match rest.find('\n') {
                    Some(end) => {
                        line += 1;
                        rest = &rest[end + 1..];
                    }
                    None => return tokens,
                }
            }
            '/' if rest.starts_with("/*") => return tokens,
            '(' | ')' | '[' | ']' | '{' | '}' | ',' => {
                let token = match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    other => Token::Punct(other),
                };
                tokens.push((token, line));
                rest = &rest[1..];
            }
            '"' | '`' => {
                let mut end = None;
                let mut escaped = false;
                for (at, next) in rest.char_indices().skip(1) {
                    match next {
                        '\n' => break,
                        '\\' if c == '"' && !escaped => escaped = true,
                        _ if next == c && !escaped => {
                            end = Some(at);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(end) = end else {
                    return tokens;
                };
                tokens.push((Token::Word(rest[..=end].to_owned()), line));
                rest = &rest[end + 1..];
            }
            _ if is_ident(c) => {
                let mut end = rest.len();
                for (at, next) in rest.char_indices() {
                    if !is_ident(next) || rest[at..].starts_with("//") {
                        end = at;
                        break;
                    }
                    if rest[at..].starts_with("/*") {
                        return tokens;
                    }
                }
                tokens.push((Token::Word(rest[..end].to_owned()), line));
                rest = &rest[end..];
            }
            _ => return tokens,
        }
    }
}

fn is_ident(c: char) -> bool {
    !matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | ',') && !c.is_whitespace() && !c.is_control()
}

/// A statement: a verb's line, or a `verb (` block of lines.
enum Statement {
    Line {
        line: usize,
        words: Vec<String>,
    },
    Block {
        verb: Vec<String>,
        lines: Vec<(usize, Vec<String>)>,
    },
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    /// The next token, `None` at the end.
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(token, _)| token)
    }

    fn at_end_of_line(&self) -> bool {
        matches!(self.peek(), None | Some(Token::EndOfLine))
    }

    fn line(&self) -> usize {
        self.tokens.get(self.at).map_or(0, |(_, line)| *line)
    }

    fn next_word(&mut self) -> String {
        let (token, _) = &self.tokens[self.at];
        self.at += 1;
        match token {
            Token::Word(word) => word.clone(),
            Token::Open => "(".to_owned(),
            Token::Close => ")".to_owned(),
            Token::Punct(c) => c.to_string(),
            Token::EndOfLine => String::new(),
        }
    }

    /// The statements, as modfile's `parseFile` reads them; an unterminated
    /// block ends them.
    fn statements(mut self) -> Vec<Statement> {
        let mut statements = Vec::new();
        loop {
            match self.peek() {
                None => return statements,
                Some(Token::EndOfLine) => self.at += 1,
                Some(_) => match self.statement() {
                    Some(statement) => statements.push(statement),
                    None => return statements,
                },
            }
        }
    }

    fn statement(&mut self) -> Option<Statement> {
        let line = self.line();
        let mut words = vec![self.next_word()];
        loop {
            if self.at_end_of_line() {
                self.at += 1;
                return Some(Statement::Line { line, words });
            }
            if self.peek() == Some(&Token::Open) {
                self.at += 1;
                if self.at_end_of_line() {
                    return self.block(words);
                }
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                    if self.at_end_of_line() {
                        self.at += 1;
                        return Some(Statement::Block {
                            verb: words,
                            lines: Vec::new(),
                        });
                    }
                    words.extend(["(".to_owned(), ")".to_owned()]);
                } else {
                    words.push("(".to_owned());
                }
                continue;
            }
            words.push(self.next_word());
        }
    }

    fn block(&mut self, verb: Vec<String>) -> Option<Statement> {
        let mut lines = Vec::new();
        loop {
            match self.peek()? {
                Token::EndOfLine => self.at += 1,
                Token::Close => {
                    self.at += 1;
                    if !self.at_end_of_line() {
                        return None;
                    }
                    self.at += 1;
                    return Some(Statement::Block { verb, lines });
                }
                _ => {
                    let line = self.line();
                    let mut words = Vec::new();
                    while !self.at_end_of_line() {
                        words.push(self.next_word());
                    }
                    lines.push((line, words));
                }
            }
        }
    }
}

/// The `require`, local `replace` and `use` directives of a go.mod or
/// go.work. Directives `go` would refuse are left out: it refuses the file
/// and the build fails whatever the tag.
pub(crate) fn parse(text: &str) -> Directives {
    let parser = Parser {
        tokens: lex(text),
        at: 0,
    };
    let mut directives = Directives::default();
    for statement in parser.statements() {
        match statement {
            Statement::Line { line, words } => {
                directives.add(&words[0], line, &words[1..]);
            }
            Statement::Block { verb, lines } if verb.len() == 1 => {
                for (line, words) in lines {
                    directives.add(&verb[0], line, &words);
                }
            }
            Statement::Block { .. } => {}
        }
    }
    directives
}

impl Directives {
    fn add(&mut self, verb: &str, line: usize, args: &[String]) {
        match verb {
            "require" => {
                if let Some(module) = args.first().and_then(|arg| unquote(arg)) {
                    self.requires.push(module);
                }
            }
            "replace" => {
                if let Some((module, path)) = local_replacement(args) {
                    self.replaces.push(LocalReplace { line, module, path });
                }
            }
            "use" => {
                if let [path] = args
                    && let Some(path) = unquote(path)
                {
                    self.uses.push(Use { line, path });
                }
            }
            _ => {}
        }
    }
}

/// The module and folder of `replace` arguments whose replacement is a
/// local folder, as modfile's `parseReplace` reads them: `old [version]
/// => new`, `new` a directory path and without a version.
fn local_replacement(args: &[String]) -> Option<(String, String)> {
    let arrow = if args.len() >= 2 && args[1] == "=>" {
        1
    } else {
        2
    };
    if args.len() != arrow + 2 || args[arrow] != "=>" {
        return None;
    }
    let module = unquote(&args[0])?;
    let path = unquote(&args[arrow + 1])?;
    is_directory_path(&path).then_some((module, path))
}

/// modfile's `IsDirectoryPath`: relative and rooted paths, in Unix and
/// Windows syntax.
fn is_directory_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    path == "."
        || path.starts_with("./")
        || path.starts_with(".\\")
        || path == ".."
        || path.starts_with("../")
        || path.starts_with("..\\")
        || path.starts_with('/')
        || path.starts_with('\\')
        || bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// modfile's `parseString`: a `"`-quoted word unquoted as Go unquotes it, a
/// bare word as it is; `None` for what it refuses.
fn unquote(word: &str) -> Option<String> {
    if !word.starts_with('"') {
        return (!word.contains(['"', '\'', '`'])).then(|| word.to_owned());
    }
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut bytes: Vec<u8> = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            return None;
        }
        if c != '\\' {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let escape = chars.next()?;
        let simple = match escape {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(simple) = simple {
            flush(&mut bytes, &mut out)?;
            out.push(simple);
            continue;
        }
        let digits = |chars: &mut std::str::Chars<'_>, count: usize, radix: u32| {
            let text: String = chars.take(count).collect();
            (text.len() == count)
                .then(|| u32::from_str_radix(&text, radix).ok())
                .flatten()
        };
        match escape {
            'x' => bytes.push(u8::try_from(digits(&mut chars, 2, 16)?).ok()?),
            '0'..='7' => {
                let rest = digits(&mut chars, 2, 8)?;
                let value = escape.to_digit(8)? * 64 + rest;
                bytes.push(u8::try_from(value).ok()?);
            }
            'u' => {
                flush(&mut bytes, &mut out)?;
                out.push(char::from_u32(digits(&mut chars, 4, 16)?)?);
            }
            'U' => {
                flush(&mut bytes, &mut out)?;
                out.push(char::from_u32(digits(&mut chars, 8, 16)?)?);
            }
            _ => return None,
        }
    }
    flush(&mut bytes, &mut out)?;
    Some(out)
}

/// Appends the bytes of `\x` and octal escapes, which must form UTF-8.
fn flush(bytes: &mut Vec<u8>, out: &mut String) -> Option<()> {
    if !bytes.is_empty() {
        out.push_str(std::str::from_utf8(bytes).ok()?);
        bytes.clear();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(line: usize, module: &str, path: &str) -> LocalReplace {
        LocalReplace {
            line,
            module: module.to_owned(),
            path: path.to_owned(),
        }
    }

    fn uses(line: usize, path: &str) -> Use {
        Use {
            line,
            path: path.to_owned(),
        }
    }

    #[test]
    fn single_line_and_block_directives_with_comments() {
        let text = "// The service.\n\
module example.com/web // its path\n\
\n\
go 1.22\n\
\n\
require example.com/common v0.0.0\n\
require (\n\
\texample.com/a v1.0.0 // indirect\n\
\t// a whole-line comment\n\
\n\
\texample.com/b v1.2.0\n\
)\n\
\n\
replace example.com/common => ../common // the monorepo's\n\
replace (\n\
\t// libraries beside this service\n\
\texample.com/a => ./third_party/a\n\
\n\
\texample.com/b v1.2.0 => /src/b// no space before the comment\n\
)\n\
replace ()\n";
        let parsed = parse(text);
        assert_eq!(
            parsed.requires,
            ["example.com/common", "example.com/a", "example.com/b"]
        );
        assert_eq!(
            parsed.replaces,
            [
                replace(14, "example.com/common", "../common"),
                replace(17, "example.com/a", "./third_party/a"),
                replace(19, "example.com/b", "/src/b"),
            ]
        );
        assert!(parsed.uses.is_empty());
    }

    #[test]
    fn use_directives_in_both_forms_and_carriage_returns() {
        let text = "go 1.22\r\n\r\nuse ./web\r\nuse (\r\n\t./common // shared\r\n\t\"../with space\"\r\n)\r\nuse ()\r\nreplace example.com/x => ../x\r\n";
        let parsed = parse(text);
        assert_eq!(
            parsed.uses,
            [
                uses(3, "./web"),
                uses(5, "./common"),
                uses(6, "../with space")
            ]
        );
        assert_eq!(parsed.replaces, [replace(9, "example.com/x", "../x")]);
    }

    #[test]
    fn quoted_paths_are_unquoted_as_go_unquotes_them() {
        let text = r#"replace "example.com/a" => "../a b"
replace example.com/c => "../caf\u00e9"
replace example.com/d => "..\x2fd"
replace example.com/e => "../\145"
replace example.com/f => "../tab\there"
replace example.com/g => `../raw`
replace example.com/h => ../it's
replace example.com/i => "../bad\q"
"#;
        assert_eq!(
            parse(text).replaces,
            [
                replace(1, "example.com/a", "../a b"),
                replace(2, "example.com/c", "../café"),
                replace(3, "example.com/d", "../d"),
                replace(4, "example.com/e", "../e"),
                replace(5, "example.com/f", "../tab\there"),
            ],
            "raw strings, quotes in bare words and unknown escapes are refused, as go refuses them"
        );
    }

    #[test]
    fn only_local_replacements_count() {
        let text = "replace example.com/a v1.0.0 => ../a\n\
replace example.com/b => example.com/fork v1.1.0\n\
replace example.com/c v1.0.0 => example.com/fork v1.1.0\n\
replace example.com/d => example.com/fork\n\
replace example.com/e => ../e v1.0.0\n\
replace example.com/f ../f\n\
replace example.com/g => .\n\
replace example.com/h => ..\\windows\n\
replace example.com/i => C:\\src\\i\n\
replace example.com/j =>../j\n";
        assert_eq!(
            parse(text).replaces,
            [
                replace(1, "example.com/a", "../a"),
                replace(7, "example.com/g", "."),
                replace(8, "example.com/h", "..\\windows"),
                replace(9, "example.com/i", "C:\\src\\i"),
            ]
        );
    }

    #[test]
    fn parentheses_mid_line_are_words_and_a_block_verb_is_one_word() {
        let text = "use ( ) ./x\nuse foo (\n\t./y\n)\nuse ./z\n";
        assert_eq!(parse(text).uses, [uses(5, "./z")]);
    }

    #[test]
    fn what_go_refuses_ends_the_reading_without_a_panic() {
        for text in [
            "replace (\n\texample.com/a => ../a\n",
            "replace example.com/a => \"../a\n",
            "/* a */ replace example.com/a => ../a\n",
            "replace (\n\texample.com/a => ../a\n) trailing\n",
            "replace example.com/a => ../a /* x */\n",
            "use \u{1}\n",
            "",
            "(",
            ")\n",
        ] {
            let parsed = parse(text);
            assert!(parsed.uses.is_empty(), "{text:?}: {parsed:?}");
        }
        assert_eq!(
            parse("replace example.com/a => ../a\nreplace (\n").replaces,
            [replace(1, "example.com/a", "../a")]
        );
    }
}

/// Content tags of Go binaries computed from real files and the real `go`.
#[cfg(test)]
mod tag_tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::image::plan::plan;
    use crate::image::spec::{ImageSpec, TagPolicy};
    use crate::image::test_tree::write;

    const WEB_MAIN: &[u8] = b"package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/common\"\n)\n\nfunc main() { fmt.Println(common.Version) }\n";

    fn env() -> GoEnv {
        GoEnv::current().with("GOPROXY", "off")
    }

    fn tag_in(module: &Path, env: &GoEnv) -> Result<String, crate::image::BuildError> {
        let spec = ImageSpec::go_binary("web", module);
        Ok(
            plan(spec, &TagPolicy::Content, "run", &BTreeMap::new(), env)?
                .input_digest()
                .to_owned(),
        )
    }

    fn tag(module: &Path) -> String {
        tag_in(module, &env()).unwrap()
    }

    /// `web`, whose go.mod replaces `example.com/common` with `../common`,
    /// beside that module and an unrelated folder.
    fn replace_layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "web/go.mod",
            b"module example.com/web\n\ngo 1.22\n\nrequire example.com/common v0.0.0\n\nreplace example.com/common => ../common\n",
        );
        write(root, "web/main.go", WEB_MAIN);
        write(
            root,
            "common/go.mod",
            b"module example.com/common\n\ngo 1.22\n\n// Not a main module's: go ignores it.\nreplace example.com/ghost => ../ghost\n",
        );
        write(
            root,
            "common/common.go",
            b"package common\n\nconst Version = \"common-v1\"\n",
        );
        write(root, "unrelated/notes.txt", b"one");
        dir
    }

    /// `web` and `common` as members of a go.work workspace, beside an
    /// unrelated folder.
    fn workspace_layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "go.work",
            b"go 1.22\n\nuse (\n\t./web\n\t./common\n)\n",
        );
        write(root, "web/go.mod", b"module example.com/web\n\ngo 1.22\n");
        write(root, "web/main.go", WEB_MAIN);
        write(
            root,
            "common/go.mod",
            b"module example.com/common\n\ngo 1.22\n",
        );
        write(
            root,
            "common/common.go",
            b"package common\n\nconst Version = \"common-v1\"\n",
        );
        write(root, "unrelated/notes.txt", b"one");
        dir
    }

    /// Changes files in `unrelated/` (the tag of `dir/web` must stay) and
    /// then `common/common.go` (it must change); returns the new tag.
    fn only_common_counts(dir: &Path) -> String {
        let web = dir.join("web");
        let before = tag(&web);
        assert_eq!(before, tag(&web));
        write(dir, "unrelated/notes.txt", b"two");
        write(dir, "unrelated/new.go", b"package unrelated\n");
        assert_eq!(before, tag(&web), "an unrelated folder changed the tag");
        write(
            dir,
            "common/common.go",
            b"package common\n\nconst Version = \"common-v2\"\n",
        );
        let changed = tag(&web);
        assert_ne!(before, changed, "a change in common/ kept the tag");
        changed
    }

    #[test]
    fn a_change_in_a_replaced_module_changes_the_tag_and_one_elsewhere_does_not() {
        let dir = replace_layout();
        let web = dir.path().join("web");
        let changed = only_common_counts(dir.path());
        write(dir.path(), "common/extra.go", b"package common\n");
        assert_ne!(changed, tag(&web), "a file added to ../common kept the tag");
    }

    #[test]
    fn a_change_in_a_workspace_member_or_its_sums_changes_the_tag() {
        let dir = workspace_layout();
        let web = dir.path().join("web");
        let changed = only_common_counts(dir.path());
        write(dir.path(), "go.work.sum", b"example.com/x v1.0.0 h1:x=\n");
        let summed = tag(&web);
        assert_ne!(changed, summed, "a new go.work.sum kept the tag");
        write(
            dir.path(),
            "go.work",
            b"go 1.22\n\nuse (\n\t./web\n\t./common\n)\n\n// a comment\n",
        );
        assert_ne!(summed, tag(&web), "a changed go.work kept the tag");

        let alone = tag_in(&web, &env().with("GOWORK", "off")).unwrap();
        assert_ne!(alone, tag(&web), "GOWORK=off builds without the workspace");
        let named = dir.path().join("go.work").display().to_string();
        assert_eq!(
            tag(&web),
            tag_in(&web, &env().with("GOWORK", &named)).unwrap(),
            "GOWORK naming the go.work found anyway"
        );
    }

    #[test]
    fn build_settings_change_the_tag_and_other_variables_do_not() {
        let dir = replace_layout();
        let web = dir.path().join("web");
        let before = tag(&web);
        for (key, value) in [
            ("GOFLAGS", "-tags=netgo"),
            ("GOARCH", "arm64"),
            ("GOAMD64", "v3"),
            ("GOEXPERIMENT", "fieldtrack"),
        ] {
            let changed = tag_in(&web, &env().with(key, value)).unwrap();
            assert_ne!(before, changed, "{key}={value} kept the tag");
        }
        // Builds are CGO_ENABLED=0 whatever the caller's, and where modules
        // come from changes nothing that go.sum does not pin.
        for (key, value) in [
            ("CGO_ENABLED", "1"),
            ("GOPROXY", "https://proxy.example"),
            ("KINDLING_UNRELATED", "1"),
        ] {
            let same = tag_in(&web, &env().with(key, value)).unwrap();
            assert_eq!(before, same, "{key}={value} changed the tag");
        }
    }

    #[test]
    fn the_toolchain_is_asked_once_per_environment() {
        let first = toolchain(&env()).unwrap();
        assert!(
            first.settings[0].starts_with("go1."),
            "{:?}",
            first.settings
        );
        assert_eq!(
            first.settings[BUILD_SETTINGS
                .iter()
                .position(|s| *s == "CGO_ENABLED")
                .unwrap()],
            "0"
        );
        assert!(Arc::ptr_eq(&first, &toolchain(&env()).unwrap()));
        let other = toolchain(&env().with("GOFLAGS", "-tags=other")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[test]
    fn a_missing_replacement_of_a_required_module_names_the_go_mod_line_and_path() {
        let dir = replace_layout();
        std::fs::remove_dir_all(dir.path().join("common")).unwrap();
        let web = dir.path().join("web");
        let error = tag_in(&web, &env()).unwrap_err();
        let crate::image::BuildError::GoInputs { source, .. } = &error else {
            panic!("{error:?}");
        };
        let GoInputsError::MissingLocalModule {
            file,
            line,
            directive,
            path,
            ..
        } = source.as_ref()
        else {
            panic!("{source:?}");
        };
        assert_eq!(
            (file, *line, *directive, path.as_str()),
            (
                &web.canonicalize().unwrap().join("go.mod"),
                7,
                "replace",
                "../common"
            )
        );
        let text = source.to_string();
        assert!(
            text.contains("go.mod` line 7 names the local folder `../common`")
                && text.contains("is not a directory: create it, or correct the path"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_replacement_nothing_requires_is_no_error_and_its_arrival_counts() {
        let dir = replace_layout();
        write(
            dir.path(),
            "web/go.mod",
            b"module example.com/web\n\ngo 1.22\n\nrequire example.com/common v0.0.0\n\nreplace example.com/common => ../common\n\nreplace example.com/later => ../later\n",
        );
        let web = dir.path().join("web");
        let before = tag(&web);
        write(dir.path(), "later/go.mod", b"module example.com/later\n");
        assert_ne!(before, tag(&web));
    }

    #[test]
    fn a_missing_workspace_member_names_the_go_work_line_and_path() {
        let dir = workspace_layout();
        std::fs::remove_dir_all(dir.path().join("common")).unwrap();
        let error = tag_in(&dir.path().join("web"), &env()).unwrap_err();
        let text = crate::image::BuildError::to_string(&error);
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(text.contains("image `web`"), "{text}");
        assert!(
            source.contains("`use` in `")
                && source.contains("go.work` line 5 names the local folder `./common`"),
            "{source}"
        );
    }

    #[test]
    fn a_relative_gowork_is_refused_with_the_accepted_forms() {
        let dir = workspace_layout();
        let error = read(&dir.path().join("web"), &env().with("GOWORK", "go.work")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("GOWORK=`go.work` is not an absolute path"),
            "{error}"
        );
    }

    /// The folders `go list -m all` loads modules from, canonical.
    fn listed_by_go(module: &Path, env: &GoEnv) -> BTreeSet<PathBuf> {
        let output = env
            .command("go")
            .args(["list", "-m", "-json", "all"])
            .current_dir(module)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::Deserializer::from_slice(&output.stdout)
            .into_iter::<serde_json::Value>()
            .map(|listed| {
                let listed = listed.unwrap();
                let dir = listed["Dir"].as_str().expect("a local module has a Dir");
                Path::new(dir).canonicalize().unwrap()
            })
            .collect()
    }

    fn digested(module: &Path, env: &GoEnv) -> BTreeSet<PathBuf> {
        let inputs = read(module, env).unwrap();
        inputs
            .modules
            .iter()
            .filter_map(|(_, context)| context.as_ref().map(|context| context.root.clone()))
            .chain([module.canonicalize().unwrap()])
            .collect()
    }

    #[test]
    fn the_folders_digested_are_the_local_modules_go_loads() {
        let replaced = replace_layout();
        let web = replaced.path().join("web");
        assert_eq!(digested(&web, &env()), listed_by_go(&web, &env()));

        let workspace = workspace_layout();
        let root = workspace.path();
        write(
            root,
            "go.work",
            b"go 1.22\n\nuse (\n\t./web\n\t./common\n)\n\nreplace example.com/lib => ./lib\n",
        );
        write(
            root,
            "web/go.mod",
            b"module example.com/web\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n",
        );
        write(root, "lib/go.mod", b"module example.com/lib\n\ngo 1.22\n");
        let web = root.join("web");
        assert_eq!(digested(&web, &env()), listed_by_go(&web, &env()));
    }
}
