//! The edges of a daemon restart that a real daemon shows only by chance: a daemon that
//! closes the connection with the request unread (it may be sent again), and one that
//! read it and then went away (it must not be). A stand-in listener plays the old daemon;
//! a real daemon on the same path then serves what is sent again.

mod common;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::thread;

use common::*;
use sendfiled::{AsyncClient, Client, Error, SendOptions};

/// A SOCK_SEQPACKET listener at `path` that never answers.
fn stand_in(path: &Path) -> OwnedFd {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain system calls on a descriptor owned here; sockaddr_un is filled
    // within its bounds.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sa.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len
            ),
            0
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 8), 0);
        fd
    }
}

fn accept(l: &OwnedFd) -> OwnedFd {
    // SAFETY: a plain system call; the result is owned here.
    unsafe {
        let fd = libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        );
        assert!(fd >= 0, "accept: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    }
}

/// Wait until a record is waiting on `fd`.
fn wait_readable(fd: &OwnedFd) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, PATIENCE.as_millis() as i32) };
    assert_eq!(n, 1, "no request came");
}

/// Read one record, as a daemon that started on it would have.
fn read_record(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    // SAFETY: a plain system call into a local buffer. Descriptors that came with the
    // record are discarded by the kernel without MSG_CMSG space: none stay open here.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert!(n > 0);
}

#[test]
fn unread_request_is_sent_again_blocking() {
    let _g = serial();
    let base = Daemon::clean_base();
    let fds = FdCheck::new();
    let dir = TempDir::new("edge");
    let path = dir.path().join("sendfiled.sock");
    let l = stand_in(&path);
    let mut c = Client::connect(&path).unwrap();
    let t = thread::spawn(move || {
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, Some(5000), SendOptions::new());
        (r, position(&f), peer.finish())
    });
    let conn = accept(&l);
    wait_readable(&conn);
    // Go away with the request unread, and let a real daemon take the socket.
    drop(conn);
    drop(l);
    std::fs::remove_file(&path).unwrap();
    let d = Daemon::start_at(TempDir::new("d"), path, &[]);
    let (r, pos, got) = t.join().unwrap();
    assert_eq!(r.unwrap().bytes_sent, 5000);
    assert_eq!(pos, 5000);
    assert_eq!(got, Received::expected(0, 5000));
    assert_eq!(d.wait_fd_count(base), base);
    drop(d);
    drop(dir);
    fds.assert_same();
}

#[test]
fn read_request_is_not_sent_again_blocking() {
    let _g = serial();
    let base = Daemon::clean_base();
    let fds = FdCheck::new();
    let dir = TempDir::new("edge");
    let path = dir.path().join("sendfiled.sock");
    let l = stand_in(&path);
    let mut c = Client::connect(&path).unwrap();
    let t = thread::spawn(move || {
        let f = File::open(&files().small).unwrap();
        let peer = Peer::new();
        let r = c.sendfile(&peer.client, &f, 0, Some(5000), SendOptions::new());
        // A daemon on the path now must not have been asked to send anything.
        (r, position(&f), peer.finish(), c)
    });
    let conn = accept(&l);
    wait_readable(&conn);
    read_record(&conn);
    std::fs::remove_file(&path).unwrap();
    let d = Daemon::start_at(TempDir::new("d"), path.clone(), &[]);
    drop(conn);
    drop(l);
    let (r, pos, got, mut c) = t.join().unwrap();
    let e = r.unwrap_err();
    // Read, then no reply: the outcome is the position's (nothing here).
    assert!(
        matches!(e, Error::OutcomeUnknown { bytes_sent: 0, .. }),
        "{e:?}"
    );
    assert_eq!(pos, 0);
    assert_eq!(got.len, 0);
    // The next request goes to the new daemon.
    c.ping().unwrap();
    drop(c);
    assert_eq!(d.wait_fd_count(base), base);
    drop(d);
    drop(dir);
    fds.assert_same();
}

#[test]
fn unread_request_is_sent_again_async() {
    let _g = serial();
    let base = Daemon::clean_base();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    // Tokio's signal driver keeps a socket pair for the life of the process, made with
    // the first runtime: make it before the descriptors are counted.
    drop(runtime());
    let fds = FdCheck::new();
    let dir = TempDir::new("edge");
    let path = dir.path().join("sendfiled.sock");
    let l = stand_in(&path);
    let f = File::open(&files().small).unwrap();
    let peer = Peer::new();
    let rt = runtime();
    let c = rt.block_on(AsyncClient::connect(&path)).unwrap();
    let task = {
        let (f, dst) = (f.try_clone().unwrap(), peer.client.try_clone().unwrap());
        rt.spawn(async move {
            c.sendfile(&dst, &f, 7, Some(5000), SendOptions::new())
                .await
        })
    };
    let conn = accept(&l);
    wait_readable(&conn);
    drop(conn);
    drop(l);
    std::fs::remove_file(&path).unwrap();
    let d = Daemon::start_at(TempDir::new("d"), path, &[]);
    let r = rt.block_on(task).unwrap();
    assert_eq!(r.unwrap().bytes_sent, 5000);
    assert_eq!(position(&f), 5007);
    assert_eq!(peer.finish(), Received::expected(7, 5000));
    drop(rt);
    assert_eq!(d.wait_fd_count(base), base);
    drop(d);
    drop(f);
    drop(dir);
    fds.assert_same();
}

