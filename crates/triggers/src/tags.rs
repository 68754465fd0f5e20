//! Git tags as triggers: the tag grammar (patterns with `<env>`, `<region>`,
//! `<team>`, `<version>` placeholders), the version grammar, resolving a tag
//! in a real repository with the `git` command, and the execution name a tag
//! maps to. See `docs/triggers.md` ("Git tags").
//!
//! Git is reached through its command line (`git -C REPO …`), not a library:
//! it reads every repository format, honours the user's configuration, and
//! is what the hooks run beside anyway.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default rule's pattern.
pub const DEFAULT_PATTERN: &str = "<env>_<region>/<team>/<version>";

/// The longest tag name piflow accepts.
pub const MAX_TAG_LEN: usize = 255;

/// What the version placeholder accepts, for messages.
pub const VERSION_SHAPE: &str = "MAJOR.MINOR[.PATCH][-PRERELEASE][+BUILD] with numbers without leading zeros, e.g. 1.0, 2.3.1, 1.0.0-rc.1";

/// What the region placeholder accepts, for messages.
pub const REGION_SHAPE: &str = "an AWS region code such as us-east-1 or eu-central-2, or global";

/// A placeholder of a tag pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Env,
    Region,
    Team,
    Version,
}

impl Field {
    pub const ALL: [Field; 4] = [Field::Env, Field::Region, Field::Team, Field::Version];

    pub fn name(self) -> &'static str {
        match self {
            Field::Env => "env",
            Field::Region => "region",
            Field::Team => "team",
            Field::Version => "version",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What the field accepts, for messages.
    pub fn shape(self) -> &'static str {
        match self {
            Field::Env => {
                "a lower-case name: a letter, then letters, digits or '-' (dev, prod, qa-2)"
            }
            Field::Region => REGION_SHAPE,
            Field::Team => {
                "a name of letters, digits, '.', '_' or '-', starting with a letter or digit"
            }
            Field::Version => VERSION_SHAPE,
        }
    }

    /// Check a captured value against the field's grammar.
    pub fn check(self, value: &str) -> bool {
        match self {
            Field::Env => is_env(value),
            Field::Region => is_region(value),
            Field::Team => is_team(value),
            Field::Version => Version::parse(value).is_ok(),
        }
    }
}

fn is_env(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_team(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// An AWS region code (`us-east-1`, `us-gov-west-1`, `ap-southeast-3`) or `global`.
pub fn is_region(s: &str) -> bool {
    if s == "global" {
        return true;
    }
    let parts: Vec<&str> = s.split('-').collect();
    let (geo, rest) = match parts.as_slice() {
        [geo, rest @ ..] => (geo, rest),
        _ => return false,
    };
    let rest = match rest {
        ["gov" | "iso" | "isob", rest @ ..] => rest,
        r => r,
    };
    geo.len() == 2
        && geo.chars().all(|c| c.is_ascii_lowercase())
        && matches!(rest, [area, n] if !area.is_empty()
            && area.chars().all(|c| c.is_ascii_lowercase())
            && !n.is_empty() && n.len() <= 2
            && n.chars().all(|c| c.is_ascii_digit()))
}

/// A release version: `MAJOR.MINOR[.PATCH][-PRERELEASE][+BUILD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: Option<u64>,
    pub pre: Option<String>,
    pub build: Option<String>,
}

impl Version {
    /// Parse a version; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Version, String> {
        let (rest, build) = match s.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        if s.is_empty() {
            return Err("the version is empty".into());
        }
        let nums: Vec<&str> = core.split('.').collect();
        if !(2..=3).contains(&nums.len()) {
            return Err(format!(
                "{core:?} has {} numeric part(s); a version has 2 or 3 (MAJOR.MINOR or MAJOR.MINOR.PATCH)",
                nums.len()
            ));
        }
        let mut parsed = Vec::with_capacity(3);
        for n in &nums {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("{n:?} is not a number"));
            }
            if n.len() > 1 && n.starts_with('0') {
                return Err(format!("{n:?} has a leading zero"));
            }
            parsed.push(
                n.parse::<u64>()
                    .map_err(|_| format!("{n:?} is too large a number"))?,
            );
        }
        let idents = |what: &str, text: &str| -> Result<String, String> {
            if text
                .split('.')
                .any(|i| i.is_empty() || !i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                return Err(format!(
                    "{what} {text:?} must be dot-separated identifiers of letters, digits and '-'"
                ));
            }
            Ok(text.to_string())
        };
        Ok(Version {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed.get(2).copied(),
            pre: pre.map(|p| idents("pre-release", p)).transpose()?,
            build: build.map(|b| idents("build", b)).transpose()?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        if let Some(b) = &self.build {
            write!(f, "+{b}")?;
        }
        Ok(())
    }
}

