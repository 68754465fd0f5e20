//! `piflow serve`'s connections: the accept loop and one HTTP/1 connection
//! (hyper) per task, serving the axum router, with a graceful shutdown
//! (stop accepting, let the requests in flight finish, close idle
//! connections).
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
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Serve `router` on `listener` until `shutdown` resolves, then stop
/// accepting and wait for the connections to finish their requests.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender: when all are dropped, the
    // receiver's `recv` returns None.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
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
            stop_rx.clone(),
            alive_tx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, until it ends or the server stops.
async fn connection(
    stream: TcpStream,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
) {
    let io = TokioIo::new(ConnIo::new(stream));
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One buffer per write, so that ConnIo sees a whole automatic answer.
    builder.writev(false);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The socket as hyper sees it: writes piflow's JSON error in place of
/// hyper's automatic answers.
struct ConnIo {
    inner: TcpStream,
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
    fn new(inner: TcpStream) -> ConnIo {
        ConnIo {
            inner,
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let ConnIo { inner, rewrite } = self.get_mut();
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
