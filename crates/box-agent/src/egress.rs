//! The agent's way out. Under bubblewrap the coding agent runs in a network namespace of its
//! own: nothing but its own loopback, so no service on the host's loopback (databases, other
//! boxes' control planes, Apiary's internals) and nothing on the network is reachable
//! directly. Inside it, [`relay`] listens on `127.0.0.1:3128` (the agent's `HTTPS_PROXY` and
//! `HTTP_PROXY`) and carries each connection over a Unix socket bound into the sandbox to
//! [`serve`], an allowlisting proxy the box agent runs outside: HTTP `CONNECT` (for https and
//! anything tunnelled) and plain HTTP with an absolute URL, each only to a host (or host:port)
//! on the box's allowlist. A refused connection answers 403 and is written to the task's log
//! with its host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::logs::LogStream;

/// Where the agent's proxy listens inside its namespace.
pub const PROXY_ADDR: &str = "127.0.0.1:3128";
/// Most connections the gate serves at once.
const GATE_CONNECTIONS: usize = 512;
/// Longest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// Hosts the agent may reach: `host`, `host:port`, or `*.domain` (any subdomain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<String>);

impl Allowlist {
    /// From a comma- or whitespace-separated list (`APIARY_EGRESS_ALLOW`).
    pub fn parse(list: &str) -> Self {
        Allowlist(
            list.split(|c: char| c == ',' || c.is_whitespace())
                .map(|e| e.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        )
    }

    /// Whether a connection to `host:port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        self.0.iter().any(|e| {
            e == &with_port
                || e == &host
                || e.strip_prefix("*.")
                    .is_some_and(|d| host.ends_with(&format!(".{d}")))
        })
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }
}

/// `host` and `port` of a `CONNECT` target (`host:port`, `[v6]:port`).
fn authority(target: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match target.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default_port,
            };
            (h.to_string(), port)
        }
        None => match target.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (target.to_string(), default_port),
        },
    };
    (!host.is_empty()).then_some((host, port))
}

/// Where a request head wants to go: `(is CONNECT, host, port)`.
fn destination(head: &str) -> Option<(bool, String, u16)> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    if method.eq_ignore_ascii_case("CONNECT") {
        let (h, p) = authority(target, 443)?;
        return Some((true, h, p));
    }
    let rest = target.strip_prefix("http://")?;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let (h, p) = authority(auth, 80)?;
    Some((false, h, p))
}

async fn answer<S: AsyncWrite + Unpin>(client: &mut S, status: &str, why: &str) {
    let body = format!("{why}\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(reply.as_bytes()).await;
}

/// Reads a request or response head (up to `\r\n\r\n`); `None` when the peer closed first
/// or it grew past [`MAX_HEAD`]. The bytes read past the head come back after it.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<(Vec<u8>, usize)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((head, i + 4));
        }
        if head.len() > MAX_HEAD {
            return None;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Opens a connection to `host:port`: directly, or through the upstream proxy (`host:port`)
/// with `CONNECT` when the box's only way out is one (a box in a container).
pub async fn connect_out(
    host: &str,
    port: u16,
    upstream: Option<&str>,
) -> std::io::Result<TcpStream> {
    let Some(up) = upstream else {
        return connect_direct(host, port).await;
    };
    let mut s = TcpStream::connect(up).await?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await?;
    // The answer's head byte by byte: what follows it is the tunnel's, and stays in the stream.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD || s.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other(
                "the upstream proxy closed the connection",
            ));
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or_default().to_string();
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "the upstream proxy answered {line:?}"
        )));
    }
    Ok(s)
}

/// Connects to `host:port` itself. A name (not a literal address) must not resolve to a
/// loopback, link-local or unspecified address: an allowed name pointed at the host's own
/// services, or at a cloud's metadata address, reaches nothing.
async fn connect_direct(host: &str, port: u16) -> std::io::Result<TcpStream> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return TcpStream::connect((host, port)).await;
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let local = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if let Some(bad) = addrs.iter().find(|a| local(a.ip())) {
        return Err(std::io::Error::other(format!(
            "{host} resolves to {}, a local address (allow the address itself to reach it)",
            bad.ip()
        )));
    }
    TcpStream::connect(&addrs[..]).await
}

