//! The blocking client against a real daemon: the semantics matrix, with the bytes the
//! receiver got (sha256), the file positions and the descriptor counts checked.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use sendfiled::{Client, Error, Feature, Method, SendOptions, Status};

/// Run `f` with a fresh daemon and a client of it; afterwards, the daemon's descriptors
/// and this process's must be back to what they were.
fn run(f: impl FnOnce(&mut Daemon, &mut Client)) {
    let _g = serial();
    let fds = FdCheck::new();
    let mut d = Daemon::start();
    {
        let mut c = Client::connect(&d.path).unwrap();
        f(&mut d, &mut c);
    }
    if d.running() {
        assert_eq!(d.wait_fd_count(d.base), d.base, "daemon descriptors");
    }
    drop(d);
    fds.assert_same();
}

fn opts() -> SendOptions {
    SendOptions::new()
}

#[test]
fn whole_file() {
    run(|_, c| {
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, None, opts()).unwrap();
        assert_eq!(r.status, Status::Ok);
        assert_eq!((r.bytes_sent, r.final_offset), (100 * KIB, 100 * KIB));
        assert_eq!(r.method, Method::Sendfile);
        assert!(!r.short_source);
        assert_eq!(position(&f), 100 * KIB);
        assert_eq!(peer.finish(), Received::expected(0, 100 * KIB));
    });
}

#[test]
fn ranges() {
    let len = 100 * KIB;
    // (offset, count, bytes sent, short_source)
    let cases = [
        (0, Some(1), 1, false),
        (1000, Some(5000), 5000, false),
        (4096, None, len - 4096, false),
        (len - 10, Some(100), 10, true), // count past end of file
        (len, None, 0, false),           // offset at end of file
        (len + 1000, Some(10), 0, true), // offset past end of file
        (len + 1000, None, 0, false),
    ];
    run(|_, c| {
        for (offset, count, sent, short) in cases {
            let f = File::open(&files().small).unwrap();
            seek(&f, 77);
            let peer = Peer::new();
            let r = c.sendfile(&peer.client, &f, offset, count, opts()).unwrap();
            let what = format!("offset {offset} count {count:?}: {r:?}");
            assert_eq!(r.bytes_sent, sent, "{what}");
            assert_eq!(r.final_offset, offset + sent, "{what}");
            assert_eq!(r.short_source, short, "{what}");
            // The position moves only when something was sent.
            let pos = if sent > 0 { offset + sent } else { 77 };
            assert_eq!(position(&f), pos, "{what}");
            assert_eq!(peer.finish(), Received::expected(offset, sent), "{what}");
        }
    });
}

#[test]
fn empty_file() {
    run(|_, c| {
        let f = File::open(&files().empty).unwrap();
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, None, opts()).unwrap();
        assert_eq!((r.bytes_sent, r.final_offset), (0, 0));
        assert_eq!(position(&f), 0);
        assert_eq!(peer.finish().len, 0);
    });
}

#[test]
fn invalid_count() {
    run(|_, c| {
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let e = c
            .sendfile(&peer.client, &f, 0, Some(0), opts())
            .unwrap_err();
        assert!(matches!(e, Error::Failed(_)), "{e:?}");
        assert_eq!(e.status(), Some(Status::InvalidArgument));
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidInput);
        assert_eq!(peer.finish().len, 0);
    });
}

#[test]
fn pipe_source() {
    run(|_, c| {
        let (r, mut w) = io::pipe().unwrap();
        let data = content(5, 3000);
        let writer = {
            let data = data.clone();
            thread::spawn(move || w.write_all(&data).unwrap())
        };
        let peer = Peer::new();
        let rep = c.sendfile(&peer.client, &r, 0, None, opts()).unwrap();
        writer.join().unwrap();
        assert_eq!(rep.bytes_sent, 3000);
        assert_eq!(rep.method, Method::Splice);
        drop(r);
        assert_eq!(peer.finish(), Received::of(&data));
    });
}

#[test]
fn proc_source_with_and_without_fallback() {
    run(|_, c| {
        let mut head = vec![0; 20];
        File::open("/proc/self/status")
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        let f = File::open("/proc/self/status").unwrap();
        let peer = Peer::new();
        let e = c
            .sendfile(&peer.client, &f, 0, Some(20), opts().fallback(false))
            .unwrap_err();
        assert!(matches!(e, Error::NotAvailable(_)), "{e:?}");
        assert_eq!(e.bytes_sent(), 0);
        assert_eq!(position(&f), 0);
        let r = c.sendfile(&peer.client, &f, 0, Some(20), opts()).unwrap();
        assert_eq!(r.bytes_sent, 20);
        assert_eq!(r.method, Method::ReadWrite);
        assert_eq!(position(&f), 20);
        assert_eq!(peer.finish(), Received::of(&head));
    });
}

