//! Git tags as triggers (docs/triggers.md, "Git tags"): the tag and version
//! grammar, piflow.yaml's strict reading, resolving annotated and
//! lightweight tags in real repositories made in temp dirs, and through the
//! `piflow` binary: the same tag twice is one execution, a tag no rule
//! accepts is refused and audited, `watch --once` triggers new tags only,
//! and the hooks of `hooks install` trigger pushed and created tags.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use piflow_triggers::config::TriggerConfig;
use piflow_triggers::tags::{
    DEFAULT_PATTERN, Field, GitError, TagMatch, TagPattern, Version, execution_name, list_tags,
    resolve_tag,
};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("piflow")
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working directory with a tiny workflow, a piflow.yaml mapping the
/// default grammar to it, a store under it, and a repository with one commit.
struct Site {
    dir: tempfile::TempDir,
}

const TINY: &str = "StartAt: Done\nStates:\n  Done:\n    Type: Pass\n    End: true\n";

const CONFIG: &str = r#"tags:
  - pattern: "<env>_<region>/<team>/<version>"
    workflow: tiny
    input:
      environment: "{env}"
      region: "{region}"
      team: "{team}"
      release: {version: "{version}", commit: "{commit}", tag: "{tag}", by: "{tagger}", at: "{date}"}
