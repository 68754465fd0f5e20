//! Time, replaceable: Wait, Retry back-off and timeouts read and sleep on a
//! [`Clock`], so tests and `piflow test` can run hour-long waits in
//! milliseconds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// A source of time that can also sleep.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
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