#[test]
fn append_file_destination() {
    run(|_, c| {
        let dir = TempDir::new("append");
        let p = dir.path().join("out");
        fs::write(&p, b"head").unwrap();
        let dst = OpenOptions::new().append(true).open(&p).unwrap();
        let f = File::open(&files().small).unwrap();
        let e = c
            .sendfile(&dst, &f, 0, Some(1000), opts().fallback(false))
            .unwrap_err();
        assert_eq!(e.status(), Some(Status::NotAvailable), "{e:?}");
        assert_eq!(fs::read(&p).unwrap(), b"head");
        assert_eq!(position(&f), 0);
        let r = c.sendfile(&dst, &f, 0, Some(1000), opts()).unwrap();
        assert_eq!((r.bytes_sent, r.method), (1000, Method::ReadWrite));
        assert_eq!(position(&f), 1000);
        let mut want = b"head".to_vec();
        want.extend(content(0, 1000));
        assert_eq!(fs::read(&p).unwrap(), want);
    });
}

#[test]
fn receiver_reset_mid_transfer() {
    run(|_, c| {
        let mut peer = Peer::idle(Some(64 * 1024));
        let mut server = peer.server.take().unwrap();
        let resetter = thread::spawn(move || {
            let mut got = 0;
            let mut buf = vec![0; 65536];
            while got < 256 * 1024 {
                got += server.read(&mut buf).unwrap();
            }
            reset(server);
        });
        let f = File::open(&files().medium).unwrap();
        let e = c.sendfile(&peer.client, &f, 10, None, opts()).unwrap_err();
        resetter.join().unwrap();
        assert!(matches!(e, Error::PeerClosed(_)), "{e:?}");
        let r = e.reply().unwrap();
        assert!(
            r.bytes_sent >= 256 * 1024 && r.bytes_sent < 32 * MIB,
            "{r:?}"
        );
        assert_eq!(r.final_offset, 10 + r.bytes_sent);
        assert_eq!(position(&f), 10 + r.bytes_sent);
        assert_eq!(r.method, Method::Sendfile);
        assert!(matches!(
            e.errno(),
            Some(libc::EPIPE) | Some(libc::ECONNRESET)
        ));
        let kind = io::Error::from(e).kind();
        assert!(
            matches!(
                kind,
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{kind:?}"
        );
    });
}

#[test]
fn timeout_cancels_and_settles_the_position() {
    run(|_, c| {
        let peer = Peer::idle(Some(64 * 1024));
        let f = File::open(&files().medium).unwrap();
        let o = opts().timeout(Some(Duration::from_millis(300)));
        let e = c.sendfile(&peer.client, &f, 100, None, o).unwrap_err();
        let Error::TimedOut(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.status, Status::Cancelled);
        assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
        let pos = position(&f);
        assert!(pos > 100 && pos < 100 + 32 * MIB, "{pos}");
        assert_eq!(r.final_offset, pos);
        assert_eq!(r.bytes_sent, pos - 100);
        // The receiver gets exactly what the reply says was sent.
        assert_eq!(peer.finish(), Received::expected(100, pos - 100));
        // The client goes on working.
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, Some(10), opts()).unwrap();
        assert_eq!(r.bytes_sent, 10);
        assert_eq!(peer.finish(), Received::expected(0, 10));
    });
}

/// A Ping in the documented bytes (id 3) on a connection of its own: the daemon's own
/// word, decoded but not interpreted by the crate.
fn raw_ping(path: &std::path::Path) -> sendfiled::wire::PingInfo {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sa.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        assert_eq!(
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        let req = [0x08u8, 0x03, 0x22, 0x00];
        assert_eq!(libc::send(fd, req.as_ptr().cast(), req.len(), 0), 4);
        let mut buf = [0u8; 4096];
        let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
        libc::close(fd);
        assert!(n > 0);
        let r = sendfiled::wire::Response::decode(&buf[..n as usize]).unwrap();
        assert_eq!(r.id, 3);
        r.ping.expect("a Ping's reply carries PingInfo")
    }
}

