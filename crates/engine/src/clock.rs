//! Time, replaceable: Wait, Retry back-off and timeouts read and sleep on a
//! [`Clock`], so tests and `piflow test` can run hour-long waits in
//! milliseconds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// What a task returns.
pub type TaskFuture = BoxFuture<'static, Result<serde_json::Value, super::Failure>>;

/// A source of time that can also sleep.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Run a step that works in real time (I/O, SDK timeouts). On the wall
    /// clock it just runs.
    fn hold(&self, step: TaskFuture) -> TaskFuture {
        step
    }
}

/// Wall-clock time; sleeping waits for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Virtual time on tokio's paused clock: when every task is waiting, tokio
/// jumps straight to the next timer, so a one-hour Wait completes at once
/// while the history still shows an hour passing. The runtime must be built
/// with `start_paused(true)` (see [`virtual_runtime`]).
#[derive(Debug, Clone)]
pub struct VirtualClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl VirtualClock {
    /// Virtual time starts at `start_wall`. Must be created inside the paused runtime.
    pub fn new(start_wall: DateTime<Utc>) -> Self {
        VirtualClock {
            start_wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        self.start_wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::zero())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// A real step (an AWS call, a linter, the store) runs on a real-time
    /// runtime, and virtual time stands still until it ends: its SDK
    /// timeouts and polling keep real time, and no virtual timer (a Task's
    /// TimeoutSeconds, another branch's Wait) jumps ahead meanwhile. The
    /// paused clock only advances when every task of this runtime waits, so
    /// this one stays ready, checking every millisecond.
    fn hold(&self, step: TaskFuture) -> TaskFuture {
        Box::pin(async move {
            let rt = match real_time_runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    return Err(super::Failure::new(
                        "States.Runtime",
                        format!("cannot start the runtime for real-time steps: {e}"),
                    ));
                }
            };
            let mut handle = rt.spawn(step);
            loop {
                tokio::select! {
                    biased;
                    r = &mut handle => {
                        return r.unwrap_or_else(|e| {
                            Err(super::Failure::new(
                                "States.Runtime",
                                format!("the step stopped unexpectedly: {e}"),
                            ))
                        });
                    }
                    _ = tokio::task::yield_now() => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        })
    }
}

/// The multi-threaded, real-time runtime on which real steps run when the
/// engine runs on a virtual clock (created on first use).
fn real_time_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("piflow-real-time")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A single-threaded tokio runtime whose clock starts paused (for [`VirtualClock`]).
pub fn virtual_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-time step on a virtual clock: it may do I/O and sleep in
    /// real time, and virtual time does not move meanwhile.
    #[test]
    fn a_real_step_runs_in_real_time_while_virtual_time_stands_still() {
        let rt = virtual_runtime().unwrap();
        let (elapsed_virtual, out) = rt.block_on(async {
            let clock = VirtualClock::new(Utc::now());
            let before = clock.now();
            let step: TaskFuture = Box::pin(async {
                // I/O that needs a runtime with I/O enabled, and a real sleep.
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| super::super::Failure::new("Io", e.to_string()))?;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(serde_json::json!(l.local_addr().is_ok()))
            });
            let timeout = clock.sleep(Duration::from_secs(3600));
            let out = tokio::select! {
                r = clock.hold(step) => Some(r),
                _ = timeout => None,
            };
            (clock.now() - before, out)
        });
        assert_eq!(
            out,
            Some(Ok(serde_json::json!(true))),
            "the hour-long virtual timeout must not fire"
        );
        assert!(elapsed_virtual < chrono::Duration::seconds(1));
    }

    #[test]
    fn virtual_clock_jumps_over_long_sleeps() {
        let rt = virtual_runtime().unwrap();
        let started = std::time::Instant::now();
        let (before, after) = rt.block_on(async {
            let clock = VirtualClock::new(Utc::now());
            let before = clock.now();
            clock.sleep(Duration::from_secs(3600)).await;
            (before, clock.now())
        });
        assert!(after - before >= chrono::Duration::seconds(3600));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
