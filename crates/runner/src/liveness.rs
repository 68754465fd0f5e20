//! Who holds a lease, and whether that process still lives.
//!
//! A process holds execution leases as
//! `PID@HOST#NONCE/start=TICKS,boot=BOOT_ID,pidns=INODE`: its pid, the
//! host, a nonce per runner, and (on Linux) what tells this process apart
//! from a later one that got the same pid: its start time in clock ticks
//! since boot (`/proc/PID/stat`, field 22), the kernel's boot id
//! (`/proc/sys/kernel/random/boot_id`) and its pid namespace
//! (`/proc/self/ns/pid`). Holders written before these parts existed
//! (`PID@HOST#NONCE`) still parse; their liveness is unknown.
//!
//! A holder is [`Liveness::Dead`] only when it certainly is: the same host,
//! boot and pid namespace as this process, and no process with its pid,
//! or one that started at another time (the pid was reused), or a zombie
//! (killed, not yet reaped). Anything else — another host, another boot,
//! an old holder, a `/proc` that hides other users' processes, another
//! operating system — is [`Liveness::Unknown`], and its lease is respected
//! until it expires.

use std::fmt;
use std::sync::OnceLock;

/// A lease holder's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderId {
    pub pid: u32,
    pub host: String,
    pub nonce: String,
    /// What tells this process apart from a later one with the same pid
    /// (none: an old holder, or a platform that does not say).
    pub mark: Option<ProcessMark>,
}

/// A process's start time, boot and pid namespace (Linux).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMark {
    /// Clock ticks since boot (`/proc/PID/stat`, field 22).
    pub start: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot: String,
    /// The inode of `/proc/self/ns/pid`, when readable.
    pub pidns: Option<u64>,
}

/// Whether a lease's holder lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// A process on this host that is running.
    Alive,
    /// A process on this host that is gone (or whose pid another process
    /// has now): its leases can be taken over at once.
    Dead,
    /// Cannot tell (another host, an old holder, …): wait for the lease
    /// to expire.
    Unknown,
}

impl fmt::Display for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.pid, self.host, self.nonce)?;
        if let Some(m) = &self.mark {
            write!(f, "/start={},boot={}", m.start, m.boot)?;
            if let Some(ns) = m.pidns {
                write!(f, ",pidns={ns}")?;
            }
        }
        Ok(())
    }
}

impl HolderId {
    /// Parse a holder; `None` when it is not a process's (an environment
    /// lease is held by an execution id).
    pub fn parse(text: &str) -> Option<HolderId> {
        let (pid, rest) = text.split_once('@')?;
        let pid = pid.parse::<u32>().ok()?;
        let (host, tail) = rest.rsplit_once('#')?;
        let (nonce, params) = match tail.split_once('/') {
            Some((nonce, params)) => (nonce, Some(params)),
            None => (tail, None),
        };
        if host.is_empty() || nonce.is_empty() {
            return None;
        }
        let mark = params.and_then(|params| {
            let (mut start, mut boot, mut pidns) = (None, None, None);
            for part in params.split(',') {
                match part.split_once('=') {
                    Some(("start", v)) => start = v.parse::<u64>().ok(),
                    Some(("boot", v)) if !v.is_empty() => boot = Some(v.to_string()),
                    Some(("pidns", v)) => pidns = v.parse::<u64>().ok(),
                    _ => {}
                }
            }
            Some(ProcessMark {
                start: start?,
                boot: boot?,
                pidns,
            })
        });
        Some(HolderId {
            pid,
            host: host.to_string(),
            nonce: nonce.to_string(),
            mark,
        })
    }

    /// This process, with a fresh nonce.
    pub fn this_process() -> HolderId {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        HolderId {
            pid: std::process::id(),
            host: local().host.clone(),
            nonce: nonce[..8].to_string(),
            mark: local().mark.clone(),
        }
    }
}

/// Whether the process that holds a lease as `holder` lives, as far as this
/// host can tell.
pub fn liveness(holder: &str) -> Liveness {
    match HolderId::parse(holder) {
        Some(h) => judge(&h, local(), probe),
        None => Liveness::Unknown,
    }
}

/// `holder` is certainly gone.
pub fn is_dead(holder: &str) -> bool {
    liveness(holder) == Liveness::Dead
}

/// What this process knows of its host.
#[derive(Debug, Clone)]
struct Local {
    host: String,
    mark: Option<ProcessMark>,
    /// `/proc` hides other users' processes (`hidepid`): a missing pid
    /// proves nothing.
    hidden_pids: bool,
}

/// What `/proc` says of a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum Probe {
    Absent,
    Process { start: u64, zombie: bool },
    Unreadable,
}