"#;

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join("workflows/tiny.asl.yaml"), TINY).unwrap();
        std::fs::write(dir.path().join("piflow.yaml"), CONFIG).unwrap();
        let site = Site { dir };
        make_repo(&site.repo());
        site
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }

    fn piflow(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(self.path())
            .env("PIFLOW_HOME", self.path().join("home"))
            .env_remove("PIFLOW_STORE")
            .env_remove("PIFLOW_CONFIG")
            .env("USER", "tester")
            .output()
            .expect("piflow runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.piflow(args);
        assert!(
            out.status.success(),
            "piflow {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    fn executions(&self) -> Vec<Value> {
        self.json(&["executions", "--format", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn audit(&self) -> Vec<Value> {
        self.json(&["audit", "--format", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn tag(&self, args: &[&str]) {
        git(&self.repo(), &[&["tag"], args].concat());
    }
}

fn make_repo(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "user.name", "Ann Tagger"]);
    git(repo, &["config", "user.email", "ann@example.com"]);
    git(repo, &["config", "tag.gpgSign", "false"]);
    git(repo, &["config", "commit.gpgSign", "false"]);
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(repo, &["add", "README"]);
    git_env(
        repo,
        &["commit", "-q", "-m", "first"],
        &[
            ("GIT_COMMITTER_NAME", "Carl Committer"),
            ("GIT_COMMITTER_EMAIL", "carl@example.com"),
            ("GIT_COMMITTER_DATE", "2026-01-02T03:04:05+00:00"),
        ],
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_grammar() {
    for ok in [
        "1.0",
        "2.3.1",
        "1.0.0-rc.1",
        "0.9",
        "10.20.30",
        "1.2.3+build.5",
        "1.0-beta",
    ] {
        let v = Version::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(v.to_string(), ok);
    }
    let v = Version::parse("1.0.0-rc.1").unwrap();
    assert_eq!((v.major, v.minor, v.patch), (1, 0, Some(0)));
    assert_eq!(v.pre.as_deref(), Some("rc.1"));
    for (bad, why) in [
        ("1", "numeric part"),
        ("1.2.3.4", "numeric part"),
        ("v1.0", "not a number"),
        ("1.x", "not a number"),
        ("01.2", "leading zero"),
        ("1.0-", "pre-release"),
        ("1.0-rc..1", "pre-release"),
        ("1.0+", "build"),
        ("", "empty"),
        ("99999999999999999999.0", "too large"),
    ] {
        let e = Version::parse(bad).expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn tag_grammar() {
    let p = TagPattern::parse(DEFAULT_PATTERN).unwrap();
    let TagMatch::Matched(f) = p.matches("dev_us-east-1/research/1.0") else {
        panic!("no match");
    };
    assert_eq!(f.env.as_deref(), Some("dev"));
    assert_eq!(f.region.as_deref(), Some("us-east-1"));
    assert_eq!(f.team.as_deref(), Some("research"));
    assert_eq!(f.version.as_deref(), Some("1.0"));
    let TagMatch::Matched(f) = p.matches("prod_global/risk/2.3") else {
        panic!("no match");
    };
    assert_eq!(f.region.as_deref(), Some("global"));
    assert!(matches!(
        p.matches("prod_us-gov-west-1/risk/1.0.0-rc.1"),
        TagMatch::Matched(_)
    ));
    // Env names hold '-', so the first '_' splits env from region.
    assert!(matches!(
        p.matches("qa-2_eu-central-2/ops/1.0"),
        TagMatch::Matched(_)
    ));

    match p.matches("dev_us-east-1/research/1.x") {
        TagMatch::Malformed {
            field,
            value,
            fields,
            ..
        } => {
            assert_eq!(field, Field::Version);
            assert_eq!(value, "1.x");
            assert_eq!(fields.env.as_deref(), Some("dev"));
        }
        other => panic!("{other:?}"),
    }
    match p.matches("dev_mars-1/research/1.0") {
        TagMatch::Malformed { field, .. } => assert_eq!(field, Field::Region),
        other => panic!("{other:?}"),
    }
    for no in [
        "v1.0",
        "dev/research/1.0",
        "dev_us-east-1/research",
        "dev_us-east-1/a/b/1.0",
        "",
    ] {
        assert_eq!(p.matches(no), TagMatch::NoMatch, "{no}");
    }

    let custom = TagPattern::parse("release/<team>-v<version>").unwrap();
    let TagMatch::Matched(f) = custom.matches("release/risk-engine-v2.3.1") else {
        panic!("no match");
    };
    assert_eq!(f.team.as_deref(), Some("risk-engine"));
    assert_eq!(f.version.as_deref(), Some("2.3.1"));
    assert_eq!(f.env, None);

    for (bad, why) in [
        ("<env><version>", "follows another placeholder"),
        ("<service>/<version>", "unknown placeholder"),
        ("<env>/<env>", "twice"),
        ("rel*/<version>", "cannot appear"),
        ("<version", "no '>'"),
        ("", "empty"),
    ] {
        let e = TagPattern::parse(bad).expect_err(bad);
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn execution_names_from_tags() {
    let a = execution_name("dev_us-east-1/research/1.0");
    assert_eq!(a, execution_name("dev_us-east-1/research/1.0"));
    assert!(a.starts_with("dev_us-east-1-research-1-0-"), "{a}");
    // Tags that read alike still get distinct names.
    for other in [
        "dev_us-east-1/research/1-0",
        "dev_us-east-1.research/1.0",
        "dev_us-east-1/research/1.0/",
    ] {
        assert_ne!(a, execution_name(other), "{other}");
    }
    let long = format!("prod_eu-west-1/{}/1.0", "t".repeat(250));
    for n in [a, execution_name(&long), execution_name("é/ü")] {
        assert!((1..=80).contains(&n.len()), "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{n}"
        );
        piflow_runner::check_name(&n).unwrap();
    }
}

#[test]
fn config_is_read_strictly() {
    let path = Path::new("/x/piflow.yaml");
    let err = |text: &str| TriggerConfig::parse(text, path).expect_err(text);

    let e = err("tags:\n  - pattern: \"<env>_<version>\"\n    workflow: tiny\n    inptu: {}\n");
    assert_eq!(e.key, "tags[0].inptu");
    assert_eq!(e.line.map(|l| l.0), Some(4));
    assert!(e.message.contains("did you mean \"input\""), "{e}");
    assert!(
        e.to_string()
            .starts_with("/x/piflow.yaml:4:5: tags[0].inptu"),
        "{e}"
    );

    let e = err("tag:\n  - pattern: x\n");
    assert_eq!((e.key.as_str(), e.line), ("tag", Some((1, 1))));

    let e = err("tags:\n  - pattern: \"<env>_<servce>\"\n    workflow: tiny\n");
    assert_eq!(e.key, "tags[0].pattern");
    assert!(e.message.contains("unknown placeholder <servce>"), "{e}");

    let e = err(
        "tags:\n  - pattern: \"<env>/<version>\"\n    workflow: tiny\n    input:\n      a: {b: \"{team}\"}\n",
    );
    assert_eq!(e.key, "tags[0].input.a.b");
    assert_eq!(e.line.map(|l| l.0), Some(5));
    assert!(e.message.contains("{team} is not captured"), "{e}");

    let e = err(
        "tags:\n  - pattern: \"<version>\"\n    workflow: tiny\n    set:\n      a.b: \"{verison}\"\n",
    );
    assert_eq!(e.key, "tags[0].set.a.b");
    assert!(e.message.contains("unknown variable {verison}"), "{e}");

    let e = err("tags:\n  - workflow: tiny\n");
    assert_eq!(e.key, "tags[0].pattern");
    let e = err("tags: []\n");
    assert_eq!(e.key, "tags");
    let e = err("tags:\n  - pattern: 1.0\n    workflow: tiny\n");
    assert!(e.message.contains("must be a string"), "{e}");
    let e = err("events:\n  - {}\n");
    assert_eq!(e.key, "events[0].name", "{e}");
    let e = err(
        "tags:\n  - pattern: \"<version>\"\n    workflow: tiny\n    input: \"@missing.json\"\n",
    );
    assert!(e.message.contains("missing.json"), "{e}");
    let e = err(
        "tags:\n  - pattern: \"<version>\"\n    workflow: tiny\n    input: {a: 1}\n    set:\n      a.b: x\n",
    );
    assert!(e.message.contains("not an object"), "{e}");
    let e = err("tags: [\n");
    assert_eq!(e.key, "(syntax)");

    // No tags: section → the default rule.
    let c = TriggerConfig::parse("# nothing yet\n", path).unwrap();
    assert_eq!(c.tags.len(), 1);
    assert_eq!(c.tags[0].pattern.as_str(), DEFAULT_PATTERN);
    assert_eq!(c.tags[0].workflow, "upgrade");

    // First matching rule wins; a malformed version is named as such.
    let c = TriggerConfig::parse(
        "tags:\n  - pattern: \"hotfix/<version>\"\n    workflow: hotfix\n    set:\n      /release/version: \"{version}\"\n      /release/urgent: true\n  - pattern: \"<env>_<region>/<team>/<version>\"\n    workflow: upgrade\n",
        path,
    )
    .unwrap();
    let (rule, _) = c.match_tag("hotfix/1.2.3").unwrap();
    assert_eq!(rule.workflow, "hotfix");
    let (rule, f) = c.match_tag("dev_us-east-1/research/1.0").unwrap();
    assert_eq!((rule.index, f.team.as_deref()), (1, Some("research")));
    let r = c.match_tag("dev_us-east-1/research/one").unwrap_err();
    assert_eq!(
        (r.code, r.env.as_deref()),
        ("malformed-version", Some("dev"))
    );
    assert!(
        r.reason.contains("dev_us-east-1/research/one") && r.reason.contains("MAJOR.MINOR"),
        "{}",
        r.reason
    );
    let r = c.match_tag("random").unwrap_err();
    assert_eq!((r.code, r.env), ("no-rule", None));
    assert!(r.reason.contains("hotfix/<version>"), "{}", r.reason);
}

#[test]
fn set_paths_fill_a_file_base() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.json"),
        r#"{"target": {"cluster": "product", "note": "{env} stays literal"}, "list": [1, 2]}"#,
    )
    .unwrap();
    let cfg = dir.path().join("piflow.yaml");
    std::fs::write(
        &cfg,
        "tags:\n  - pattern: \"<env>/<version>\"\n    workflow: w\n    input: \"@base.json\"\n    set:\n      target.environment: \"{env}\"\n      /release/image: \"img:{version}-{{x}}\"\n      /list/1: 5\n",
    )
    .unwrap();
    let c = TriggerConfig::load(&cfg).unwrap();
    let (rule, fields) = c.match_tag("dev/1.0").unwrap();
    let info = piflow_triggers::tags::TagInfo {
        name: "dev/1.0".into(),
        annotated: false,
        object: "c".repeat(40),
        commit: "c".repeat(40),
        tagger_name: "A".into(),
        tagger_email: "a@x".into(),
        date: "2026-01-01T00:00:00Z".into(),
        message: String::new(),
    };
    let vars = piflow_triggers::config::TagVars::new(fields, &info);
    let input = rule.input(&vars).unwrap();
    assert_eq!(
        input,
        json!({
            "target": {"cluster": "product", "note": "{env} stays literal", "environment": "dev"},
            "list": [1, 5],
            "release": {"image": "img:1.0-{x}"}
        })
    );
    assert_eq!(
        rule.input(&vars).unwrap(),
        input,
        "the same tag, the same input"
    );
}

#[test]
fn resolves_annotated_and_lightweight_tags() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    make_repo(&repo);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    git_env(
        &repo,
        &[
            "tag",
            "-a",
            "dev_us-east-1/research/1.0",
            "-m",
            "Release 1.0\n\nNotes.",
        ],
        &[
            ("GIT_COMMITTER_NAME", "Tina Tagger"),
            ("GIT_COMMITTER_EMAIL", "tina@example.com"),
            ("GIT_COMMITTER_DATE", "2026-03-04T05:06:07+02:00"),
        ],
    );
    git(&repo, &["tag", "prod_global/risk/2.3"]);

    let a = resolve_tag(&repo, "dev_us-east-1/research/1.0").unwrap();
    assert!(a.annotated);
    assert_eq!(a.commit, head);
    assert_ne!(
        a.object, head,
        "an annotated tag's object is the tag object"
    );
    assert_eq!(a.tagger_name, "Tina Tagger");
    assert_eq!(a.tagger_email, "tina@example.com");
    assert_eq!(a.tagger(), "Tina Tagger <tina@example.com>");
    assert_eq!(a.date, "2026-03-04T05:06:07+02:00");
    assert_eq!(a.message, "Release 1.0\n\nNotes.");

    let l = resolve_tag(&repo, "prod_global/risk/2.3").unwrap();
    assert!(!l.annotated);
    assert_eq!(
        (l.commit.as_str(), l.object.as_str()),
        (head.as_str(), head.as_str())
    );
    assert_eq!(l.tagger(), "Carl Committer <carl@example.com>");
    assert_eq!(l.date, "2026-01-02T03:04:05Z");
    assert_eq!(l.message, "first");

    // A bare clone resolves the same.
    let bare = dir.path().join("bare.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    assert_eq!(resolve_tag(&bare, "dev_us-east-1/research/1.0").unwrap(), a);

    // Typed errors.
    assert!(
        matches!(
            resolve_tag(&repo, "dev_us-east-1/research"),
            Err(GitError::NoSuchTag { .. })
        ),
        "a prefix of a tag is not a tag"
    );
    assert!(matches!(
        resolve_tag(&repo, "nope"),
        Err(GitError::NoSuchTag { .. })
    ));
    assert!(matches!(
        resolve_tag(&repo, "a*"),
        Err(GitError::BadName { .. })
    ));
    assert!(matches!(
        resolve_tag(&repo, "-x"),
        Err(GitError::BadName { .. })
    ));
    let e = resolve_tag(dir.path(), "x").unwrap_err();
    assert!(matches!(e, GitError::NotARepository { .. }), "{e}");
    assert!(e.to_string().contains("--repo"), "{e}");
    let e = resolve_tag(&dir.path().join("missing"), "x").unwrap_err();
    assert!(matches!(e, GitError::NotARepository { .. }), "{e}");
    let tree = git(&repo, &["rev-parse", "HEAD^{tree}"]);
    git(&repo, &["tag", "tree-tag", &tree]);
    let e = resolve_tag(&repo, "tree-tag").unwrap_err();
    assert!(
        matches!(e, GitError::NotACommit { ref kind, .. } if kind == "tree"),
        "{e}"
    );

    let names: Vec<String> = list_tags(&repo).unwrap().into_iter().map(|t| t.0).collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"dev_us-east-1/research/1.0".to_string()));
}

#[test]
fn same_tag_twice_is_one_execution() {
    let s = Site::new();
    s.tag(&["-a", "dev_us-east-1/research/1.0", "-m", "release"]);
    let repo = s.repo();
    let repo = repo.to_str().unwrap();
    let first = s.json(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/1.0",
        "--repo",
        repo,
        "--format",
        "json",
    ]);
    assert_eq!(first["status"], "SUCCEEDED");
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(
        id,
        format!("tiny:{}", execution_name("dev_us-east-1/research/1.0"))
    );
    let head = git(&s.repo(), &["rev-parse", "HEAD"]);
    assert_eq!(first["output"]["environment"], "dev");
    assert_eq!(first["output"]["region"], "us-east-1");
    assert_eq!(first["output"]["release"]["commit"], head.as_str());
    assert_eq!(
        first["output"]["release"]["by"],
        "Ann Tagger <ann@example.com>"
    );

    // Again, and with refs/tags/ in front: the same execution, nothing new.
    let second = s.piflow(&[
        "trigger",
        "tag",
        "refs/tags/dev_us-east-1/research/1.0",
        "--repo",
        repo,
    ]);
    assert!(second.status.success(), "{}", stderr(&second));
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("already exists") && text.contains(&id),
        "{text}"
    );

    let execs = s.executions();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(execs[0]["execution"], id.as_str());
    let history = s.json(&["history", &id, "--format", "json"]);
    assert_eq!(
        history
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "ExecutionStarted")
            .count(),
        1
    );
    let started: Vec<Value> = s
        .audit()
        .into_iter()
        .filter(|r| r["action"] == "trigger.tag")
        .collect();
    assert_eq!(started.len(), 1, "one trigger record: {started:?}");
    assert_eq!(started[0]["env"], "dev");
    assert_eq!(started[0]["after"]["annotated"], true);

    // Another tag is another execution.
    s.tag(&["dev_us-east-1/research/1.1"]);
    let other = s.json(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/1.1",
        "--repo",
        repo,
        "--format",
        "json",
    ]);
    assert_ne!(other["id"], id.as_str());
    assert_eq!(s.executions().len(), 2);

    // A tag moved to another commit is refused, naming both commits.
    std::fs::write(s.repo().join("README"), "changed\n").unwrap();
    git(&s.repo(), &["commit", "-q", "-am", "second"]);
    s.tag(&["-f", "dev_us-east-1/research/1.1"]);
    let out = s.piflow(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/1.1",
        "--repo",
        repo,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[tag-moved]") && err.contains(&git(&s.repo(), &["rev-parse", "HEAD"])),
        "{err}"
    );
    assert_eq!(s.executions().len(), 2);
    assert!(
        s.audit()
            .iter()
            .any(|r| r["action"] == "trigger.refused" && r["result"] == "refused: tag-moved")
    );
}

#[test]
fn refused_tags_are_audited() {
    let s = Site::new();
    s.tag(&["nightly-build"]);
    s.tag(&["dev_us-east-1/research/1.x"]);
    let repo = s.repo();
    let repo = repo.to_str().unwrap();

    let out = s.piflow(&["trigger", "tag", "nightly-build", "--repo", repo]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[no-rule]")
            && err.contains("nightly-build")
            && err.contains("<env>_<region>/<team>/<version>"),
        "{err}"
    );

    let out = s.piflow(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/1.x",
        "--repo",
        repo,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "REFUSED");
    assert_eq!(v["code"], "malformed-version");
    assert!(v["reason"].as_str().unwrap().contains("\"1.x\""), "{v}");

    let audit = s.audit();
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|r| r["action"] == "trigger.refused")
        .collect();
    assert_eq!(refused.len(), 2, "{audit:?}");
    let no_rule = refused
        .iter()
        .find(|r| r["target"] == "nightly-build")
        .unwrap();
    assert_eq!(no_rule["env"], "triggers");
    assert_eq!(no_rule["result"], "refused: no-rule");
    assert!(
        no_rule["after"]["reason"]
            .as_str()
            .unwrap()
            .contains("matches no rule")
    );
    assert_eq!(
        no_rule["after"]["commit"].as_str().unwrap(),
        git(&s.repo(), &["rev-parse", "HEAD"])
    );
    let malformed = refused
        .iter()
        .find(|r| r["target"] == "dev_us-east-1/research/1.x")
        .unwrap();
    assert_eq!(malformed["env"], "dev", "the tag's env, as it parses");
    assert_eq!(malformed["result"], "refused: malformed-version");
    assert!(s.executions().is_empty(), "nothing started");
    assert!(s.piflow(&["audit", "verify"]).status.success());

    // A tag that is not there, or a bad config: usage errors, named.
    let out = s.piflow(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/9.9",
        "--repo",
        repo,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("[no-such-tag]"), "{}", stderr(&out));
    std::fs::write(
        s.path().join("bad.yaml"),
        "tags:\n  - pattern: \"<env>\"\n    workflow: tiny\n    extra: 1\n",
    )
    .unwrap();
    let out = s.piflow(&[
        "trigger",
        "tag",
        "nightly-build",
        "--repo",
        repo,
        "--config",
        "bad.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:4:5: tags[0].extra"),
        "{}",
        stderr(&out)
    );

    // An input the workflow's schema refuses is refused and audited too.
    std::fs::create_dir_all(s.path().join("schemas")).unwrap();
    std::fs::write(
        s.path().join("schemas/tiny.input.json"),
        r#"{"type": "object", "required": ["service"]}"#,
    )
    .unwrap();
    s.tag(&["dev_us-east-1/research/2.0"]);
    let out = s.piflow(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/2.0",
        "--repo",
        repo,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[input-invalid]") && stderr(&out).contains("service"),
        "{}",
        stderr(&out)
    );
    assert!(s.executions().is_empty());
}

#[test]
fn watch_triggers_new_tags_once() {
    let s = Site::new();
    s.tag(&["dev_us-east-1/research/1.0"]);
    let repo = s.repo();
    let repo = repo.to_str().unwrap();

    // First watch: the tag that was there is the baseline, not triggered.
    let out = s.piflow(&["watch", "--repo", repo, "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.executions().is_empty());

    s.tag(&["-a", "dev_us-east-1/research/1.1", "-m", "new"]);
    let out = s.piflow(&["watch", "--repo", repo, "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let execs = s.executions();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(
        execs[0]["execution"],
        format!("tiny:{}", execution_name("dev_us-east-1/research/1.1")).as_str()
    );

    // A watch started again (a new process) does not start it again, nor
    // the old one; a new refused tag is refused once.
    s.tag(&["junk"]);
    let out = s.piflow(&["watch", "--repo", repo, "--once"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "junk is refused: {}",
        stderr(&out)
    );
    let out = s.piflow(&["watch", "--repo", repo, "--once"]);
    assert!(out.status.success(), "nothing new: {}", stderr(&out));
    assert_eq!(s.executions().len(), 1);
    let audit = s.audit();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r["action"] == "trigger.refused")
            .count(),
        1
    );

    // --from-start on a repository never watched triggers what it has.
    let other = s.path().join("other");
    make_repo(&other);
    git(&other, &["tag", "dev_eu-west-1/ops/3.0"]);
    let out = s.piflow(&[
        "watch",
        "--repo",
        other.to_str().unwrap(),
        "--once",
        "--from-start",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.executions().len(), 2);
}

fn wait_for_executions(s: &Site, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let execs: Vec<Value> = s
            .executions()
            .into_iter()
            .filter(|e| e["status"] == "SUCCEEDED")
            .collect();
        if execs.len() >= n || Instant::now() > deadline {
            return execs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hooks_trigger_pushed_and_created_tags() {
    let s = Site::new();
    let bare = s.path().join("central.git");
    git(s.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let bare_s = bare.to_str().unwrap();

    // A foreign hook is kept unless --force.
    let hook = bare.join("hooks/post-receive");
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let out = s.piflow(&["hooks", "install", "--repo", bare_s]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    let out = s.piflow(&["hooks", "install", "--repo", bare_s, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = std::fs::read_to_string(&hook).unwrap();
    assert!(installed.contains("piflow-hook") && installed.contains("trigger tag"));
    // Idempotent.
    let out = s.piflow(&["hooks", "install", "--repo", bare_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already installed"));
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), installed);

    // Pushing a new tag starts its execution; pushing a branch does not.
    git(&s.repo(), &["push", "-q", bare_s, "main"]);
    s.tag(&["-a", "dev_us-east-1/research/1.0", "-m", "pushed"]);
    let push = Command::new("git")
        .args([
            "-C",
            s.repo().to_str().unwrap(),
            "push",
            bare_s,
            "dev_us-east-1/research/1.0",
        ])
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", stderr(&push));
    assert!(
        stderr(&push).contains("remote: piflow: tag dev_us-east-1/research/1.0"),
        "{}",
        stderr(&push)
    );
    let execs = wait_for_executions(&s, 1);
    let log = std::fs::read_to_string(bare.join("piflow-hooks.log")).unwrap_or_default();
    assert_eq!(execs.len(), 1, "hook log:\n{log}");
    assert_eq!(
        execs[0]["execution"],
        format!("tiny:{}", execution_name("dev_us-east-1/research/1.0")).as_str()
    );

    // In a work tree: reference-transaction, so a local `git tag` triggers.
    let out = s.piflow(&["hooks", "install", "--repo", s.repo().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.repo().join(".git/hooks/reference-transaction").is_file());
    s.tag(&["dev_us-east-1/research/1.1"]);
    let execs = wait_for_executions(&s, 2);
    let log = std::fs::read_to_string(s.repo().join(".git/piflow-hooks.log")).unwrap_or_default();
    assert_eq!(execs.len(), 2, "hook log:\n{log}");
}

#[test]
fn the_repository_piflow_yaml_is_valid_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("piflow.yaml");
    let c = TriggerConfig::load(&config).unwrap();
    for tag in [
        "dev_us-east-1/research/1.0",
        "prod_global/risk/2.3",
        "qa_eu-west-1/product/1.4.0-rc.1",
    ] {
        let (rule, _) = c.match_tag(tag).unwrap_or_else(|r| panic!("{tag}: {r}"));
        assert_eq!(rule.workflow, "upgrade");
    }

    // Through the binary, on the real upgrade workflow (its schema checks
    // the input the rule builds), with the HappyPath mocks.
    let s = Site::new();
    s.tag(&["-a", "dev_us-east-1/research/1.0", "-m", "release"]);
    let mock = format!(
        "{}#HappyPath",
        root.join("integration/mocks/upgrade.mock.json").display()
    );
    let v = s.json(&[
        "trigger",
        "tag",
        "dev_us-east-1/research/1.0",
        "--repo",
        s.repo().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--mock",
        &mock,
        "--format",
        "json",
    ]);
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(
        v["id"],
        format!("upgrade:{}", execution_name("dev_us-east-1/research/1.0")).as_str()
    );
    let out = &v["output"];
    assert_eq!(out["target"]["environment"], "dev");
    assert_eq!(out["target"]["region"], "us-east-1");
    assert_eq!(out["target"]["team"], "research");
    // The environment's policy and the product came from piflow.yaml.
    assert_eq!(out["release"]["version"], "1.0");
    assert_eq!(out["target"]["cluster"], "product");
    assert_eq!(
        out["policy"]["scan"]["suppressions"][0]["check"],
        "CKV_AWS_118"
    );
    assert_eq!(
        out["released"]["services"]["dashboard"]["after"]["image"],
        "registry.example/product/dashboard:1.0"
    );
    assert_eq!(
        out["release"]["commit"].as_str().unwrap(),
        git(&s.repo(), &["rev-parse", "HEAD"])
    );
}