/// A problem with a tag pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag pattern {pattern:?}: {message}")]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Var(Field),
}

/// A compiled tag pattern: literal text and placeholders, each placeholder
/// followed by literal text (or the end), so a tag splits one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    text: String,
    segs: Vec<Seg>,
}

/// The fields a tag matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFields {
    pub env: Option<String>,
    pub region: Option<String>,
    pub team: Option<String>,
    pub version: Option<String>,
}

impl TagFields {
    pub fn get(&self, f: Field) -> Option<&str> {
        match f {
            Field::Env => self.env.as_deref(),
            Field::Region => self.region.as_deref(),
            Field::Team => self.team.as_deref(),
            Field::Version => self.version.as_deref(),
        }
    }

    fn set(&mut self, f: Field, v: &str) {
        let slot = match f {
            Field::Env => &mut self.env,
            Field::Region => &mut self.region,
            Field::Team => &mut self.team,
            Field::Version => &mut self.version,
        };
        *slot = Some(v.to_string());
    }
}

/// How a tag fared against one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagMatch {
    /// Every placeholder holds a valid value.
    Matched(TagFields),
    /// The tag has the pattern's shape, but a field breaks its grammar
    /// (`fields` holds what was captured, the bad one included).
    Malformed {
        fields: TagFields,
        field: Field,
        value: String,
        reason: String,
    },
    /// The tag does not have the pattern's shape.
    NoMatch,
}