fn local() -> &'static Local {
    static LOCAL: OnceLock<Local> = OnceLock::new();
    LOCAL.get_or_init(|| Local {
        host: host_name(),
        mark: own_mark(),
        hidden_pids: hidden_pids(),
    })
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn judge(holder: &HolderId, local: &Local, probe: impl Fn(u32) -> Probe) -> Liveness {
    if holder.host != local.host {
        return Liveness::Unknown;
    }
    let (Some(theirs), Some(ours)) = (&holder.mark, &local.mark) else {
        return Liveness::Unknown;
    };
    // Another boot of this host (its leases have long expired), or another
    // machine or container that shares the name: pids mean nothing here.
    if theirs.boot != ours.boot || theirs.pidns != ours.pidns {
        return Liveness::Unknown;
    }
    match probe(holder.pid) {
        Probe::Absent if local.hidden_pids => Liveness::Unknown,
        Probe::Absent => Liveness::Dead,
        Probe::Process { zombie: true, .. } => Liveness::Dead,
        Probe::Process { start, .. } if start == theirs.start => Liveness::Alive,
        // The pid now belongs to another process.
        Probe::Process { .. } => Liveness::Dead,
        Probe::Unreadable => Liveness::Unknown,
    }
}

/// The state (field 3) and start time (field 22) of `/proc/PID/stat`; the
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let after = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse::<u64>().ok()?;
    Some((state, start))
}

#[cfg(target_os = "linux")]
fn probe(pid: u32) -> Probe {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => match parse_stat(&text) {
            Some((state, start)) => Probe::Process {
                start,
                zombie: matches!(state, 'Z' | 'X' | 'x'),
            },
            None => Probe::Unreadable,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Absent,
        // ESRCH: the process ended while its file was read.
        Err(e) if e.raw_os_error() == Some(3) => Probe::Absent,
        Err(_) => Probe::Unreadable,
    }
}

#[cfg(not(target_os = "linux"))]
fn probe(_pid: u32) -> Probe {
    Probe::Unreadable
}

#[cfg(target_os = "linux")]
fn own_mark() -> Option<ProcessMark> {
    let (_, start) = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot = boot.trim();
    if boot.is_empty() || !boot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    // "pid:[4026531836]"
    let pidns = std::fs::read_link("/proc/self/ns/pid").ok().and_then(|p| {
        let p = p.to_string_lossy().to_string();
        p.strip_prefix("pid:[")?
            .strip_suffix(']')?
            .parse::<u64>()
            .ok()
    });
    Some(ProcessMark {
        start,
        boot: boot.to_string(),
        pidns,
    })
}

#[cfg(not(target_os = "linux"))]
fn own_mark() -> Option<ProcessMark> {
    None
}

/// `/proc` is mounted with `hidepid` other than 0 (`off`).
#[cfg(target_os = "linux")]
fn hidden_pids() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines().any(|line| {
        let mount_point = line.split(' ').nth(4);
        let Some((_, fs)) = line.split_once(" - ") else {
            return false;
        };
        let mut fs = fs.split(' ');
        let (kind, options) = (fs.next(), fs.nth(1).unwrap_or(""));
        mount_point == Some("/proc")
            && kind == Some("proc")
            && options.split(',').any(|o| {
                o.strip_prefix("hidepid=")
                    .is_some_and(|v| v != "0" && v != "off")
            })
    })
}

