//! Git tags as triggers: `piflow trigger tag TAG`, `piflow watch` and
//! `piflow hooks install`. See docs/triggers.md ("Git tags").
//!
//! A tag is resolved in a real repository, matched against piflow.yaml's
//! rules, turned into the workflow's input, checked against the workflow's
//! input schema and started as a durable execution named after the tag, so
//! the same tag twice is one execution. A tag no rule accepts is refused
//! (exit 2) and the refusal is written to the audit trail.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::files::read_text;
use super::run::{load_workflow, progress, resolve_target, task_registry, user, workflow_name};
use super::store_cmds::StoreArg;
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_store::{AuditEntry, Store};
use piflow_triggers::config::{TagRule, TagVars, TriggerConfig};
use piflow_triggers::tags::{self, TagInfo, execution_name, list_tags, resolve_tag};

/// The audit environment of refusals whose tag names no environment, and
/// of what `watch` remembers.
pub const TRIGGERS_ENV: &str = "triggers";

/// The first line a piflow hook carries after `#!/bin/sh`.
const HOOK_MARKER: &str = "# piflow-hook:";

#[derive(clap::Subcommand, Debug)]
pub enum TriggerCmd {
    /// Start the workflow that piflow.yaml maps a git tag to; the execution
    /// is named after the tag, so the same tag twice starts one execution.
    Tag(TagArgs),
}

#[derive(clap::Subcommand, Debug)]
pub enum HooksCmd {
    /// Write the git hook that runs `piflow trigger tag` for each new tag:
    /// post-receive in a bare repository, reference-transaction otherwise.
    Install(HooksInstallArgs),
}

/// What `trigger tag` and `watch` share.
#[derive(clap::Args, Debug, Clone)]
pub struct TriggerOpts {
    /// The git repository: a work tree or a bare repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The rules (default: piflow.yaml in the working directory, else the
    /// built-in rule <env>_<region>/<team>/<version> → upgrade).
    #[arg(long, env = "PIFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Mocked task responses (rehearsals and tests), as for `piflow run`.
    #[arg(long)]
    mock: Option<String>,
    /// Refuse at once, naming the holder, when the environment is leased.
    #[arg(long)]
    no_wait: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The tag's name, e.g. dev_us-east-1/research/1.0 (refs/tags/ may be omitted).
    tag: String,
    #[command(flatten)]
    opts: TriggerOpts,
}

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Seconds between two looks at the repository's tags.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,
    /// Look once, trigger what is new, and exit.
    #[arg(long)]
    once: bool,
    /// On the first watch of a repository, trigger the tags it already has
    /// (default: only tags created after the first watch).
    #[arg(long)]
    from_start: bool,
    #[command(flatten)]
    opts: TriggerOpts,
}

