//! A moto server (the project's AWS for tests, see docs/store.md) shared by
//! the tests of one test binary.
//!
//! - `MOTO_PORT` set (.ci/run starts moto): use the server on
//!   127.0.0.1:$MOTO_PORT.
//! - else start one on a free port, once per test binary, through
//!   `integration/emulator/moto_server.py` (moto with DynamoDB made
//!   linearizable; the script says why) with `.emu/venv/bin/python`; it
//!   stops when the test binary exits (a small shell wrapper kills it when
//!   its stdin, held by this process, closes). When `.emu/venv` has no moto
//!   yet and `python3` exists, `integration/emulator/setup.sh` makes it
//!   first: once, even when several test binaries start at the same time
//!   (they take turns on the lock file `.emu/setup.lock`), saying so on
//!   stderr, with pip's output in `.emu/setup.log`.
//! - else (no python3, or the setup failed, e.g. without network) `None`,
//!   and the test prints "SKIPPED: moto server not available: REASON". A
//!   failed setup is not tried again for ten minutes (`.emu/setup.failed`);
//!   run `integration/emulator/setup.sh` to try at once.
//!
//! The standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) is set for this process so
//! that `piflow_aws_config::sdk_config()` reaches moto exactly as it would reach
//! AWS; [`Moto::env_vars`] gives the same variables for child processes.
//! Tests use unique resource names (see [`unique`]) instead of resetting
//! moto, so that they can run in parallel.
//!
//! A test whose load would hold up the others' requests (moto serves
//! DynamoDB requests one at a time) starts a server of its own with
//! [`own`] (the same script and venv, whether or not `MOTO_PORT` is set),
//! stopped when the test drops it; it passes [`Moto::env_vars`] to its
//! child processes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// A running moto server.
pub struct Moto {
    port: u16,
    /// The wrapper around a moto started here, and the pipe whose closing
    /// (when dropped, or at exit) stops it.
    _process: Option<Mutex<(Child, ChildStdin)>>,
}

impl Drop for Moto {
    /// Close the wrapper's stdin (it stops moto) and reap it.
    fn drop(&mut self) {
        if let Some(process) = self._process.take() {
            let (mut child, stdin) = process.into_inner().unwrap_or_else(|p| p.into_inner());
            drop(stdin);
            let _ = child.wait();
        }
    }
}

static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

/// The shared moto server, or `None` (with a visible SKIPPED message naming
/// the reason) when none is available.
pub fn moto() -> Option<&'static Moto> {
    match MOTO.get_or_init(start) {
        Ok(m) => Some(m),
        Err(reason) => {
            eprintln!(
                "SKIPPED: moto server not available: {reason} (make .emu/venv with integration/emulator/setup.sh, or run .ci/run, or set MOTO_PORT to a moto server started with integration/emulator/moto_server.py)"
            );
            None
        }
    }
}

impl Moto {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS environment that points an SDK (or a piflow child process)
    /// at this server.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("MOTO_PORT".into(), self.port.to_string()),
        ]
    }
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The launcher script (moto's server with the DynamoDB patches).
pub fn launcher() -> PathBuf {
    root().join("integration/emulator/moto_server.py")
}

/// A line on stderr that the test harness does not capture (a setup that
/// takes half a minute should say so while it runs).
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "moto: {message}");
}

fn start() -> Result<Moto, String> {
    let moto = match std::env::var("MOTO_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) => {
            if !wait_ready(port, Duration::from_secs(10)) {
                return Err(format!(
                    "MOTO_PORT={port} is set but no moto server answers on 127.0.0.1:{port}"
                ));
            }
            Moto {
                port,
                _process: None,
            }
        }
        None => launch()?,
    };
    // Step Functions executions really run, for every test of every binary
    // from the start: moto keeps its state machines in another backend once
    // this is switched on, so switching it while a test deploys (as a test
    // that needed it once did) made that test's machine vanish.
    enable_sfn_execution(moto.port)?;
    for (k, v) in moto.env_vars() {
        // SAFETY: setting the environment is `unsafe` in Rust 2024 because
        // another thread may read it at the same time through libc. This
        // runs once, inside the OnceLock's initialisation, before any test
        // of this binary builds an AWS client; the values never change
        // afterwards, and the Rust side of env access is locked.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(k, v)
        };
    }
    Ok(moto)
}

/// A moto server of one test's own, not shared with the other tests of
/// the binary (even when `MOTO_PORT` names one), and stopped when dropped:
/// for a test whose load would hold up every other test's requests (moto
/// serves DynamoDB requests one at a time, see
/// integration/emulator/moto_server.py). `None`, with the reason on
/// stderr, when none can be started; the test then uses [`moto`].
pub fn own() -> Option<Moto> {
    match launch() {
        Ok(m) => Some(m),
        Err(reason) => {
            say(&format!("no moto server of the test's own: {reason}"));
            None
        }
    }
}