/// Who answers: protocol 1, the version `sendfiled --version` prints, known features
/// only; a ping amid a transfer changes nothing for it.
#[test]
fn ping_says_who_answers() {
    run(|_d, c| {
        let info = c.ping().unwrap();
        assert_eq!(info.protocol_version, 1);
        assert_eq!(info.daemon_version, daemon_version_printed());
        // Exactly the features the daemon lists that this crate knows: whichever they
        // are today.
        let said = raw_ping(c.path());
        let known: std::collections::BTreeSet<Feature> = said
            .features
            .iter()
            .filter_map(|&v| Feature::from_wire(v))
            .collect();
        assert_eq!(info.features, known);
        assert_eq!(said.daemon_version, info.daemon_version);
        assert_eq!(c.ping().unwrap(), info);
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, None, opts()).unwrap();
        assert_eq!(c.ping().unwrap(), info);
        assert_eq!(r.bytes_sent, 100 * KIB);
        assert_eq!(peer.finish(), Received::expected(0, 100 * KIB));
    });
}

#[test]
fn ping_and_default_path() {
    run(|d, c| {
        c.ping().unwrap();
        assert_eq!(c.path(), d.path);
        std::env::set_var("SENDFILED_SOCKET", &d.path);
        assert_eq!(sendfiled::default_socket_path(), d.path);
        let mut c2 = Client::connect_default().unwrap();
        c2.ping().unwrap();
        std::env::remove_var("SENDFILED_SOCKET");
    });
}

#[test]
fn no_daemon() {
    let _g = serial();
    let dir = TempDir::new("none");
    let p = dir.path().join("none.sock");
    let e = Client::connect(&p).unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert_eq!(e.errno(), Some(libc::ENOENT));
    assert!(e.to_string().contains("none.sock"));
}

/// Transfers go on while the daemon is restarted twice: each gets its full answer,
/// either from the old daemon or, sent again on a new connection, from the new one.
#[test]
fn daemon_restarted_mid_run() {
    run(|d, _| {
        let stop = Arc::new(AtomicBool::new(false));
        let path = d.path.clone();
        let worker = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = Client::connect(&path).unwrap();
                let f = File::open(&files().small).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let off = n % 1000;
                    let peer = Peer::new();
                    let r = c
                        .sendfile(&peer.client, &f, off, Some(4096), opts())
                        .unwrap_or_else(|e| panic!("transfer {n}: {e}"));
                    assert_eq!(r.bytes_sent, 4096);
                    assert_eq!(peer.finish(), Received::expected(off, 4096));
                    n += 1;
                }
                n
            })
        };
        for _ in 0..2 {
            thread::sleep(Duration::from_millis(300));
            d.stop();
            d.spawn();
        }
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let n = worker.join().unwrap();
        assert!(n > 0);
    });
}

/// A daemon that is draining answers SHUTTING_DOWN; the blocking client sends the
/// request again on a new connection, served by the next daemon on the same socket.
#[test]
fn shutting_down_is_retried_on_the_next_daemon() {
    let _g = serial();
    let fds = FdCheck::new();
    let mut d1 = Daemon::start_with(&["--drain-timeout", "60000"]);
    let path = d1.path.clone();
    // A transfer the old daemon has to drain: nobody reads its receiver yet.
    let mut stuck = Peer::idle(Some(64 * 1024));
    let t_stuck = {
        let dst = stuck.client.try_clone().unwrap();
        let path = path.clone();
        thread::spawn(move || {
            let mut a = Client::connect(&path).unwrap();
            let f = File::open(&files().medium).unwrap();
            let r = a.sendfile(&dst, &f, 0, None, opts());
            (r, position(&f))
        })
    };
    let mut b = Client::connect(&path).unwrap();
    b.ping().unwrap();
    // Wait until the stuck transfer is in flight, then stop the daemon.
    let mut probe = [0u8; 1];
    stuck.server.as_ref().unwrap().peek(&mut probe).unwrap();
    d1.terminate();
    d1.wait_log("stopping");
    let t_b = thread::spawn(move || {
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let r = b.sendfile(&peer.client, &f, 0, None, opts());
        (r, peer.finish())
    });
    thread::sleep(Duration::from_millis(200));
    let d2 = Daemon::start_at(TempDir::new("d2"), path, &[]);
    let (r, got) = t_b.join().unwrap();
    assert_eq!(r.unwrap().bytes_sent, 100 * KIB);
    assert_eq!(got, Received::expected(0, 100 * KIB));
    // The old daemon finishes its transfer once the receiver reads.
    stuck.start();
    let (r, pos) = t_stuck.join().unwrap();
    assert_eq!(r.unwrap().bytes_sent, 32 * MIB);
    assert_eq!(pos, 32 * MIB);
    assert_eq!(stuck.finish(), Received::expected(0, 32 * MIB));
    d1.stop();
    // The same daemon, with a client that connected while it started.
    assert_eq!(d2.wait_fd_count(d1.base), d1.base);
    drop(d2);
    drop(d1);
    fds.assert_same();
}
