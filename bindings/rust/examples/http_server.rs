//! An HTTP/1.1 file server whose response bodies are sent by sendfiled, next to the same
//! directory served by tower-http's `ServeDir` (hyper 1), for comparison.
//!
//! ```text
//! cargo run --release --example http_server -- DIR [--offload ADDR] [--servedir ADDR] [--socket PATH]
//! curl -o /dev/null http://127.0.0.1:8080/some-file      # through the daemon
//! curl -o /dev/null http://127.0.0.1:8081/some-file      # through tower-http
//! ```
//!
//! The offloaded server reads a request, writes the response head itself (once
//! `write_all` returns, the bytes are in the kernel's socket buffer, ahead of anything
//! the daemon sends), then hands the connection's descriptor and the file to the daemon
//! and waits for its reply before reading the next request on the connection
//! (keep-alive, pipelining). GET and HEAD, `Content-Length`, no ranges or compression.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use sendfiled::{AsyncClient, SendOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_http::services::ServeDir;

const MAX_HEAD: usize = 16 * 1024;

struct Args {
    dir: PathBuf,
    offload: SocketAddr,
    servedir: SocketAddr,
    socket: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        dir: PathBuf::new(),
        offload: "127.0.0.1:8080".parse().unwrap(),
        servedir: "127.0.0.1:8081".parse().unwrap(),
        socket: None,
    };
    let mut dir = None;
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--offload" => a.offload = val("--offload")?.parse().map_err(|e| format!("{e}"))?,
            "--servedir" => a.servedir = val("--servedir")?.parse().map_err(|e| format!("{e}"))?,
            "--socket" => a.socket = Some(val("--socket")?.into()),
            s if !s.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unknown argument {s}")),
        }
    }
    a.dir =
        dir.ok_or("usage: http_server DIR [--offload ADDR] [--servedir ADDR] [--socket PATH]")?;
    Ok(a)
}

/// The file a request path names under `root`, refusing anything that leaves it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let rel = Path::new(path.strip_prefix('/')?);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

struct Head {
    len: usize,
    get: bool,
    keep_alive: bool,
    file: Option<(File, u64)>,
}

fn parse_head(root: &Path, buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(|_| "bad request")? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    let version = req.version.unwrap_or(1);
    let conn = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
    let keep_alive = match conn.as_deref() {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == 1,
    };
    if req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    }) {
        return Err("request bodies are not supported");
    }
    let method = req.method.unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return Err("method not allowed");
    }
    // Opening a file blocks the thread briefly (tokio::fs would do the same on its
    // blocking pool); for files on local disks that is short.
    let file = resolve(root, req.path.unwrap_or("")).and_then(|p| {
        let f = File::open(p).ok()?;
        let m = f.metadata().ok()?;
        m.is_file().then_some((f, m.len()))
    });
    Ok(Some(Head {
        len,
        get: method == "GET",
        keep_alive,
        file,
    }))
}

async fn serve_offloaded(
    mut sock: TcpStream,
    root: Arc<PathBuf>,
    client: AsyncClient,
) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&root, &buf) {
                    Ok(Some(h)) => break h,
                    Ok(None) if buf.len() < MAX_HEAD => {}
                    Ok(None) | Err(_) => {
                        sock.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await?;
                        return Ok(());
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..head.len);
        let close = if head.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let Some((file, size)) = head.file else {
            let msg = format!("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{close}\r\n");
            sock.write_all(msg.as_bytes()).await?;
            if !head.keep_alive {
                return Ok(());
            }
            continue;
        };
        let msg = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n{close}\r\n"
        );
        // Once this returns the head is in the kernel, ahead of the body.
        sock.write_all(msg.as_bytes()).await?;
        if head.get && size > 0 {
            let r = client
                .sendfile(&sock, &file, 0, Some(size), SendOptions::new())
                .await
                .map_err(io::Error::from)?;
            if r.bytes_sent != size {
                // The file shrank: the response cannot be completed.
                return Ok(());
            }
        }
        if !head.keep_alive {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let client = match &args.socket {
        Some(p) => AsyncClient::connect(p).await?,
        None => AsyncClient::connect_default().await?,
    };
    let root = Arc::new(args.dir.clone());
    let offload = TcpListener::bind(args.offload).await?;
    let servedir = TcpListener::bind(args.servedir).await?;
    eprintln!(
        "serving {}: through sendfiled on http://{}, through tower-http's ServeDir on http://{}",
        args.dir.display(),
        offload.local_addr()?,
        servedir.local_addr()?
    );

    let svc = ServeDir::new(&args.dir);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = servedir.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });

    loop {
        let (sock, _) = offload.accept().await?;
        let (root, client) = (root.clone(), client.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_offloaded(sock, root, client).await {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) {
                    eprintln!("connection: {e}");
                }
            }
        });
    }
}
