//! A moto server (the project's AWS for tests, see docs/store.md) shared by
//! the tests of one test binary.
//!
//! - `MOTO_PORT` set (CI starts moto): use the server on 127.0.0.1:$MOTO_PORT.
//! - else `.emu/venv/bin/moto_server` exists: start one on a free port, once
//!   per test binary, with DynamoDB made linearizable (see [`LAUNCH`]); it
//!   stops when the test binary exits (a small shell wrapper kills it when
//!   its stdin, held by this process, closes). CI that starts its own moto
//!   should start it the same way (`python -c "$LAUNCH" -p $MOTO_PORT`).
//! - else `None`, and the test prints "SKIPPED: …".
//!
//! The standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) is set for this process so
//! that `piflow::aws::sdk_config()` reaches moto exactly as it would reach
//! AWS; [`Moto::env_vars`] gives the same variables for child processes.
//! Tests use unique resource names (see [`unique`]) instead of resetting
//! moto, so that they can run in parallel.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    port: u16,
    /// The wrapper around a moto started here, and the pipe whose closing
    /// (at exit) stops it.
    _process: Option<Mutex<(Child, ChildStdin)>>,
}

static MOTO: OnceLock<Option<Moto>> = OnceLock::new();

/// The shared moto server, or `None` (with a visible SKIPPED message) when
/// none is available.
pub fn moto() -> Option<&'static Moto> {
    let m = MOTO.get_or_init(start).as_ref();
    if m.is_none() {
        eprintln!(
            "SKIPPED: moto server not available (run .ci/run, or create .emu/venv: python3 -m venv .emu/venv && .emu/venv/bin/pip install 'moto[server]==5.2.5' boto3; or set MOTO_PORT to a running moto server)"
        );
    }
    m
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

fn start() -> Option<Moto> {
    let moto = match std::env::var("MOTO_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) => {
            if !wait_ready(port, Duration::from_secs(10)) {
                eprintln!("MOTO_PORT={port} is set but no moto server answers on 127.0.0.1:{port}");
                return None;
            }
            Moto {
                port,
                _process: None,
            }
        }
        None => {
            let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".emu/venv/bin");
            if !bin.join("moto_server").is_file() || !bin.join("python").is_file() {
                return None;
            }
            let port = free_port()?;
            // The wrapper starts moto (made linearizable for DynamoDB, see
            // LAUNCH), then waits for its stdin to close (this process
            // exiting) and stops it.
            let mut child = Command::new("sh")
                .arg("-c")
                .arg("\"$0\" -c \"$1\" -H 127.0.0.1 -p \"$2\" >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid")
                .arg(bin.join("python"))
                .arg(LAUNCH)
                .arg(port.to_string())
                .env("MOTO_PORT", port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let stdin = child.stdin.take()?;
            if !wait_ready(port, Duration::from_secs(30)) {
                eprintln!("moto server did not start on 127.0.0.1:{port}");
                drop(stdin);
                let _ = child.wait();
                return None;
            }
            Moto {
                port,
                _process: Some(Mutex::new((child, stdin))),
            }
        }
    };
    for (k, v) in moto.env_vars() {
        // SAFETY: setting the environment is `unsafe` in Rust 2024 because
        // another thread may read it at the same time through libc. This
        // runs once, inside the OnceLock's initialisation, before any test
        // of this binary builds an AWS client; the values never change
        // afterwards, and the Rust side of env access is locked.
        unsafe { std::env::set_var(k, v) };
    }
    Some(moto)
}

/// Starts moto's server (`moto.server.main`) after two patches that make
/// its DynamoDB behave like DynamoDB under concurrent clients:
///
/// 1. DynamoDB requests are served one at a time. Threaded moto applies a
///    `TransactWriteItems` item by item without isolation, and rolls a
///    cancelled one back by restoring a copy of the whole table taken when
///    it started, which erases writes other clients made meanwhile (seen as
///    lost history events when 50 processes share a table).
/// 2. A cancelled transaction is rolled back by restoring the items it
///    touched, instead of deep-copying every table it names on every
///    transaction (which makes each write as slow as the table is big).
///
/// If moto's internals change, the patches are skipped with a warning on
/// stderr and plain moto runs.
pub const LAUNCH: &str = r#"
import copy, sys, threading
from moto.server import main
try:
    import moto.dynamodb.models as ddb
    from moto.dynamodb.models.table import Table
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    LOCK = threading.RLock()
    STATE = threading.local()
    _call = DomainDispatcherApplication.__call__

    def _serialised(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with LOCK:
                return list(_call(self, environ, start_response))
        return _call(self, environ, start_response)

    DomainDispatcherApplication.__call__ = _serialised

    class _Copy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x, memo=None):
            if isinstance(x, Table) and getattr(STATE, "in_tx", False):
                return x
            return copy.deepcopy(x, memo)

    ddb.copy = _Copy()
    _transact = ddb.DynamoDBBackend.transact_write_items

    def _transact_write_items(self, transact_items):
        with LOCK:
            saved = []
            try:
                for item in transact_items:
                    op_type, op = next(iter(item.items()))
                    table = self.get_table(op["TableName"])
                    if op_type == "Put":
                        attrs = op["Item"]
                        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = attrs[table.range_key_attr]
                    else:
                        key = op["Key"]
                    h, r = self.get_keys_value(table, key)
                    saved.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
            except Exception:
                return _transact(self, transact_items)
            STATE.in_tx = True
            try:
                return _transact(self, transact_items)
            except Exception:
                for table, h, r, old in reversed(saved):
                    if r is not None:
                        bucket = table.items[h]
                        if old is None:
                            bucket.pop(r, None)
                            if not bucket:
                                table.items.pop(h, None)
                        else:
                            bucket[r] = old
                    elif old is None:
                        table.items.pop(h, None)
                    else:
                        table.items[h] = old
                raise
            finally:
                STATE.in_tx = False

    ddb.DynamoDBBackend.transact_write_items = _transact_write_items
except Exception as e:
    print("piflow tests: moto's DynamoDB was not patched (%r): plain moto runs" % (e,), file=sys.stderr)
main(sys.argv[1:])
"#;

fn free_port() -> Option<u16> {
    let l = TcpListener::bind("127.0.0.1:0").ok()?;
    l.local_addr().ok().map(|a| a.port())
}

/// Poll `GET /moto-api/` until it answers 200.
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
