//! Git tags as triggers: `piflow trigger tag TAG`, `piflow watch` and
//! `piflow hooks install`. See docs/triggers.md ("Git tags").
//!
//! A tag is resolved in a real repository, then the trigger service
//! (`piflow_triggers::service`) matches it against piflow.yaml's rules,
//! builds and checks the workflow's input, audits it and starts it as a
//! durable execution named after the tag, so the same tag twice is one
//! execution. A tag no rule accepts is refused (exit 2) and the refusal is
//! written to the audit trail. This module parses, prints and exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::run::{print_workflow_error, progress, user};
use super::store_cmds::StoreArg;
use super::tasks::{self, Mocks};
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_store::Store;
use piflow_triggers::config::TriggerConfig;
use piflow_triggers::service::{
    self, Admission, AdmitError, Rules, TagEvent, TagPlan, TagRefusal, TagSource, TagStop,
    watch as watched,
};
use piflow_triggers::tags::{self, list_tags, resolve_tag};

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
/// may be open once per process, and a start opens it again).
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

/// A tag that starts nothing is said on stderr at once.
fn say_refused(r: &TagRefusal) {
    eprintln!("piflow: refused: [{}] {}", r.code(), r.reason);
}

/// …then audited (`audited`: how that went), and said as JSON on stdout
/// with `--format json`: exit 2.
fn refused(r: &TagRefusal, format: OutputFormat, audited: Result<(), String>) -> u8 {
    let env = r.audit_env();
    match audited {
        Ok(()) => tracing::info!(tag = %r.tag, env, code = r.code(), "refusal audited"),
        Err(e) => eprintln!("piflow: warning: the refusal could not be audited: {e}"),
    }
    if format == OutputFormat::Json {
        println!(
            "{}",
            json!({"tag": r.tag, "status": "REFUSED", "code": r.code(), "reason": r.reason, "audit_env": env})
        );
    }
    EXIT_USAGE
}

fn shown_repo(repo: &Path) -> String {
    std::fs::canonicalize(repo)
        .unwrap_or_else(|_| repo.to_path_buf())
        .display()
        .to_string()
}

/// Resolve the tag, then the trigger service plans it (match, input,
/// workflow, checks), admits it (`tag-moved`, the `trigger.tag` record)
/// and starts it. Returns the exit code.
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
    let event = TagEvent {
        info,
        actor: actor.to_string(),
        origin: TagSource::Command {
            repo: shown_repo(&opts.repo),
        },
    };
    let plan = match Rules::on_demand(config).plan_tag(&event) {
        Ok(p) => p,
        Err(TagStop::Refused(r)) => {
            say_refused(&r);
            let audited = with_store(&opts.store, |s| {
                let r = &r;
                async move {
                    service::audit_refusal(s.as_ref(), r)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("[{}] {e}", e.code()))
                }
            });
            return Ok(refused(&r, opts.format, audited));
        }
        Err(TagStop::Workflow(e)) => {
            print_workflow_error(&e);
            return Ok(EXIT_USAGE);
        }
        Err(TagStop::Schema(e)) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mocks = match Mocks::read(opts.mock.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    super::executions::runtime()?.block_on(start(opts, &plan, mocks))
}

async fn start(opts: &TriggerOpts, plan: &TagPlan, mocks: Mocks) -> anyhow::Result<u8> {
    let store = match opts.store.open().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let service = tasks::service(store, mocks);
    match service.admit_tag(plan).await {
        // (A duplicate is a webhook's answer: the command goes on to the
        // runner, which reports the existing execution.)
        Ok(Admission::Start | Admission::Duplicate(_)) => {}
        Err(AdmitError::Refused(r)) => {
            say_refused(&r);
            let audited = service
                .refuse(&r)
                .await
                .map(|_| ())
                .map_err(|e| format!("[{}] {e}", e.code()));
            return Ok(refused(&r, opts.format, audited));
        }
        Err(AdmitError::Lookup(e) | AdmitError::Record(e)) => {
            eprintln!("piflow: error: [{}] {e}", e.code());
            return Ok(EXIT_USAGE);
        }
    }
    let human = opts.format == OutputFormat::Human;
    if human {
        let info = &plan.event.info;
        println!(
            "Tag {} ({}, commit {}, by {} at {}) → rule {} ({}): {} as {}",
            plan.tag(),
            if info.annotated {
                "annotated"
            } else {
                "lightweight"
            },
            info.commit.get(..12).unwrap_or(&info.commit),
            info.tagger(),
            info.date,
            plan.rule + 1,
            plan.pattern,
            plan.workflow.path.display(),
            plan.id
        );
    }
    super::executions::start_and_report(
        service,
        human.then(|| progress(use_color())),
        opts.format,
        false,
        plan.start_request(user(), !opts.no_wait),
    )
    .await
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
        let actor = format!("watch:{}", user());
        let known = match with_store(&opts.store, |s| {
            let (repo, tags, actor) = (&repo, &tags, &actor);
            async move {
                watched::look(s.as_ref(), repo, tags, args.from_start, actor)
                    .await
                    .map_err(|e| format!("[{}] {e}", e.code()))
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
            let code = trigger_tag(opts, tag, &actor)?;
            worst = worst.max(code);
            // Recorded after the trigger: a watch that dies in between
            // triggers the tag again, which finds the same execution.
            let recorded = with_store(&opts.store, |s| {
                let (repo, actor) = (&repo, &actor);
                async move {
                    watched::saw(s.as_ref(), repo, tag, object, code, actor)
                        .await
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
