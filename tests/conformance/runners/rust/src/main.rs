//! The conformance runner of the Rust client (see tests/conformance/README.md).
//!
//! Each case goes through the public API: the blocking `Client::sendfile`, or, for a
//! cancel mid-transfer, `AsyncClient::submit` and `Transfer::cancel`. It reports what it
//! saw and judges nothing.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use sendfiled::{AsyncClient, Client, Error, Reply, SendOptions};
use sha2::{Digest, Sha256};

struct Case {
    name: String,
    op: String,
    source: String,
    path: String,
    size: u64,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
    dest: String,
    action: String,
    at: u64,
}

fn parse(line: &str) -> Case {
    let f: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|t| t.split_once('='))
        .collect();
    let num = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Case {
        name: f["name"].to_string(),
        op: f.get("op").unwrap_or(&"sendfile").to_string(),
        source: f["source"].to_string(),
        path: f.get("path").unwrap_or(&"-").to_string(),
        size: num("size"),
        offset: num("offset"),
        count: f.get("count").and_then(|v| v.parse().ok()),
        fallback: f.get("fallback") != Some(&"0"),
        dest: f["dest"].to_string(),
        action: f.get("action").unwrap_or(&"none").to_string(),
        at: num("at"),
    }
}

fn content(start: u64, n: usize) -> Vec<u8> {
    (start..start + n as u64)
        .map(|i| (i.wrapping_mul(31) + (i >> 12)) as u8)
        .collect()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: p has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

/// What the receiver got, from its thread.
struct Received {
    len: u64,
    sha256: String,
}

/// Reads @r to its end; with an action, stops at @at bytes: a reset closes with
/// SO_LINGER 0, a cancel signals @reached and waits for @resume before reading on.
fn receive(
    mut r: File,
    action: String,
    at: u64,
    reached: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
) -> Received {
    let mut h = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut stop_at = action != "none";
    loop {
        let want = if stop_at {
            buf.len().min((at - len) as usize)
        } else {
            buf.len()
        };
        let n = match r.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        h.update(&buf[..n]);
        len += n as u64;
        if stop_at && len == at {
            stop_at = false;
            if action == "reset" {
                let lg = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid socket and a linger struct of the right size.
                unsafe {
                    libc::setsockopt(
                        r.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &lg as *const _ as *const libc::c_void,
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                break;
            }
            let _ = reached.send(());
            let _ = resume.recv();
        }
    }
    Received {
        len,
        sha256: format!("{:x}", h.finalize()),
    }
}

fn status_name(r: &Reply) -> String {
    r.status.name().to_ascii_lowercase()
}

/// A ping case: who answers, through `Client::ping`.
fn run_ping(client: &mut Client, k: &Case) -> String {
    match client.ping() {
        Ok(info) => {
            let features: Vec<String> = info
                .features
                .iter()
                .map(|f| format!("\"{}\"", f.name()))
                .collect();
            format!(
                r#"{{"client":"rust","case":"{}","status":"ok","protocol_version":{},"daemon_version":"{}","features":[{}],"error":""}}"#,
                k.name,
                info.protocol_version,
                info.daemon_version,
                features.join(",")
            )
        }
        Err(e) => format!(
            r#"{{"client":"rust","case":"{}","status":"call_failed","error":"{}"}}"#,
            k.name,
            e.to_string().replace('"', "'")
        ),
    }
}

fn run_case(client: &mut Client, rt: &tokio::runtime::Runtime, k: &Case, tmp: &str) -> String {
    if k.op == "ping" {
        return run_ping(client, k);
    }
    // The source.
    let mut writer = None;
    let src: File = match k.source.as_str() {
        "file" => {
            let p = PathBuf::from(tmp).join(format!("src-{}", k.name));
            let mut f = File::create(&p).expect("create source");
            let mut done = 0u64;
            while done < k.size {
                let n = (k.size - done).min(1 << 20) as usize;
                f.write_all(&content(done, n)).expect("write source");
                done += n as u64;
            }
            drop(f);
            let f = File::open(&p).expect("open source");
            std::fs::remove_file(&p).ok();
            f
        }
        "pipe" => {
            let (r, w) = pipe();
            let size = k.size;
            writer = Some(thread::spawn(move || {
                let mut w = File::from(w);
                let _ = w.write_all(&content(0, size as usize));
            }));
            File::from(r)
        }
        _ => File::open(&k.path).expect("open /proc source"),
    };

    // The destination, and its reading end on a thread.
    let (reached_tx, reached_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let mut append_path = None;
    let (dst, rcv): (OwnedFd, Option<File>) = match k.dest.as_str() {
        "tcp" => {
            let l = TcpListener::bind("127.0.0.1:0").expect("listen");
            let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (s, _) = l.accept().expect("accept");
            (c.into(), Some(File::from(OwnedFd::from(s))))
        }
        "unix" => {
            let (a, b) = UnixStream::pair().expect("socketpair");
            (a.into(), Some(File::from(OwnedFd::from(b))))
        }
        "pipe" => {
            let (r, w) = pipe();
            (w, Some(File::from(r)))
        }
        _ => {
            let p = PathBuf::from(tmp).join(format!("dst-{}", k.name));
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_APPEND)
                .open(&p)
                .expect("open append destination");
            append_path = Some(p);
            (f.into(), None)
        }
    };
    let receiver = rcv.map(|r| {
        let (action, at) = (k.action.clone(), k.at);
        thread::spawn(move || receive(r, action, at, reached_tx, resume_rx))
    });

    let opts = SendOptions::new().fallback(k.fallback);
    let outcome: Result<Reply, Error> = if k.action == "cancel" {
        rt.block_on(async {
            let c = AsyncClient::connect_default().await?;
            let t = c.submit(&dst, &src, k.offset, k.count, opts).await?;
            let canceller = t.canceller();
            tokio::task::spawn_blocking(move || reached_rx.recv())
                .await
                .ok();
            canceller.cancel().await?;
            t.await
        })
    } else {
        client.sendfile(&dst, &src, k.offset, k.count, opts)
    };

    // SAFETY: lseek on a descriptor this function owns.
    let pos = unsafe { libc::lseek(src.as_raw_fd(), 0, libc::SEEK_CUR) };
    if k.dest == "tcp" {
        // SAFETY: dst is a TCP socket this function owns; shutting down the write
        // side lets the receiver see the end.
        unsafe { libc::shutdown(dst.as_raw_fd(), libc::SHUT_WR) };
    }
    drop(dst);
    let _ = resume_tx.send(());
    let got = match receiver {
        Some(t) => t.join().expect("receiver"),
        None => {
            let p = append_path.expect("append destination");
            let mut data = Vec::new();
            File::open(&p)
                .and_then(|mut f| f.read_to_end(&mut data))
                .ok();
            std::fs::remove_file(&p).ok();
            Received {
                len: data.len() as u64,
                sha256: format!("{:x}", Sha256::digest(&data)),
            }
        }
    };
    drop(src);
    if let Some(w) = writer {
        w.join().ok();
    }

    let (status, bytes, final_offset, method, error) = match &outcome {
        Ok(r) => (
            status_name(r),
            r.bytes_sent,
            r.final_offset,
            Some(r),
            String::new(),
        ),
        Err(e) => match e.reply() {
            Some(r) => (
                status_name(r),
                r.bytes_sent,
                r.final_offset,
                Some(r),
                e.to_string(),
            ),
            None => ("call_failed".into(), 0, 0, None, e.to_string()),
        },
    };
    let method = match method.map(|r| r.method.name()) {
        Some("none") | None => "null".to_string(),
        Some(m) => format!("\"{m}\""),
    };
    let position = if pos < 0 {
        "null".to_string()
    } else {
        pos.to_string()
    };
    format!(
        "{{\"client\":\"rust\",\"case\":\"{}\",\"status\":\"{}\",\"bytes\":{},\"final_offset\":{},\
         \"position\":{},\"method\":{},\"received_len\":{},\"received_sha256\":\"{}\",\"error\":{:?}}}",
        k.name, status, bytes, final_offset, position, method, got.len, got.sha256, error
    )
}

fn main() {
    // SAFETY: ignoring SIGPIPE is process-wide and done before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let tmp = std::env::var("CONFORMANCE_TMP").unwrap_or_else(|_| "/tmp".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut client = Client::connect_default().expect("connect to the daemon");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        println!("{}", run_case(&mut client, &rt, &parse(&line), &tmp));
        std::io::stdout().flush().ok();
    }
}