impl TagPattern {
    /// Compile a pattern: `<env>`, `<region>`, `<team>`, `<version>`, and
    /// literal text (no `<`, `>`, `*`, `?`, `[`, whitespace or controls).
    pub fn parse(text: &str) -> Result<TagPattern, PatternError> {
        let err = |message: String| PatternError {
            pattern: text.to_string(),
            message,
        };
        if text.is_empty() {
            return Err(err("the pattern is empty".into()));
        }
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let Some(end) = rest.find('>') else {
                    return Err(err("'<' opens a placeholder that no '>' closes".into()));
                };
                let name = &rest[1..end];
                let Some(field) = Field::from_name(name) else {
                    return Err(err(format!(
                        "unknown placeholder <{name}>; the placeholders are <env>, <region>, <team> and <version>"
                    )));
                };
                if segs.contains(&Seg::Var(field)) {
                    return Err(err(format!("<{name}> appears twice")));
                }
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(&mut lit)));
                } else if matches!(segs.last(), Some(Seg::Var(_))) {
                    return Err(err(format!(
                        "<{name}> follows another placeholder directly; separate placeholders with literal text such as '_' or '/'"
                    )));
                }
                segs.push(Seg::Var(field));
                rest = &rest[end + 1..];
                continue;
            }
            if c == '>' || c.is_whitespace() || c.is_control() || "*?[\\".contains(c) {
                return Err(err(format!(
                    "{c:?} cannot appear in a tag pattern (only in git's refused characters or as a placeholder bracket)"
                )));
            }
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(TagPattern {
            text: text.to_string(),
            segs,
        })
    }

    /// [`DEFAULT_PATTERN`], compiled.
    pub fn default_pattern() -> TagPattern {
        TagPattern {
            text: DEFAULT_PATTERN.to_string(),
            segs: vec![
                Seg::Var(Field::Env),
                Seg::Lit("_".into()),
                Seg::Var(Field::Region),
                Seg::Lit("/".into()),
                Seg::Var(Field::Team),
                Seg::Lit("/".into()),
                Seg::Var(Field::Version),
            ],
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The placeholders the pattern holds.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.segs.iter().filter_map(|s| match s {
            Seg::Var(f) => Some(*f),
            Seg::Lit(_) => None,
        })
    }

    /// Match a tag. A placeholder captures one or more characters other
    /// than `/`; among the ways the tag splits, the first (leftmost-shortest)
    /// whose fields are all valid wins; when none is, the first split names
    /// the field that is malformed.
    pub fn matches(&self, tag: &str) -> TagMatch {
        if tag.len() > MAX_TAG_LEN {
            return TagMatch::NoMatch;
        }
        let mut first_shape: Option<TagFields> = None;
        let mut fields = TagFields::default();
        let mut budget = 100_000usize;
        if let Some(ok) = self.walk(tag, 0, &mut fields, &mut first_shape, &mut budget) {
            return TagMatch::Matched(ok);
        }
        let Some(fields) = first_shape else {
            return TagMatch::NoMatch;
        };
        for f in self.fields() {
            let value = fields.get(f).unwrap_or("").to_string();
            if !f.check(&value) {
                let reason = match f {
                    Field::Version => Version::parse(&value).err().unwrap_or_default(),
                    _ => format!("{value:?} is not {}", f.shape()),
                };
                return TagMatch::Malformed {
                    fields,
                    field: f,
                    value,
                    reason,
                };
            }
        }
        TagMatch::NoMatch
    }

    /// Depth-first over the splits; returns the first valid one.
    fn walk(
        &self,
        rest: &str,
        seg: usize,
        fields: &mut TagFields,
        first_shape: &mut Option<TagFields>,
        budget: &mut usize,
    ) -> Option<TagFields> {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let Some(s) = self.segs.get(seg) else {
            if !rest.is_empty() {
                return None;
            }
            if first_shape.is_none() {
                *first_shape = Some(fields.clone());
            }
            return self
                .fields()
                .all(|f| fields.get(f).is_some_and(|v| f.check(v)))
                .then(|| fields.clone());
        };
        match s {
            Seg::Lit(l) => {
                let r = rest.strip_prefix(l.as_str())?;
                self.walk(r, seg + 1, fields, first_shape, budget)
            }
            Seg::Var(f) => {
                let limit = rest.find('/').unwrap_or(rest.len());
                let last = seg + 1 == self.segs.len();
                for (i, c) in rest[..limit].char_indices() {
                    let end = i + c.len_utf8();
                    if last && end != rest.len() {
                        continue;
                    }
                    fields.set(*f, &rest[..end]);
                    if let Some(ok) = self.walk(&rest[end..], seg + 1, fields, first_shape, budget)
                    {
                        return Some(ok);
                    }
                }
                None
            }
        }
    }
}

/// The execution name of a tag: its characters outside `[A-Za-z0-9_-]`
/// become `-`, cut to fit, then `-` and the first 10 hex digits of the
/// tag's SHA-256, so distinct tags get distinct names and the same tag
/// always the same one (1–80 characters, as Step Functions requires).
pub fn execution_name(tag: &str) -> String {
    let readable: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(80 - 11)
        .collect();
    let hash = piflow_store::sha256_hex(tag.as_bytes());
    format!("{readable}-{}", &hash[..10])
}

