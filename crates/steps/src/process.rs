//! Running a local tool (cfn-lint, checkov, tflint, helm) for a built-in
//! step: found in a tools directory or `PATH`, run with a time limit, its
//! output captured. The caller interprets the exit status the way the tool
//! documents it.
//!
//! Where tools are looked for, in order: `PIFLOW_TOOLS_DIR` when set (else
//! `.emu/venv/bin` under the working directory, where
//! `integration/emulator/setup.sh` installs the pinned cfn-lint and
//! checkov), then every directory of `PATH`.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where to look for tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSearch {
    pub dirs: Vec<PathBuf>,
}

impl ToolSearch {
    /// The standard search for a working directory, from this process's
    /// `PIFLOW_TOOLS_DIR` and `PATH`.
    pub fn from_env(workdir: &Path) -> ToolSearch {
        ToolSearch::from_values(
            std::env::var_os("PIFLOW_TOOLS_DIR").as_deref(),
            std::env::var_os("PATH").as_deref(),
            workdir,
        )
    }

    /// The search that `from_env` builds, from given values (testable
    /// without touching the process environment).
    pub fn from_values(tools_dir: Option<&OsStr>, path: Option<&OsStr>, workdir: &Path) -> Self {
        let mut dirs = Vec::new();
        match tools_dir {
            Some(d) if !d.is_empty() => dirs.push(workdir.join(d)),
            _ => dirs.push(workdir.join(".emu/venv/bin")),
        }
        if let Some(p) = path {
            dirs.extend(std::env::split_paths(p).filter(|d| !d.as_os_str().is_empty()));
        }
        ToolSearch { dirs }
    }

    /// Only these directories.
    pub fn only(dirs: Vec<PathBuf>) -> Self {
        ToolSearch { dirs }
    }

    /// The first executable file named `name`.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished (or stopped) tool left.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The exit code; `None` when a signal ended it (or the time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl ToolOutput {
    /// The last lines of stderr (or stdout), for a failure's cause.
    pub fn tail(&self, max: usize) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let t = text.trim();
        if t.len() <= max {
            return t.to_string();
        }
        let mut start = t.len() - max;
        while !t.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &t[start..])
    }
}

/// Why a tool could not be run (its own failures are in its
/// [`ToolOutput`]), each with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started (missing, not executable, bad
    /// working directory).
    #[error("cannot run {program}: {reason}")]
    Start { program: String, reason: String },
    /// Waiting for the running program failed.
    #[error("waiting for {program} failed: {reason}")]
    Wait { program: String, reason: String },
    /// The thread that runs the program failed.
    #[error("the thread running the tool failed: {0}")]
    Thread(String),
}

impl ToolError {
    /// Every code [`ToolError::code`] returns, with its meaning.
    pub const CODES: &[(&str, &str)] = &[
        ("tool-start", "the tool could not be started"),
        ("tool-wait", "waiting for the running tool failed"),
        ("tool-thread", "the thread running the tool failed"),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            ToolError::Start { .. } => "tool-start",
            ToolError::Wait { .. } => "tool-wait",
            ToolError::Thread(_) => "tool-thread",
        }
    }
}

/// Run `program args` in `cwd` with extra `envs`, stopping it after
/// `timeout`. Err: it could not be started.
pub async fn run(
    program: &Path,
    args: Vec<OsString>,
    cwd: &Path,
    envs: Vec<(String, String)>,
    timeout: Duration,
) -> Result<ToolOutput, ToolError> {
    let program = program.to_path_buf();
    let cwd = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || run_blocking(&program, &args, &cwd, &envs, timeout))
        .await
        .map_err(|e| ToolError::Thread(e.to_string()))?
}

fn run_blocking(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<ToolOutput, ToolError> {
    let started = Instant::now();
    use std::os::unix::process::CommandExt;
    // Its own process group, so that a time limit stops the tool's children
    // (checkov runs workers) too.
    let mut child = Command::new(program)
        .process_group(0)
        .args(args)
        .current_dir(cwd)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ToolError::Start {
            program: program.display().to_string(),
            reason: e.to_string(),
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                timed_out = true;
                let group = format!("-{}", child.id());
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ToolError::Wait {
                    program: program.display().to_string(),
                    reason: e.to_string(),
                });
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(ToolOutput {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order() {
        let s = ToolSearch::from_values(
            Some(OsStr::new("/opt/tools")),
            Some(OsStr::new("/usr/bin::/bin")),
            Path::new("/w"),
        );
        assert_eq!(
            s.dirs,
            vec![
                PathBuf::from("/opt/tools"),
                PathBuf::from("/usr/bin"),
                PathBuf::from("/bin")
            ]
        );
        let s = ToolSearch::from_values(None, None, Path::new("/w"));
        assert_eq!(s.dirs, vec![PathBuf::from("/w/.emu/venv/bin")]);
    }

    #[tokio::test]
    async fn exit_codes_output_and_timeout() {
        let sh = Path::new("/bin/sh");
        let o = run(
            sh,
            vec!["-c".into(), "echo out; echo err >&2; exit 6".into()],
            Path::new("/"),
            vec![],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(o.code, Some(6));
        assert_eq!(o.stdout.trim(), "out");
        assert_eq!(o.tail(100), "err");
        let o = run(
            sh,
            vec!["-c".into(), "sleep 5".into()],
            Path::new("/"),
            vec![],
            Duration::from_millis(200),
        )
        .await
        .unwrap();
        assert!(o.timed_out);
        assert!(o.elapsed < Duration::from_secs(4));
        let missing = run(
            Path::new("/nonexistent/tool"),
            vec![],
            Path::new("/"),
            vec![],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(missing.code(), "tool-start");
        assert!(
            missing
                .to_string()
                .starts_with("cannot run /nonexistent/tool: ")
        );
    }
}