/// Bytes waiting in a SOCK_SEQPACKET socket's receive queue, all records together.
fn queued(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCINQ writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0);
    n as usize
}

fn wait_queued(fd: &OwnedFd, n: usize) {
    let t0 = std::time::Instant::now();
    while queued(fd) < n {
        assert!(t0.elapsed() < PATIENCE, "requests did not come");
        thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// With two requests unread when the connection ends, only the last one sent is known to
/// be unread (records are read in order): that one is sent again, the other fails.
#[test]
fn only_the_last_unread_request_is_sent_again_async() {
    use sendfiled::wire::Request;
    let _g = serial();
    let base = Daemon::clean_base();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    drop(runtime());
    let fds = FdCheck::new();
    let dir = TempDir::new("edge");
    let path = dir.path().join("sendfiled.sock");
    let l = stand_in(&path);
    let f1 = File::open(&files().small).unwrap();
    let f2 = File::open(&files().small).unwrap();
    let (p1, p2) = (Peer::new(), Peer::new());
    let rt = runtime();
    let c = rt.block_on(AsyncClient::connect(&path)).unwrap();
    let conn = accept(&l);
    let len = |id, offset| {
        Request::Sendfile {
            id,
            offset,
            count: Some(5000),
            fallback: true,
            limits: Default::default(),
        }
        .encode()
        .len()
    };
    let spawn = |f: &File, p: &Peer, offset| {
        let (f, dst, c) = (
            f.try_clone().unwrap(),
            p.client.try_clone().unwrap(),
            c.clone(),
        );
        rt.spawn(async move {
            c.sendfile(&dst, &f, offset, Some(5000), SendOptions::new())
                .await
        })
    };
    let t1 = spawn(&f1, &p1, 1);
    wait_queued(&conn, len(1, 1));
    let t2 = spawn(&f2, &p2, 2);
    wait_queued(&conn, len(1, 1) + len(2, 2));
    drop(conn);
    drop(l);
    std::fs::remove_file(&path).unwrap();
    let d = Daemon::start_at(TempDir::new("d"), path, &[]);
    let e = rt.block_on(t1).unwrap().unwrap_err();
    // Read, then no reply: the outcome is the position's (nothing here).
    assert!(
        matches!(e, Error::OutcomeUnknown { bytes_sent: 0, .. }),
        "{e:?}"
    );
    assert_eq!(rt.block_on(t2).unwrap().unwrap().bytes_sent, 5000);
    assert_eq!((position(&f1), position(&f2)), (0, 5002));
    assert_eq!(p1.finish().len, 0);
    assert_eq!(p2.finish(), Received::expected(2, 5000));
    drop((rt, c));
    assert_eq!(d.wait_fd_count(base), base);
    drop(d);
    drop((f1, f2, dir));
    fds.assert_same();
}

/// A daemon killed mid-transfer: `Error::OutcomeUnknown`, and the file position, the
/// error's `bytes_sent` and what the receiver got all agree.
#[test]
fn killed_mid_transfer_position_tells() {
    use std::io::Read;
    let _g = serial();
    let fds = FdCheck::new();
    let dir = TempDir::new("killed");
    let src = make_file(dir.path(), "big", 64 * MIB);
    let mut d = Daemon::start();
    let mut c = Client::connect(&d.path).unwrap();
    let f = File::open(&src).unwrap();
    let mut peer = Peer::idle(None);
    let mut server = peer.server.take().unwrap();
    let (f2, dst) = (f.try_clone().unwrap(), peer.client.try_clone().unwrap());
    let t = thread::spawn(move || {
        let r = c.sendfile(&dst, &f2, 4096, None, SendOptions::new());
        drop(dst);
        r
    });
    // A first byte: the transfer has begun.
    let mut got = vec![0u8; 1];
    server.read_exact(&mut got).unwrap();
    d.kill();
    let e = t.join().unwrap().unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e:?}");
    assert_eq!(e.errno(), Some(libc::ECONNRESET));
    drop(peer);
    server.read_to_end(&mut got).unwrap();
    let n = got.len() as u64;
    assert!(n > 1 && n < 64 * MIB - 4096, "{n}");
    assert_eq!(position(&f), 4096 + n);
    assert_eq!(e.bytes_sent(), n);
    assert!(got == content(4096, n), "the receiver got other bytes");
    drop((server, f, dir));
    fds.assert_same();
}