/// What git holds about a tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagInfo {
    /// The tag's name (without `refs/tags/`).
    pub name: String,
    /// Annotated (a tag object) or lightweight (a ref to a commit).
    pub annotated: bool,
    /// The object the ref points at: the tag object, or the commit.
    pub object: String,
    /// The commit the tag peels to.
    pub commit: String,
    /// The tagger (annotated) or the commit's committer (lightweight).
    pub tagger_name: String,
    pub tagger_email: String,
    /// When it was tagged (annotated) or committed (lightweight), ISO 8601
    /// strict as git prints it (`2026-11-22T05:40:00+00:00`).
    pub date: String,
    /// The tag's message (annotated) or the commit's (lightweight).
    pub message: String,
}

impl TagInfo {
    /// `Name <email>`.
    pub fn tagger(&self) -> String {
        if self.tagger_email.is_empty() {
            self.tagger_name.clone()
        } else {
            format!("{} <{}>", self.tagger_name, self.tagger_email)
        }
    }
}

/// Why a tag could not be read from git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "the git command cannot be run ({reason}); install git (apt-get install git) or put it on PATH"
    )]
    GitMissing { reason: String },
    #[error(
        "{repo} is not a git repository ({reason}); pass --repo with the path of a repository (or its .git directory)"
    )]
    NotARepository { repo: PathBuf, reason: String },
    #[error(
        "no tag {tag:?} in {repo}; list the tags with `git -C {repo} tag --list`, or fetch them with `git fetch --tags`"
    )]
    NoSuchTag { tag: String, repo: PathBuf },
    #[error(
        "tag {tag:?} names the {kind} {object}, not a commit; tags that start workflows must point at commits"
    )]
    NotACommit {
        tag: String,
        kind: String,
        object: String,
    },
    #[error("{tag:?} is not a valid tag name: {reason}")]
    BadName { tag: String, reason: String },
    #[error("`git {command}` in {repo} failed: {stderr}")]
    Failed {
        command: String,
        repo: PathBuf,
        stderr: String,
    },
}

impl GitError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("git-missing", "git is not installed"),
        ("not-a-repository", "not a git repository"),
        ("no-such-tag", "the tag is not in the repository"),
        ("tag-not-a-commit", "the tag does not point at a commit"),
        ("bad-tag-name", "not a valid tag name"),
        ("git-failed", "a git command failed"),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            GitError::GitMissing { .. } => "git-missing",
            GitError::NotARepository { .. } => "not-a-repository",
            GitError::NoSuchTag { .. } => "no-such-tag",
            GitError::NotACommit { .. } => "tag-not-a-commit",
            GitError::BadName { .. } => "bad-tag-name",
            GitError::Failed { .. } => "git-failed",
        }
    }
}

