//! `piflow serve`'s connections: the listening socket (a deep backlog), the
//! accept loop (a cap on open connections: over it, new ones wait in the
//! backlog), and one HTTP/1 connection (hyper) per task, serving the axum
//! router, with its timeouts and a graceful shutdown (stop accepting, let
//! the requests in flight finish, close idle connections).
//!
//! Timeouts ([`Limits`]): a connection must complete a request head within
//! the header timeout of opening or of the head's first byte, and send the
//! next head's first byte within the idle timeout of the last answer;
//! otherwise it is closed. A request being answered has no connection
//! timeout (its body has its own, in the routes: 408). hyper's own
//! `header_read_timeout` is not used: its timer runs from the moment hyper
//! waits for a head, so it would close idle keep-alive connections after
//! the header timeout too.
//!
//! hyper answers a request head it cannot parse itself, before the router
//! sees it: 400 (a malformed request line or header), 414 (a URI over
//! 65,534 bytes), 431 (more than 100 headers, or a head over hyper's read
//! buffer, about 400 KiB). It writes those with an empty body and closes
//! the connection. [`ConnIo`] recognises them on their way out (a 400, 414
//! or 431 head without a content type: every answer of the router has one)
//! and writes piflow's JSON error in their place, so that every error body
//! has the same shape.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The connection limits (flags of `piflow serve`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From opening (or a head's first byte) to the head's end.
    pub header_timeout: Duration,
    /// From an answer to the next head's first byte.
    pub idle_timeout: Duration,
    /// Open connections at most; more wait in the backlog.
    pub max_connections: u32,
}

/// Listen on `addr` with a backlog of `backlog` connections (the kernel
/// caps it at `net.core.somaxconn`), so that a burst of connections waits
/// to be accepted rather than being reset.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop
/// accepting and wait for the connections to finish their requests. The
/// loop only accepts: a connection is served in its own task, and over
/// `limits.max_connections` the loop waits (and new connections wait in the
/// backlog) until one closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a permit until it ends: the permits count
    // the open connections, and all of them back means none is left.
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, for instance: wait a little
                // rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            router.clone(),
            limits,
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = permits.acquire_many(limits.max_connections).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Where a connection is, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Just opened, or a head begun: it must end within the header timeout.
    Head,
    /// Between two requests: the next head must begin within the idle
    /// timeout.
    Idle,
    /// A request is being answered: no connection timeout.
    Busy,
}

/// A connection's phase and since when, shared by its socket (bytes
/// read), its service (requests) and its watchdog.
struct Clock {
    state: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            state: Mutex::new((Phase::Head, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn set(&self, phase: Phase) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes arrived: between requests, they begin a head.
    fn bytes_read(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed if its phase has not changed,
    /// and which timeout that is.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        let (phase, since) = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        match phase {
            Phase::Head => Some((since + limits.header_timeout, "header")),
            Phase::Idle => Some((since + limits.idle_timeout, "idle")),
            Phase::Busy => None,
        }
    }
}

/// One connection, until it ends, times out or the server stops. Its
/// `permit` (of the open connections) is given back at the end.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(ConnIo::new(stream, clock.clone()));
    let tower = TowerToHyperService::new(router);
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        service_clock.set(Phase::Busy);
        let answer = hyper::service::Service::call(&tower, req);
        let clock = service_clock.clone();
        async move {
            let res = answer.await;
            clock.set(Phase::Idle);
            res
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One buffer per write, so that ConnIo sees a whole automatic answer;
    // the head timeout is the watchdog's (see the module's comment).
    builder.writev(false).header_read_timeout(None::<Duration>);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = clock.deadline(&limits);
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            () = sleep => {
                // Closed unless the phase moved on meanwhile.
                if let Some((at, which)) = clock.deadline(&limits)
                    && at <= Instant::now()
                {
                    tracing::debug!(timeout = which, "closing a connection: timed out");
                    break;
                }
            }
            () = clock.changed.notified() => {}
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(permit);
}

/// The socket as hyper sees it: tells the clock when bytes arrive, and
/// writes piflow's JSON error in place of hyper's automatic answers.
struct ConnIo {
    inner: TcpStream,
    clock: Arc<Clock>,
    rewrite: Rewrite,
}

enum Rewrite {
    /// Writes go through.
    Off,
    /// piflow's answer is being written in place of hyper's.
    Writing { bytes: Vec<u8>, pos: usize },
    /// Written: what hyper writes after it is dropped (it closes anyway).
    Done,
}

impl ConnIo {
    fn new(inner: TcpStream, clock: Arc<Clock>) -> ConnIo {
        ConnIo {
            inner,
            clock,
            rewrite: Rewrite::Off,
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        read
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let ConnIo { inner, rewrite, .. } = self.get_mut();
        if let Rewrite::Off = rewrite {
            match automatic_answer(buf) {
                Some(bytes) => *rewrite = Rewrite::Writing { bytes, pos: 0 },
                None => return Pin::new(inner).poll_write(cx, buf),
            }
        }
        if let Rewrite::Writing { bytes, pos } = rewrite {
            while *pos < bytes.len() {
                let n = ready!(Pin::new(&mut *inner).poll_write(cx, &bytes[*pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *pos += n;
            }
            *rewrite = Rewrite::Done;
        }
        // hyper's bytes count as written: piflow's answer replaced them.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// If `buf` starts with one of hyper's automatic answers (a 400, 414 or
/// 431 head without a content type), piflow's JSON answer for it.
fn automatic_answer(buf: &[u8]) -> Option<Vec<u8>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(buf.get(..end)?).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    if head.to_ascii_lowercase().contains("\ncontent-type:") {
        return None;
    }
    let (line, code, reason) = match status {
        400 => (
            "400 Bad Request",
            "bad-request",
            "the request is not HTTP/1.1 that can be parsed: a malformed request line, method, version or header".to_string(),
        ),
        414 => (
            "414 URI Too Long",
            "uri-too-long",
            format!(
                "the request target is over 65,534 bytes; piflow serve takes at most {} bytes",
                super::URI_LIMIT
            ),
        ),
        431 => (
            "431 Request Header Fields Too Large",
            "headers-too-large",
            format!(
                "the request head has more than 100 header fields or does not fit the read buffer; piflow serve takes at most {} bytes of header fields",
                super::HEADERS_LIMIT
            ),
        ),
        _ => return None,
    };
    let body = format!("{}\n", json!({"error": code, "reason": reason}));
    Some(
        format!(
            "HTTP/1.1 {line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_automatic_answers_become_json() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 14:00:00 GMT\r\n\r\n";
        let out = automatic_answer(hyper_431).map(|b| String::from_utf8_lossy(&b).to_string());
        let Some(out) = out else {
            panic!("not recognised");
        };
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("content-type: application/json\r\n"), "{out}");
        assert!(out.contains("\"error\":\"headers-too-large\""), "{out}");
        // piflow's own answers pass.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(automatic_answer(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_answer(ok).is_none());
    }
}
