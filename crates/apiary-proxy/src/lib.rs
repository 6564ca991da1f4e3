//! One hop of an HTTP reverse proxy, WebSockets included. Apiary forwards a viewer's request
//! for a task's site to the box's control plane with it, and the box agent forwards it on to
//! the preview server; both hops must pass a dev server's hot-reload WebSocket, which a plain
//! HTTP client (reqwest) cannot, so this speaks HTTP/1.1 over a connection the caller opened.
//!
//! What a hop adds or strips beyond the hop-by-hop headers (credentials, host) is the
//! caller's business: this module only moves bytes faithfully.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a hop failed; the caller turns it into a 502 or 504 its users can read.
#[derive(Debug)]
pub enum ProxyError {
    /// The upstream did not answer the request's head in time.
    Timeout(Duration),
    /// The upstream closed, or spoke something that is not HTTP/1.1.
    Upstream(String),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Timeout(d) => write!(f, "no answer within {} s", d.as_secs()),
            ProxyError::Upstream(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether `headers` ask to switch to a WebSocket (or another upgraded protocol).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

/// Removes the connection's own headers, and those the `Connection` header names; an upgrade
/// keeps `Connection: upgrade` and `Upgrade`, which the next hop needs to switch too.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| n != header::UPGRADE)
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(
            header::CONNECTION,
            "upgrade".parse().expect("a header value"),
        );
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sends `req` (its URI in origin form, `/path?query`) over `io`, a fresh connection to the
/// upstream, and returns the upstream's answer with its body streamed. When both sides agree
/// to switch protocols (101), the two upgraded connections are piped to each other until
/// either closes or `cut` resolves (the viewer lost access, say). `head_timeout` bounds the
/// wait for the answer's head, not its body.
pub async fn forward<I, C>(
    mut req: Request<Body>,
    io: I,
    head_timeout: Duration,
    cut: C,
) -> Result<Response<Body>, ProxyError>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    C: std::future::Future<Output = ()> + Send + 'static,
{
    let upgrade = wants_upgrade(req.headers());
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut req));
    strip_hop_by_hop(req.headers_mut(), upgrade);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::Upstream(format!("the connection failed: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    let mut resp = tokio::time::timeout(head_timeout, sender.send_request(req))
        .await
        .map_err(|_| ProxyError::Timeout(head_timeout))?
        .map_err(|e| ProxyError::Upstream(format!("no answer: {e}")))?;
    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(downstream)) = (switched, downstream) {
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
                return;
            };
            let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                _ = cut => {}
            }
        });
    }
    strip_hop_by_hop(resp.headers_mut(), switched);
    Ok(resp.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_an_upgrade_keeps_what_it_needs() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            "keep-alive, X-Private, Upgrade".parse().unwrap(),
        );
        h.insert("x-private", "1".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::ACCEPT, "*/*".parse().unwrap());
        assert!(wants_upgrade(&h));
        let mut up = h.clone();
        strip_hop_by_hop(&mut up, true);
        assert_eq!(up.get(header::CONNECTION).unwrap(), "upgrade");
        assert_eq!(up.get(header::UPGRADE).unwrap(), "websocket");
        assert!(up.get("x-private").is_none() && up.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(up.get(header::ACCEPT).unwrap(), "*/*");
        strip_hop_by_hop(&mut h, false);
        assert!(h.get(header::CONNECTION).is_none() && h.get(header::UPGRADE).is_none());
        assert_eq!(h.len(), 1);
    }
}