/// Run `git -C repo args…`; stdout on success. The environment a git hook
/// passes down (`GIT_DIR`, …) is removed so that `repo` is what git reads.
pub fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args);
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
        "GIT_PREFIX",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C");
    let out = cmd.output().map_err(|e| GitError::GitMissing {
        reason: e.to_string(),
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        if stderr.contains("not a git repository") || stderr.contains("cannot change to") {
            return Err(GitError::NotARepository {
                repo: repo.to_path_buf(),
                reason: stderr,
            });
        }
        return Err(GitError::Failed {
            command: args.join(" "),
            repo: repo.to_path_buf(),
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Check a tag name before it reaches git (git's own rules, through
/// `git check-ref-format`, plus no glob characters).
pub fn check_tag_name(tag: &str) -> Result<(), GitError> {
    let bad = |reason: &str| GitError::BadName {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if tag.is_empty() {
        return Err(bad("it is empty"));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(bad(&format!("it is longer than {MAX_TAG_LEN} bytes")));
    }
    if tag.starts_with('-') {
        return Err(bad("it starts with '-'"));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(*c))
    {
        return Err(bad(&format!(
            "it contains {c:?}, which git refuses in ref names"
        )));
    }
    if tag.contains("..") || tag.contains("@{") || tag.contains("//") {
        return Err(bad("it contains '..', '@{' or '//', which git refuses"));
    }
    if tag.ends_with('/') || tag.ends_with('.') || tag.ends_with(".lock") || tag.starts_with('/') {
        return Err(bad(
            "it starts or ends with '/', or ends with '.' or '.lock', which git refuses",
        ));
    }
    Ok(())
}

const SEP: char = '\u{1f}';

/// The `for-each-ref` format: fields separated by U+001F; the message last.
const FORMAT: &str = "%(refname)%1f%(objecttype)%1f%(objectname)%1f%(taggername)%1f%(taggeremail:trim)%1f%(taggerdate:iso-strict)%1f%(committername)%1f%(committeremail:trim)%1f%(committerdate:iso-strict)%1f%(contents)%00";

/// Resolve `tag` in the repository at `repo` (a work tree or a bare
/// repository): annotated or lightweight, the commit it peels to, who
/// tagged it and when.
pub fn resolve_tag(repo: &Path, tag: &str) -> Result<TagInfo, GitError> {
    check_tag_name(tag)?;
    let refname = format!("refs/tags/{tag}");
    let format = format!("--format={FORMAT}");
    let out = git(repo, &["for-each-ref", &format, &refname])?;
    let record = out
        .split('\0')
        .map(|r| r.trim_start_matches('\n'))
        .find(|r| r.split(SEP).next() == Some(refname.as_str()))
        .ok_or_else(|| GitError::NoSuchTag {
            tag: tag.to_string(),
            repo: repo.to_path_buf(),
        })?;
    let f: Vec<&str> = record.splitn(10, SEP).collect();
    if f.len() < 10 {
        return Err(GitError::Failed {
            command: "for-each-ref".into(),
            repo: repo.to_path_buf(),
            stderr: format!("unexpected output {record:?}"),
        });
    }
    let (kind, object) = (f[1], f[2]);
    let annotated = kind == "tag";
    if !annotated && kind != "commit" {
        return Err(GitError::NotACommit {
            tag: tag.to_string(),
            kind: kind.to_string(),
            object: object.to_string(),
        });
    }
    let commit = if annotated {
        let peel = format!("{object}^{{commit}}");
        match git(repo, &["rev-parse", "--verify", "--quiet", &peel]) {
            Ok(c) => c.trim().to_string(),
            Err(GitError::Failed { .. }) => {
                let kind = git(repo, &["cat-file", "-t", &format!("{object}^{{}}")])
                    .map(|k| k.trim().to_string())
                    .unwrap_or_else(|_| "object".into());
                return Err(GitError::NotACommit {
                    tag: tag.to_string(),
                    kind,
                    object: object.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    } else {
        object.to_string()
    };
    let (name, email, date) = if annotated {
        (f[3], f[4], f[5])
    } else {
        (f[6], f[7], f[8])
    };
    Ok(TagInfo {
        name: tag.to_string(),
        annotated,
        object: object.to_string(),
        commit,
        tagger_name: name.to_string(),
        tagger_email: email.to_string(),
        date: date.to_string(),
        message: f[9].trim_end().to_string(),
    })
}

/// Every tag of the repository, oldest first (by the tagger's or
/// committer's date; git's last `--sort` is the first key), then by name: `(name, object)`.
pub fn list_tags(repo: &Path) -> Result<Vec<(String, String)>, GitError> {
    let out = git(
        repo,
        &[
            "for-each-ref",
            "--sort=refname",
            "--sort=creatordate",
            "--format=%(refname:strip=2)%1f%(objectname)",
            "refs/tags",
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(SEP))
        .map(|(n, o)| (n.to_string(), o.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_step_functions() {
        assert_eq!(
            TagPattern::parse(DEFAULT_PATTERN).unwrap(),
            TagPattern::default_pattern()
        );
        let n = execution_name("dev_us-east-1/research/1.0");
        assert!(n.starts_with("dev_us-east-1-research-1-0-"));
        assert!(piflow_runner::check_name(&n).is_ok());
        let long = "a/".repeat(200);
        assert!(execution_name(&long).len() <= 80);
        assert_ne!(execution_name("a/b"), execution_name("a.b"));
    }
}
