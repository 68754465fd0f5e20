//! A `piflow serve` process for the tests that talk to it over HTTP: on
//! a free port, with its own store in the test's directory, secrets from
//! the test only (none inherited from the environment), killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The read key every server is started with (`PIFLOW_READ_KEY`).
pub const READ_KEY: &str = "read-9876543210";

pub struct Server {
    pub child: Child,
    pub url: String,
    _stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str], secrets: &[(&str, &str)]) -> Server {
        let log = dir.join(format!("serve-{}.log", uuid_like()));
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("piflow"));
        cmd.current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        if !extra.contains(&"--store") {
            cmd.arg("--store").arg(dir.join("store.redb"));
        }
        cmd.args(extra)
            .env_remove("PIFLOW_API_KEY")
            .env("PIFLOW_READ_KEY", READ_KEY)
            .env_remove("PIFLOW_API_ACCESS_KEY_ID")
            .env_remove("PIFLOW_API_SECRET_ACCESS_KEY")
            .env_remove("PIFLOW_HMAC_SECRET")
            .env_remove("PIFLOW_GITHUB_SECRET")
            .env_remove("PIFLOW_GITLAB_TOKEN")
            .env_remove("PIFLOW_CONFIG")
            .env_remove("PIFLOW_STORE")
            .env("PIFLOW_LEASE_TTL", "2")
            .env("PIFLOW_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in secrets {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("piflow serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("piflow serve: listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            child,
            url,
            _stdout: stdout,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit code.
    pub fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code().unwrap_or(-1), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