#[derive(clap::Args, Debug)]
pub struct HooksInstallArgs {
    /// The git repository: a work tree or a bare repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The rules the hook passes to `piflow trigger tag` (default:
    /// piflow.yaml in the working directory, if there is one).
    #[arg(long, env = "PIFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Replace a hook that piflow did not write.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// `piflow trigger …`.
pub fn trigger(cmd: TriggerCmd) -> anyhow::Result<u8> {
    match cmd {
        TriggerCmd::Tag(a) => {
            let tag = a
                .tag
                .strip_prefix("refs/tags/")
                .unwrap_or(&a.tag)
                .to_string();
            trigger_tag(&a.opts, &tag, &format!("cli:{}", user()))
        }
    }
}

/// `piflow hooks …`.
pub fn hooks(cmd: HooksCmd) -> anyhow::Result<u8> {
    match cmd {
        HooksCmd::Install(a) => hooks_install(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Run `f` on the store (opened for this call only: the embedded store
/// may be open once per process, and `run_durable` opens it again).
fn with_store<T, F, Fut>(store: &StoreArg, f: F) -> Result<T, String>
where
    F: FnOnce(std::sync::Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let s = store.open().await?;
        f(s).await
    })
}

fn audit(store: &StoreArg, entry: AuditEntry) -> Result<(), String> {
    with_store(store, |s| async move {
        s.append_audit(entry)
            .await
            .map(|_| ())
            .map_err(|e| format!("[{}] {e}", e.code()))
    })
}

/// A tag that starts nothing: said on stderr (and as JSON on stdout with
/// `--format json`), written to the audit trail, exit 2.
struct Refused<'a> {
    opts: &'a TriggerOpts,
    tag: &'a str,
    info: &'a TagInfo,
    actor: &'a str,
    config: &'a TriggerConfig,
}

impl Refused<'_> {
    fn refuse(&self, env: Option<&str>, code: &str, reason: &str) -> u8 {
        let env = env.unwrap_or(TRIGGERS_ENV);
        eprintln!("piflow: refused: [{code}] {reason}");
        let entry = AuditEntry {
            env: env.to_string(),
            actor: self.actor.to_string(),
            action: "trigger.refused".into(),
            target: self.tag.to_string(),
            before: Value::Null,
            after: json!({
                "reason": reason,
                "code": code,
                "repo": shown_repo(&self.opts.repo),
                "commit": self.info.commit,
                "config": self.config.shown(),
            }),
            result: format!("refused: {code}"),
            execution: None,
            at: chrono::Utc::now(),
            token: None,
        };
        match audit(&self.opts.store, entry) {
            Ok(()) => tracing::info!(tag = %self.tag, env, code, "refusal audited"),
            Err(e) => eprintln!("piflow: warning: the refusal could not be audited: {e}"),
        }
        if self.opts.format == OutputFormat::Json {
            println!(
                "{}",
                json!({"tag": self.tag, "status": "REFUSED", "code": code, "reason": reason, "audit_env": env})
            );
        }
        EXIT_USAGE
    }
}

fn shown_repo(repo: &Path) -> String {
    std::fs::canonicalize(repo)
        .unwrap_or_else(|_| repo.to_path_buf())
        .display()
        .to_string()
}

/// Find the rule's workflow: a path relative to piflow.yaml, a name in
/// `workflows/` beside piflow.yaml, or a name in `./workflows/`.
pub(super) fn resolve_workflow(base: &Path, workflow: &str) -> Option<PathBuf> {
    let direct = base.join(workflow);
    if direct.is_file() {
        return Some(direct);
    }
    for ext in ["asl.yaml", "asl.yml", "asl.json", "yaml", "yml", "json"] {
        let c = base.join("workflows").join(format!("{workflow}.{ext}"));
        if c.is_file() {
            return Some(c);
        }
    }
    resolve_target(workflow)
}

/// Resolve, match, build the input, check it, start. Returns the exit code.
pub fn trigger_tag(opts: &TriggerOpts, tag: &str, actor: &str) -> anyhow::Result<u8> {
    let config = match TriggerConfig::find(opts.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piflow: error: [config-invalid] {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let info = match resolve_tag(&opts.repo, tag) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("piflow: error: [{}] {e}", e.code());
            return Ok(EXIT_USAGE);
        }
    };
    let refused = Refused {
        opts,
        tag,
        info: &info,
        actor,
        config: &config,
    };
    let (rule, fields) = match config.match_tag(tag) {
        Ok(m) => m,
        Err(r) => return Ok(refused.refuse(r.env.as_deref(), r.code, &r.reason)),
    };
    let env = fields.env.clone();
    let vars = TagVars::new(fields, &info);
    let input = match rule.input(&vars) {
        Ok(i) => i,
        Err(e) => {
            let reason = format!("rule {} of {}: {e}", rule.index + 1, config.shown());
            return Ok(refused.refuse(env.as_deref(), "input-invalid", &reason));
        }
    };
    start(opts, &config, rule, &info, env, input, &refused)
}

fn start(
    opts: &TriggerOpts,
    config: &TriggerConfig,
    rule: &TagRule,
    info: &TagInfo,
    env: Option<String>,
    input: Value,
    refused: &Refused<'_>,
) -> anyhow::Result<u8> {
    let tag = info.name.as_str();
    let base = config.base_dir();
    let Some(path) = resolve_workflow(&base, &rule.workflow) else {
        let looked = if rule.workflow.contains('/') || rule.workflow.contains('.') {
            format!("no file {}", base.join(&rule.workflow).display())
        } else {
            format!(
                "no workflows/{}.asl.yaml (or .asl.yml, .asl.json, .yaml, .yml, .json) in {} or in the working directory",
                rule.workflow,
                base.display()
            )
        };
        let reason = format!(
            "rule {} of {} names workflow {:?}: {looked}",
            rule.index + 1,
            config.shown(),
            rule.workflow,
        );
        return Ok(refused.refuse(env.as_deref(), "no-workflow", &reason));
    };
    let (path, _machine) = match load_workflow(&path.display().to_string()) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let name = workflow_name(&path);
    let limit = piflow_engine::EngineOptions::default().max_payload_bytes;
    let size = serde_json::to_vec(&input).map(|v| v.len()).unwrap_or(0);
    if size > limit {
        let reason =
            format!("the input is {size} bytes; an execution's input may be at most {limit} bytes");
        return Ok(refused.refuse(env.as_deref(), "input-invalid", &reason));
    }
    if let Some(schema) = super::run::input_schema(&path, Some(&base), &name) {
        match super::run::schema_problems(&schema, &input) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => {
                let reason = format!(
                    "the input rule {} of {} builds for tag {tag:?} does not match {}: {}",
                    rule.index + 1,
                    config.shown(),
                    schema.display(),
                    p.join("; ")
                );
                return Ok(refused.refuse(env.as_deref(), "input-invalid", &reason));
            }
            Err(e) => {
                eprintln!("piflow: error: {e}");
                return Ok(EXIT_USAGE);
            }
        }
    }
    let tasks = match task_registry(opts.mock.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let definition = match read_text(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let exec_name = execution_name(tag);
    let id = piflow_runner::execution_id(&name, &exec_name);
    let lease_env = env
        .clone()
        .or_else(|| piflow_triggers::events::input_environment(&input));
    let audit_env = lease_env
        .clone()
        .unwrap_or_else(|| TRIGGERS_ENV.to_string());
    let entry = AuditEntry {
        env: audit_env,
        actor: refused.actor.to_string(),
        action: "trigger.tag".into(),
        target: tag.to_string(),
        before: Value::Null,
        after: json!({
            "workflow": name,
            "execution": id,
            "rule": rule.index + 1,
            "pattern": rule.pattern.as_str(),
            "repo": shown_repo(&opts.repo),
            "commit": info.commit,
            "annotated": info.annotated,
            "tagger": info.tagger(),
            "date": info.date,
        }),
        result: "accepted".into(),
        execution: Some(id.clone()),
        at: chrono::Utc::now(),
        // The same tag twice is one execution, and one record.
        token: Some(format!("trigger.tag:{id}")),
    };
    // A tag moved to another commit since it was triggered builds another
    // input under the same name: refuse it here, saying so.
    let existing = with_store(&opts.store, |s| {
        let id = id.clone();
        async move {
            s.execution(&id)
                .await
                .map_err(|e| format!("[{}] {e}", e.code()))
        }
    });
    match existing {
        Ok(Some(r)) if r.input != input => {
            let before = r
                .input
                .pointer("/release/commit")
                .and_then(Value::as_str)
                .map(|c| format!(" (its input then named commit {c})"))
                .unwrap_or_default();
            let reason = format!(
                "tag {tag:?} started execution {id} on {} with another input{before}; it now points at commit {}: a tag starts one execution, so tag a new version instead of moving it",
                r.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                info.commit
            );
            return Ok(refused.refuse(env.as_deref(), "tag-moved", &reason));
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    }
    if let Err(e) = audit(&opts.store, entry) {
        eprintln!("piflow: error: {e}");
        return Ok(EXIT_USAGE);
    }
    let human = opts.format == OutputFormat::Human;
    if human {
        println!(
            "Tag {tag} ({}, commit {}, by {} at {}) → rule {} ({}): {} as {id}",
            if info.annotated {
                "annotated"
            } else {
                "lightweight"
            },
            info.commit.get(..12).unwrap_or(&info.commit),
            info.tagger(),
            info.date,
            rule.index + 1,
            rule.pattern.as_str(),
            path.display()
        );
    }
    let start = piflow_runner::StartRequest {
        workflow: name,
        definition,
        source_commit: super::run::source_commit(&path),
        author: user(),
        name: Some(exec_name),
        input,
        trigger: format!("git-tag:{tag}"),
        env: lease_env,
        wait: !opts.no_wait,
    };
    super::executions::run_durable(
        &opts.store,
        tasks,
        human.then(|| progress(use_color())),
        opts.format,
        false,
        start,
    )
}

/// What `watch` knows of a repository: whether it looked before, and the
/// tags it has seen.
struct Seen {
    started: bool,
    tags: HashSet<String>,
}

async fn seen(store: &dyn Store, repo: &str) -> Result<Seen, String> {
    let records = store
        .audit(Some(TRIGGERS_ENV), None)
        .await
        .map_err(|e| format!("[{}] {e}", e.code()))?;
    let mut out = Seen {
        started: false,
        tags: HashSet::new(),
    };
    for r in records {
        let e = &r.entry;
        if e.after.get("repo").and_then(Value::as_str) != Some(repo) {
            continue;
        }
        match e.action.as_str() {
            "watch.baseline" => {
                out.started = true;
                for t in e
                    .after
                    .get("tags")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = t.as_str() {
                        out.tags.insert(t.to_string());
                    }
                }
            }
            "watch.seen" => {
                out.tags.insert(e.target.clone());
            }
            _ => {}
        }
    }
    Ok(out)
}

fn watch_record(action: &str, target: &str, after: Value, result: &str) -> AuditEntry {
    AuditEntry {
        env: TRIGGERS_ENV.into(),
        actor: format!("watch:{}", user()),
        action: action.into(),
        target: target.into(),
        before: Value::Null,
        after,
        result: result.into(),
        execution: None,
        at: chrono::Utc::now(),
        token: None,
    }
}

/// `piflow watch`: look at the repository's tags every `--interval`
/// seconds and trigger each new one once. What it has seen is kept in the
/// store (audit environment `triggers`), so a restarted watch does not
/// start old tags again.
pub fn watch(args: WatchArgs) -> anyhow::Result<u8> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        eprintln!("piflow: error: --interval must be a positive number of seconds");
        return Ok(EXIT_USAGE);
    }
    let opts = &args.opts;
    let repo = shown_repo(&opts.repo);
    if let Err(e) = TriggerConfig::find(opts.config.as_deref()) {
        eprintln!("piflow: error: [config-invalid] {e}");
        return Ok(EXIT_USAGE);
    }
    let mut worst = 0u8;
    let mut first_pass = true;
    loop {
        let tags = match list_tags(&opts.repo) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("piflow: error: [{}] {e}", e.code());
                return Ok(EXIT_USAGE);
            }
        };
        let known = match with_store(&opts.store, |s| {
            let repo = repo.clone();
            let tags = tags.clone();
            let from_start = args.from_start;
            async move {
                let mut known = seen(s.as_ref(), &repo).await?;
                if !known.started {
                    // The first watch of this repository.
                    let baseline: Vec<String> = if from_start {
                        Vec::new()
                    } else {
                        tags.iter().map(|(n, _)| n.clone()).collect()
                    };
                    s.append_audit(watch_record(
                        "watch.baseline",
                        &repo,
                        json!({"repo": repo, "tags": baseline, "from_start": from_start}),
                        "ok",
                    ))
                    .await
                    .map_err(|e| format!("[{}] {e}", e.code()))?;
                    known.tags.extend(baseline);
                    known.started = true;
                }
                Ok(known)
            }
        }) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("piflow: error: {e}");
                return Ok(EXIT_USAGE);
            }
        };
        let new: Vec<&(String, String)> = tags
            .iter()
            .filter(|(n, _)| !known.tags.contains(n))
            .collect();
        if opts.format == OutputFormat::Human && (first_pass || !new.is_empty()) {
            eprintln!(
                "piflow: watch {repo}: {} tag(s), {} new",
                tags.len(),
                new.len()
            );
        }
        for (tag, object) in new {
            let code = trigger_tag(opts, tag, &format!("watch:{}", user()))?;
            worst = worst.max(code);
            // Recorded after the trigger: a watch that dies in between
            // triggers the tag again, which finds the same execution.
            let recorded = with_store(&opts.store, |s| {
                let entry = watch_record(
                    "watch.seen",
                    tag,
                    json!({"repo": repo, "object": object, "exit": code}),
                    if code == 0 { "ok" } else { "failed" },
                );
                async move {
                    s.append_audit(entry)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("[{}] {e}", e.code()))
                }
            });
            if let Err(e) = recorded {
                eprintln!("piflow: error: {e}");
                return Ok(EXIT_USAGE);
            }
        }
        first_pass = false;
        if args.once {
            return Ok(if worst == 0 { 0 } else { worst.min(EXIT_USAGE) });
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

/// Single-quote a word for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// `piflow hooks install`: write the hook (idempotent; a hook piflow did
/// not write is kept unless `--force`).
pub fn hooks_install(args: HooksInstallArgs) -> anyhow::Result<u8> {
    let fail = |e: tags::GitError| {
        eprintln!("piflow: error: [{}] {e}", e.code());
        Ok(EXIT_USAGE)
    };
    let bare = match tags::git(&args.repo, &["rev-parse", "--is-bare-repository"]) {
        Ok(b) => b.trim() == "true",
        Err(e) => return fail(e),
    };
    let git_dir = match tags::git(&args.repo, &["rev-parse", "--absolute-git-dir"]) {
        Ok(d) => PathBuf::from(d.trim()),
        Err(e) => return fail(e),
    };
    let hooks_dir = match tags::git(&args.repo, &["rev-parse", "--git-path", "hooks"]) {
        Ok(d) => {
            let d = PathBuf::from(d.trim());
            if d.is_absolute() {
                d
            } else {
                args.repo.join(d)
            }
        }
        Err(e) => return fail(e),
    };
    let config = match &args.config {
        Some(c) => {
            if let Err(e) = TriggerConfig::load(c) {
                eprintln!("piflow: error: [config-invalid] {e}");
                return Ok(EXIT_USAGE);
            }
            Some(absolute(c))
        }
        None => Path::new(piflow_triggers::config::CONFIG_FILE)
            .is_file()
            .then(|| absolute(Path::new(piflow_triggers::config::CONFIG_FILE))),
    };
    let exe = std::env::current_exe().context("finding the piflow executable")?;
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let hook_name = if bare {
        "post-receive"
    } else {
        "reference-transaction"
    };
    let log = git_dir.join("piflow-hooks.log");
    let mut command = format!(
        "{} trigger tag \"$tag\" --repo {}",
        sh_quote(&exe.display().to_string()),
        sh_quote(&git_dir.display().to_string())
    );
    if let Some(c) = &config {
        command.push_str(&format!(" --config {}", sh_quote(&c.display().to_string())));
    }
    if let Some(s) = args.store.spec() {
        command.push_str(&format!(" --store {}", sh_quote(s)));
    }
    let home = std::env::var_os("PIFLOW_HOME")
        .map(|h| {
            format!(
                "PIFLOW_HOME={}; export PIFLOW_HOME\n",
                sh_quote(&absolute(Path::new(&h)).display().to_string())
            )
        })
        .unwrap_or_default();
    let only_committed = if bare {
        String::new()
    } else {
        "# Called for each ref transaction; act once its refs are written.\n[ \"$1\" = committed ] || exit 0\n".to_string()
    };
    let script = format!(
        r#"#!/bin/sh
{HOOK_MARKER} written by `piflow hooks install`; starts `piflow trigger tag` for each new tag.
# Run `piflow hooks install` again to update it; delete this file to stop.
{only_committed}unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_QUARANTINE_PATH GIT_PREFIX
{home}cd {cwd} || exit 0
while read -r old new ref; do
  case "$ref" in refs/tags/*) ;; *) continue ;; esac
  case "$new" in *[!0]*) ;; *) continue ;; esac  # a deleted tag
  case "$old" in *[!0]*) continue ;; esac        # a moved tag: not a new one
  tag=${{ref#refs/tags/}}
  echo "piflow: tag $tag: starting its workflow (log: {log_shown})" >&2
  nohup {command} >>{log} 2>&1 </dev/null &
done
exit 0
"#,
        cwd = sh_quote(&cwd.display().to_string()),
        log = sh_quote(&log.display().to_string()),
        log_shown = log.display(),
    );
    let path = hooks_dir.join(hook_name);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == script => {
            println!("{} is already installed", path.display());
            return Ok(0);
        }
        Ok(existing) if !existing.contains(HOOK_MARKER) && !args.force => {
            eprintln!(
                "piflow: error: [hook-exists] {} exists and was not written by piflow; add its lines to piflow's hook by hand, or pass --force to replace it",
                path.display()
            );
            return Ok(EXIT_FAILED);
        }
        _ => {}
    }
    std::fs::create_dir_all(&hooks_dir)
        .with_context(|| format!("creating {}", hooks_dir.display()))?;
    std::fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    println!(
        "installed {} ({}): new tags start `piflow trigger tag`; its output goes to {}",
        path.display(),
        if bare {
            "a bare repository: runs after each push"
        } else {
            "runs after each ref update: local `git tag` and pushes"
        },
        log.display()
    );
    Ok(0)
}
