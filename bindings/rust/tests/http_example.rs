//! The example HTTP server (examples/http_server.rs, built by `cargo test`) against a
//! real daemon: both of its ports serve the right bytes, over keep-alive connections
//! with pipelined requests, HEAD, 404 and paths that try to leave the directory.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;

fn example_binary() -> PathBuf {
    // Tests run from target/<profile>/deps; examples are built into target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/http_server");
    assert!(
        p.exists(),
        "{} is missing: cargo test builds it",
        p.display()
    );
    p
}

struct Server {
    child: Child,
    /// Kept open: the server logs to it.
    _stderr: BufReader<std::process::ChildStderr>,
    offload: String,
    servedir: String,
}

impl Server {
    fn start(dir: &std::path::Path, socket: &std::path::Path) -> Server {
        let mut child = Command::new(example_binary())
            .arg(dir)
            .args([
                "--offload",
                "127.0.0.1:0",
                "--servedir",
                "127.0.0.1:0",
                "--socket",
            ])
            .arg(socket)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        stderr.read_line(&mut line).unwrap();
        // "serving DIR: through sendfiled on http://A, through tower-http's ServeDir on http://B"
        let addrs: Vec<String> = line
            .split("http://")
            .skip(1)
            .map(|s| s.split([',', '\n']).next().unwrap().to_string())
            .collect();
        assert_eq!(addrs.len(), 2, "unexpected first line: {line:?}");
        Server {
            child,
            _stderr: stderr,
            offload: addrs[0].clone(),
            servedir: addrs[1].clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response: status code, and the body unless `head`.
fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> (u16, Vec<u8>) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; if head { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (code, body)
}

#[test]
fn both_servers_serve_the_files() {
    let _g = serial();
    let fds = FdCheck::new();
    let d = Daemon::start();
    let dir = TempDir::new("www");
    make_file(dir.path(), "a.bin", 3 * MIB + 5);
    make_file(dir.path(), "empty", 0);
    let outside = format!("sfd-outside-{}", std::process::id());
    std::fs::write(dir.path().join("..").join(&outside), b"secret").unwrap();
    let s = Server::start(dir.path(), &d.path);
    for addr in [&s.offload, &s.servedir] {
        let conn = TcpStream::connect(addr).unwrap();
        let mut w = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);
        // Pipelined on one connection.
        let reqs = "GET /a.bin HTTP/1.1\r\nHost: x\r\n\r\n\
                    HEAD /a.bin HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /empty HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
        w.write_all(reqs.as_bytes()).unwrap();
        let (code, body) = read_response(&mut r, false);
        assert_eq!(code, 200, "{addr}");
        assert_eq!(
            Received::of(&body),
            Received::expected(0, 3 * MIB + 5),
            "{addr}"
        );
        assert_eq!(read_response(&mut r, true).0, 200, "{addr}");
        assert_eq!(read_response(&mut r, false), (200, vec![]), "{addr}");
        assert_eq!(read_response(&mut r, false).0, 404, "{addr}");
        // And again on the same connection, after the pipeline.
        w.write_all(b"GET /a.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (code, body) = read_response(&mut r, false);
        assert_eq!(code, 200);
        assert_eq!(body.len() as u64, 3 * MIB + 5);
    }
    // The offloaded server refuses paths that leave its directory.
    let mut conn = TcpStream::connect(&s.offload).unwrap();
    let req = format!("GET /../{outside} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(conn);
    assert_eq!(read_response(&mut r, false).0, 404);
    std::fs::remove_file(dir.path().join("..").join(&outside)).unwrap();
    drop(r);
    drop(s);
    // The server's connection to the daemon is gone with it.
    assert_eq!(d.wait_fd_count(d.base), d.base);
    drop((d, dir));
    fds.assert_same();
}