/// What a proxy does with a refusal: the box agent writes it to the task's log, the host's
/// gate to Apiary's log.
pub type OnRefused = Arc<dyn Fn(&str, u16) + Send + Sync>;

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    allow: Arc<Allowlist>,
    refused: OnRefused,
    upstream: Option<Arc<str>>,
) {
    // A client gets 15 s to say where it goes.
    let head = tokio::time::timeout(Duration::from_secs(15), read_head(&mut client)).await;
    let Ok(Some((head, end))) = head else {
        return answer(
            &mut client,
            "431 Request Header Fields Too Large",
            "head too long or cut short",
        )
        .await;
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let Some((tunnel, host, port)) = destination(&text) else {
        return answer(
            &mut client,
            "400 Bad Request",
            "Apiary's egress proxy takes CONNECT host:port or an absolute http:// URL",
        )
        .await;
    };
    if !allow.allows(&host, port) {
        refused(&host, port);
        return answer(
            &mut client,
            "403 Forbidden",
            &format!(
                "Apiary does not let this box reach {host}:{port} (not on its egress allowlist)"
            ),
        )
        .await;
    }
    let upstream = tokio::time::timeout(
        Duration::from_secs(15),
        connect_out(&host, port, upstream.as_deref()),
    )
    .await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return answer(
                &mut client,
                "502 Bad Gateway",
                &format!("{host}:{port}: {e}"),
            )
            .await
        }
        Err(_) => {
            return answer(
                &mut client,
                "504 Gateway Timeout",
                &format!("{host}:{port}"),
            )
            .await
        }
    };
    let sent = if tunnel {
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .and(upstream.write_all(&head[end..]).await)
    } else {
        upstream.write_all(&head).await
    };
    if sent.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// A Unix socket's path must fit in `sun_path` (108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 100;

/// Binds a Unix socket at `socket` (made anew). A path too long for a socket address is bound
/// through `/proc/self/fd/<its folder>/…`, which the kernel resolves; the folder's descriptor
/// comes back with the listener.
pub fn bind_unix(socket: &Path) -> std::io::Result<(UnixListener, Option<std::fs::File>)> {
    let _ = std::fs::remove_file(socket);
    if socket.as_os_str().len() < MAX_SOCKET_PATH {
        return Ok((UnixListener::bind(socket)?, None));
    }
    let (Some(parent), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(std::io::Error::other(
            "a socket path needs a folder and a name",
        ));
    };
    let dir = std::fs::File::open(parent)?;
    use std::os::fd::AsRawFd;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    Ok((UnixListener::bind(short)?, Some(dir)))
}

/// Serves the proxy on `socket` (made anew) until the task is dropped; refusals go to the
/// task's log. `upstream` (`host:port`) is where allowed connections go when the box has no
/// direct way out.
pub fn serve(
    socket: &Path,
    allow: Allowlist,
    logs: LogStream,
    upstream: Option<String>,
) -> Result<tokio::task::JoinHandle<()>> {
    let (listener, _dir) = bind_unix(socket)
        .with_context(|| format!("binding the egress proxy at {}", socket.display()))?;
    let allow = Arc::new(allow);
    let refused: OnRefused = Arc::new(move |host: &str, port: u16| {
        logs.line(format!(
            "egress refused: {host}:{port} is not on this box's allowlist (settings: egress_allow)"
        ))
    });
    let upstream: Option<Arc<str>> = upstream.map(Into::into);
    Ok(tokio::spawn(async move {
        let _dir = _dir;
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(handle(
                client,
                allow.clone(),
                refused.clone(),
                upstream.clone(),
            ));
        }
    }))
}

/// Finds the allowlist (comma-separated hosts) of the box a connection comes from, by its
/// address; `None`: not a box.
pub type Lookup = Arc<
    dyn Fn(
            std::net::IpAddr,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
        + Send
        + Sync,
>;

/// The gate on the host of boxes in containers: their internal network's only way out. Each
/// connection is served with the allowlist of the box it comes from; one from anywhere else
/// is closed unanswered. Refusals go to Apiary's log.
pub fn serve_gate(listener: TcpListener, lookup: Lookup) -> tokio::task::JoinHandle<()> {
    // At most this many connections at once (the gate shares Apiary's process and its files).
    let slots = Arc::new(tokio::sync::Semaphore::new(GATE_CONNECTIONS));
    tokio::spawn(async move {
        while let Ok((client, peer)) = listener.accept().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "the box gate is full; a connection was closed");
                continue;
            };
            let lookup = lookup.clone();
            tokio::spawn(async move {
                let Some(list) = lookup(peer.ip()).await else {
                    tracing::warn!(%peer, "the box gate closed a connection from no box");
                    return;
                };
                let refused: OnRefused = Arc::new(
                    move |host: &str, port: u16| tracing::warn!(box_addr = %peer.ip(), "the box gate refused {host}:{port} (not on the box's allowlist)"),
                );
                handle(client, Arc::new(Allowlist::parse(&list)), refused, None).await;
                drop(slot);
            });
        }
    })
}