#[cfg(not(target_os = "linux"))]
fn hidden_pids() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(start: u64) -> Option<ProcessMark> {
        Some(ProcessMark {
            start,
            boot: "6f1c0d2e-9a4b-4c1d-8e2f-0a1b2c3d4e5f".into(),
            pidns: Some(4026531836),
        })
    }

    fn here() -> Local {
        Local {
            host: "build-1".into(),
            mark: mark(1),
            hidden_pids: false,
        }
    }

    fn holder(pid: u32, start: u64) -> HolderId {
        HolderId {
            pid,
            host: "build-1".into(),
            nonce: "ab12cd34".into(),
            mark: mark(start),
        }
    }

    /// pid 100 started at tick 500; pid 200 is a zombie; 300 unreadable.
    fn procs(pid: u32) -> Probe {
        match pid {
            100 => Probe::Process {
                start: 500,
                zombie: false,
            },
            200 => Probe::Process {
                start: 700,
                zombie: true,
            },
            300 => Probe::Unreadable,
            _ => Probe::Absent,
        }
    }

    #[test]
    fn holders_parse_old_and_new() {
        let h = holder(4242, 98765);
        let text = h.to_string();
        assert_eq!(
            text,
            "4242@build-1#ab12cd34/start=98765,boot=6f1c0d2e-9a4b-4c1d-8e2f-0a1b2c3d4e5f,pidns=4026531836"
        );
        assert_eq!(HolderId::parse(&text), Some(h));
        // Written before processes were marked: parses, no mark.
        let old = HolderId::parse("4242@build-1#ab12cd34").expect("old holder");
        assert_eq!(
            (old.pid, old.host.as_str(), old.mark),
            (4242, "build-1", None)
        );
        // A '#' in the host name; parts a later version may add.
        let odd = HolderId::parse("7@a#b#cd/start=5,boot=x,later=1").expect("parses");
        assert_eq!(odd.host, "a#b");
        assert_eq!(odd.mark.map(|m| (m.start, m.pidns)), Some((5, None)));
        // Not a process: an execution id holds an environment's lease.
        assert_eq!(HolderId::parse("upgrade:release-1.0"), None);
        assert_eq!(HolderId::parse("x@host#n"), None);
        assert_eq!(liveness("upgrade:release-1.0"), Liveness::Unknown);
        // A mark missing its start is no mark.
        assert_eq!(HolderId::parse("7@h#n/boot=x").and_then(|h| h.mark), None);
    }

    #[test]
    fn only_a_process_of_this_host_and_boot_is_judged() {
        let local = here();
        assert_eq!(judge(&holder(100, 500), &local, procs), Liveness::Alive);
        assert_eq!(judge(&holder(999, 500), &local, procs), Liveness::Dead);
        // The pid was reused: a live process, started at another time.
        assert_eq!(judge(&holder(100, 499), &local, procs), Liveness::Dead);
        // Killed but not reaped yet.
        assert_eq!(judge(&holder(200, 700), &local, procs), Liveness::Dead);
        assert_eq!(judge(&holder(300, 1), &local, procs), Liveness::Unknown);
        // Another host, boot or pid namespace: unknown, even for a pid
        // that does not exist here.
        let mut other = holder(999, 500);
        other.host = "build-2".into();
        assert_eq!(judge(&other, &local, procs), Liveness::Unknown);
        let mut rebooted = holder(999, 500);
        if let Some(m) = rebooted.mark.as_mut() {
            m.boot = "0000".into();
        }
        assert_eq!(judge(&rebooted, &local, procs), Liveness::Unknown);
        let mut contained = holder(999, 500);
        if let Some(m) = contained.mark.as_mut() {
            m.pidns = Some(1);
        }
        assert_eq!(judge(&contained, &local, procs), Liveness::Unknown);
        // An old holder, or a platform that does not mark processes.
        let mut old = holder(999, 500);
        old.mark = None;
        assert_eq!(judge(&old, &local, procs), Liveness::Unknown);
        let unmarked = Local {
            mark: None,
            ..here()
        };
        assert_eq!(
            judge(&holder(999, 500), &unmarked, procs),
            Liveness::Unknown
        );
        // /proc hides other users' processes: a missing pid proves nothing.
        let hidden = Local {
            hidden_pids: true,
            ..here()
        };
        assert_eq!(judge(&holder(999, 500), &hidden, procs), Liveness::Unknown);
        assert_eq!(judge(&holder(100, 499), &hidden, procs), Liveness::Dead);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (piflow (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 98765 123 4 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("4242 (piflow) Z 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    /// The real /proc: this process lives; with another start time (its pid
    /// reused by a later process) it counts as dead; a pid no process has.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_host_judges_real_processes() {
        let me = HolderId::this_process();
        let Some(m) = me.mark.clone() else {
            eprintln!("this /proc does not mark processes; nothing to check");
            return;
        };
        assert_eq!(liveness(&me.to_string()), Liveness::Alive);
        let reused = HolderId {
            mark: Some(ProcessMark {
                start: m.start + 1,
                ..m.clone()
            }),
            ..me.clone()
        };
        assert_eq!(liveness(&reused.to_string()), Liveness::Dead);
        let gone = HolderId {
            pid: u32::MAX,
            ..me.clone()
        };
        let expected = if local().hidden_pids {
            Liveness::Unknown
        } else {
            Liveness::Dead
        };
        assert_eq!(liveness(&gone.to_string()), expected);
        let elsewhere = HolderId {
            host: format!("{}-elsewhere", me.host),
            ..gone
        };
        assert_eq!(liveness(&elsewhere.to_string()), Liveness::Unknown);
        // A child that exits and is reaped: its pid is free.
        if let Ok(mut child) = std::process::Command::new("true").spawn() {
            let pid = child.id();
            let _ = child.wait();
            let child_id = HolderId { pid, ..me.clone() };
            assert_ne!(liveness(&child_id.to_string()), Liveness::Alive);
        }
    }
}