/// Start a moto server on a free port, through `moto_server.py`; it stops
/// when the returned `Moto` is dropped (or this process exits).
fn launch() -> Result<Moto, String> {
    let script = launcher();
    if !script.is_file() {
        return Err(format!("{} is missing", script.display()));
    }
    let python = venv_python()?;
    let port = free_port().ok_or("no free port on 127.0.0.1")?;
    // The wrapper starts moto, then waits for its stdin to close (the
    // `Moto` dropped, or this process exiting) and stops it.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" \"$1\" -H 127.0.0.1 -p \"$2\" >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid; wait $pid")
        .arg(&python)
        .arg(&script)
        .arg(port.to_string())
        .env("MOTO_PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh to start moto: {e}"))?;
    let stdin = child
        .stdin
        .take()
        .ok_or("no stdin pipe to the moto wrapper")?;
    if !wait_ready(port, Duration::from_secs(30)) {
        drop(stdin);
        let _ = child.wait();
        return Err(format!(
            "moto server did not start on 127.0.0.1:{port} (try: {} {} -p {port})",
            python.display(),
            script.display()
        ));
    }
    Ok(Moto {
        port,
        _process: Some(Mutex::new((child, stdin))),
    })
}

/// `.emu/venv/bin/python` once the venv has moto's server, made by
/// `integration/emulator/setup.sh` if need be (once across concurrently
/// running test binaries: they take turns on `.emu/setup.lock`).
fn venv_python() -> Result<PathBuf, String> {
    let root = root();
    let emu = root.join(".emu");
    let bin = emu.join("venv/bin");
    let python = bin.join("python");
    let ready = || python.is_file() && bin.join("moto_server").is_file();
    if ready() {
        return Ok(python);
    }
    if !Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Err(".emu/venv has no moto and python3 is not installed to make it".into());
    }
    std::fs::create_dir_all(&emu).map_err(|e| format!("cannot create {}: {e}", emu.display()))?;
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(emu.join("setup.lock"))
        .map_err(|e| format!("cannot open .emu/setup.lock: {e}"))?;
    if lock.try_lock().is_err() {
        say("waiting for another test binary that is making .emu/venv");
        lock.lock()
            .map_err(|e| format!("cannot lock .emu/setup.lock: {e}"))?;
    }
    // (Released when `lock` is dropped.)
    if ready() {
        return Ok(python);
    }
    let failed = emu.join("setup.failed");
    if let Some(reason) = recent_failure(&failed) {
        return Err(format!(
            "{reason} (integration/emulator/setup.sh failed less than ten minutes ago; run it again to retry at once)"
        ));
    }
    let script = root.join("integration/emulator/setup.sh");
    let log_path = emu.join("setup.log");
    say(&format!(
        ".emu/venv has no moto: running {} once for every test binary (about 30 s; pip's output in {})",
        script.display(),
        log_path.display()
    ));
    let started = Instant::now();
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
    let status = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status();
    let ok = status.as_ref().is_ok_and(|s| s.success());
    if ok && ready() {
        let _ = std::fs::remove_file(&failed);
        say(&format!("made .emu/venv in {:.0?}", started.elapsed()));
        return Ok(python);
    }
    let last = std::fs::read_to_string(&log_path)
        .ok()
        .and_then(|l| {
            l.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let reason = match status {
        Err(e) => format!("cannot run bash {}: {e}", script.display()),
        Ok(_) => format!(
            "integration/emulator/setup.sh could not make .emu/venv: {last} (see .emu/setup.log)"
        ),
    };
    say(&reason);
    let _ = std::fs::write(&failed, &reason);
    Err(reason)
}

/// The reason a setup failed, if it failed less than ten minutes ago.
fn recent_failure(marker: &Path) -> Option<String> {
    let modified = std::fs::metadata(marker).ok()?.modified().ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    if age > Duration::from_secs(600) {
        return None;
    }
    std::fs::read_to_string(marker).ok()
}

fn free_port() -> Option<u16> {
    let l = TcpListener::bind("127.0.0.1:0").ok()?;
    l.local_addr().ok().map(|a| a.port())
}

/// Poll `GET /moto-api/` until it answers 200.
/// `POST /moto-api/config {"stepfunctions":{"execute_state_machine":true}}`.
fn enable_sfn_execution(port: u16) -> Result<(), String> {
    let body = r#"{"stepfunctions":{"execute_state_machine":true}}"#;
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("moto on port {port}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "POST /moto-api/config HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("moto config: {e}"))?;
    // The status line is enough (moto's server may keep the connection).
    let mut head = [0u8; 12];
    let _ = s.read_exact(&mut head);
    let status = String::from_utf8_lossy(&head).to_string();
    if status.starts_with("HTTP/1.1 2") || status.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(format!("moto refused POST /moto-api/config: {status:?}"))
    }
}

fn wait_ready(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if answers(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/") && head.ends_with(b"200")
}