/// Inside the agent's namespace: relays each `(listen, socket)` pair (the egress proxy, the
/// model gateway) out, and each `(socket, address)` pair of `serve` in (the box agent reaching
/// the site preview), while `command` runs; returns the command's exit code (128 + signal
/// when killed).
pub async fn relay(
    pairs: &[(String, std::path::PathBuf)],
    serve: &[(std::path::PathBuf, String)],
    command: &[String],
) -> Result<i32> {
    let Some((program, args)) = command.split_first() else {
        bail!("egress-relay needs a command to run");
    };
    for (socket, addr) in serve {
        let (listener, dir) = bind_unix(socket)
            .with_context(|| format!("listening on {} inside the sandbox", socket.display()))?;
        let addr = addr.clone();
        tokio::spawn(async move {
            let _dir = dir;
            while let Ok((mut inbound, _)) = listener.accept().await {
                let addr = addr.clone();
                tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
    }
    let mut listeners = Vec::new();
    for (listen, socket) in pairs {
        // `localhost:PORT` listens on both loopback addresses (IPv6 where the namespace has it).
        match listen.strip_prefix("localhost:") {
            Some(port) => {
                let v4 = TcpListener::bind(format!("127.0.0.1:{port}"))
                    .await
                    .with_context(|| format!("listening on {listen} inside the sandbox"))?;
                listeners.push((v4, socket.clone()));
                if let Ok(v6) = TcpListener::bind(format!("[::1]:{port}")).await {
                    listeners.push((v6, socket.clone()));
                }
            }
            None => {
                let l = TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen} inside the sandbox"))?;
                listeners.push((l, socket.clone()));
            }
        }
    }
    for (listener, socket) in listeners {
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Ok(mut out) = UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
    }
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .with_context(|| format!("running {program}"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_matches_hosts_ports_and_subdomains() {
        let a =
            Allowlist::parse("registry.npmjs.org, *.pythonhosted.org 127.0.0.1:7878,GitHub.com.");
        assert!(a.allows("registry.npmjs.org", 443));
        assert!(a.allows("files.pythonhosted.org", 443));
        assert!(!a.allows("pythonhosted.org.evil.test", 443));
        assert!(a.allows("github.com", 22));
        assert!(a.allows("127.0.0.1", 7878));
        assert!(!a.allows("127.0.0.1", 6379));
        assert!(!a.allows("npmjs.org", 443));
        assert!(!Allowlist::parse("").allows("localhost", 80));
    }

    #[test]
    fn connect_and_absolute_urls_name_their_destination() {
        assert_eq!(
            destination("CONNECT api.openai.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some((true, "api.openai.com".into(), 443))
        );
        assert_eq!(
            destination("GET http://user:pw@example.test:8080/a?b HTTP/1.1\r\n\r\n"),
            Some((false, "example.test".into(), 8080))
        );
        assert_eq!(
            destination("CONNECT [::1]:6379 HTTP/1.1\r\n\r\n"),
            Some((true, "::1".into(), 6379))
        );
        assert_eq!(destination("GET /relative HTTP/1.1\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn the_proxy_tunnels_to_allowed_hosts_and_refuses_and_logs_the_rest() {
        // An allowed upstream that echoes one line back.
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_port = up.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = up.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    let n = s.read(&mut b).await.unwrap_or(0);
                    let _ = s.write_all(&b[..n]).await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        // A folder deep enough that its socket's path does not fit a socket address.
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("egress.sock");
        assert!(sock.as_os_str().len() > MAX_SOCKET_PATH);
        let rec = Recorder::default();
        let logs = LogStream::start(rec.clone());
        let _proxy = serve(
            &sock,
            Allowlist::parse(&format!("127.0.0.1:{up_port}")),
            logs.clone(),
            None,
        )
        .unwrap();
        // Clients reach it by a short path too (the relay's is relative to the workspace).
        let folder = std::fs::File::open(&deep).unwrap();
        use std::os::fd::AsRawFd;
        let short = format!("/proc/self/fd/{}/egress.sock", folder.as_raw_fd());
        let mut c = UnixStream::connect(&short).await.unwrap();
        c.write_all(format!("CONNECT 127.0.0.1:{up_port} HTTP/1.1\r\n\r\nping").as_bytes())
            .await
            .unwrap();
        let mut got = vec![0u8; 256];
        let mut n = 0;
        while !String::from_utf8_lossy(&got[..n]).ends_with("ping") {
            n += c.read(&mut got[n..]).await.unwrap();
        }
        assert!(String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 200"));

        let mut c = UnixStream::connect(&short).await.unwrap();
        c.write_all(b"CONNECT 127.0.0.1:6379 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
        logs.flush().await;
        let lines = rec.0.lock().unwrap().concat();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("egress refused: 127.0.0.1:6379")),
            "{lines:?}"
        );
    }

    /// Connects to `to` from the loopback address `from` (each box has an address of its own).
    async fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        sock.connect(to).await.unwrap()
    }

    #[tokio::test]
    async fn the_gate_serves_each_box_its_own_allowlist_and_nothing_else() {
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_port = up.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = up.accept().await {
                let _ = s.write_all(b"upstream-here").await;
            }
        });
        let gate = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = gate.local_addr().unwrap();
        // Box A (127.0.0.2) may reach the upstream; box B (127.0.0.3) may reach nothing; any
        // other address is no box.
        let lookup: Lookup = Arc::new(move |ip| {
            Box::pin(async move {
                match ip.to_string().as_str() {
                    "127.0.0.2" => Some(format!("127.0.0.1:{up_port}")),
                    "127.0.0.3" => Some("example.test".to_string()),
                    _ => None,
                }
            })
        });
        let _gate = serve_gate(gate, lookup);
        let ask = format!("CONNECT 127.0.0.1:{up_port} HTTP/1.1\r\n\r\n");

        let mut a = connect_from("127.0.0.2", addr).await;
        a.write_all(ask.as_bytes()).await.unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 256];
        while !got.contains("upstream-here") {
            let n = a.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");

        let mut b = connect_from("127.0.0.3", addr).await;
        b.write_all(ask.as_bytes()).await.unwrap();
        let mut reply = String::new();
        b.read_to_string(&mut reply).await.unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 403"),
            "another box's allowlist is not this one's: {reply}"
        );

        let mut stranger = connect_from("127.0.0.1", addr).await;
        stranger.write_all(ask.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let _ = stranger.read_to_end(&mut reply).await;
        assert!(
            reply.is_empty(),
            "no answer for no box: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }

    #[tokio::test]
    async fn the_box_proxy_sends_what_it_allows_through_its_upstream_only() {
        // The upstream (the gate) sees a CONNECT for the allowed host and nothing else.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap().to_string();
        let heads = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let (head, end) = read_head(&mut s).await.unwrap();
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head[..end]).into_owned());
                    let _ = s
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\nfrom-the-far-side")
                        .await;
                });
            }
        });
        let mut s = connect_out("pypi.org", 443, Some(&up_addr)).await.unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "from-the-far-side");
        assert!(heads.lock().unwrap()[0].starts_with("CONNECT pypi.org:443 HTTP/1.1"));
        // An upstream that refuses is an error, not a connection.
        let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r_addr = refusing.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = refusing.accept().await {
                let _ = read_head(&mut s).await;
                let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
            }
        });
        let err = connect_out("evil.test", 443, Some(&r_addr))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("403"), "{err}");
        // Straight out: a name that resolves to this host reaches nothing; the address does.
        let err = connect_out("localhost", 9, None).await.unwrap_err();
        assert!(err.to_string().contains("local address"), "{err}");
    }

    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

    impl crate::logs::Sink for Recorder {
        async fn send(&self, lines: Vec<String>) {
            self.0.lock().unwrap().push(lines);
        }
    }
}
