//! The tokio client against a real daemon: the semantics matrix, many transfers in
//! flight, cancellation by drop and by request, daemon restarts; with the bytes the
//! receivers got (sha256), the file positions and the descriptor counts checked.

mod common;

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sendfiled::{AsyncClient, Error, Method, SendOptions, Status};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Tokio's signal driver keeps a socket pair for the life of the process, made with the
/// first runtime: make it before the descriptors are counted.
fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(runtime()));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Run `f` on a fresh runtime with a fresh daemon; afterwards, the daemon's descriptors
/// and this process's must be back to what they were.
fn run<Fut: Future<Output = ()>>(f: impl FnOnce(PathBuf) -> Fut) {
    let _g = serial();
    warm_up();
    let fds = FdCheck::new();
    let d = Daemon::start();
    {
        let rt = runtime();
        rt.block_on(f(d.path.clone()));
    }
    assert_eq!(d.wait_fd_count(d.base), d.base, "daemon descriptors");
    drop(d);
    fds.assert_same();
}

fn opts() -> SendOptions {
    SendOptions::new()
}

async fn read_all(mut s: TcpStream) -> Received {
    let mut h = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0; 256 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                len += n as u64;
            }
        }
    }
    Received {
        len,
        sha256: h.finalize().into(),
    }
}

/// A TCP connection: `client` goes to the daemon, the other end is read by a task (or
/// kept in `server` by `idle`).
struct APeer {
    client: TcpStream,
    server: Option<TcpStream>,
    reader: Option<JoinHandle<Received>>,
}

impl APeer {
    async fn new() -> APeer {
        let mut p = APeer::idle(None).await;
        p.start();
        p
    }

    async fn idle(rcvbuf: Option<i32>) -> APeer {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = l.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
        let (server, _) = accepted.unwrap();
        if let Some(n) = rcvbuf {
            setsockopt_int(&server, libc::SOL_SOCKET, libc::SO_RCVBUF, n);
        }
        APeer {
            client: client.unwrap(),
            server: Some(server),
            reader: None,
        }
    }

    fn start(&mut self) {
        let s = self.server.take().unwrap();
        self.reader = Some(tokio::spawn(read_all(s)));
    }

    async fn finish(mut self) -> Received {
        if self.reader.is_none() {
            self.start();
        }
        drop(self.client);
        self.reader.take().unwrap().await.unwrap()
    }

    /// Wait until the receiver has data waiting (a transfer is under way).
    async fn wait_data(&self) {
        let s = self.server.as_ref().unwrap();
        let mut b = [0u8; 1];
        s.peek(&mut b).await.unwrap();
    }
}

#[test]
fn whole_file_and_ranges() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let len = 100 * KIB;
        for (offset, count, sent, short) in [
            (0, None, len, false),
            (1000, Some(5000), 5000, false),
            (len - 10, Some(100), 10, true),
            (len + 5, Some(10), 0, true),
            (len + 5, None, 0, false),
        ] {
            let f = File::open(&files().small).unwrap();
            seek(&f, 77);
            let peer = APeer::new().await;
            let r = c
                .sendfile(&peer.client, &f, offset, count, opts())
                .await
                .unwrap();
            let what = format!("offset {offset} count {count:?}: {r:?}");
            assert_eq!(
                (r.bytes_sent, r.final_offset),
                (sent, offset + sent),
                "{what}"
            );
            assert_eq!(r.short_source, short, "{what}");
            if sent > 0 {
                assert_eq!(r.method, Method::Sendfile, "{what}");
            }
            let pos = if sent > 0 { offset + sent } else { 77 };
            assert_eq!(position(&f), pos, "{what}");
            assert_eq!(
                peer.finish().await,
                Received::expected(offset, sent),
                "{what}"
            );
        }
        let f = File::open(&files().empty).unwrap();
        let peer = APeer::new().await;
        let r = c.sendfile(&peer.client, &f, 0, None, opts()).await.unwrap();
        assert_eq!((r.bytes_sent, position(&f)), (0, 0));
        assert_eq!(peer.finish().await.len, 0);
    });
}

#[test]
fn pipe_and_proc_sources() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let (r, mut w) = std::io::pipe().unwrap();
        let data = content(9, 5000);
        std::io::Write::write_all(&mut w, &data).unwrap();
        drop(w);
        let peer = APeer::new().await;
        let rep = c.sendfile(&peer.client, &r, 0, None, opts()).await.unwrap();
        assert_eq!((rep.bytes_sent, rep.method), (5000, Method::Splice));
        drop(r);
        assert_eq!(peer.finish().await, Received::of(&data));

        let mut head = vec![0; 20];
        File::open("/proc/self/status")
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        let f = File::open("/proc/self/status").unwrap();
        let peer = APeer::new().await;
        let e = c
            .sendfile(&peer.client, &f, 0, Some(20), opts().fallback(false))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotAvailable(_)), "{e:?}");
        assert_eq!((e.bytes_sent(), position(&f)), (0, 0));
        let r = c
            .sendfile(&peer.client, &f, 0, Some(20), opts())
            .await
            .unwrap();
        assert_eq!((r.bytes_sent, r.method), (20, Method::ReadWrite));
        assert_eq!(position(&f), 20);
        assert_eq!(peer.finish().await, Received::of(&head));
    });
}

/// 200 transfers in flight on one client, each its own range of the file, its own open
/// file and its own receiver.
#[test]
fn two_hundred_concurrent_transfers() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u64 {
            let c = c.clone();
            tasks.spawn(async move {
                let f = File::open(&files().medium).unwrap();
                let (offset, count) = (i * 100_003, 64 * KIB + i);
                let peer = APeer::new().await;
                let r = c
                    .sendfile(&peer.client, &f, offset, Some(count), opts())
                    .await
                    .unwrap();
                assert_eq!(r.bytes_sent, count, "transfer {i}");
                assert_eq!(position(&f), offset + count, "transfer {i}");
                assert_eq!(peer.finish().await, Received::expected(offset, count));
                r.id
            });
        }
        let mut ids = Vec::new();
        while let Some(r) = tasks.join_next().await {
            ids.push(r.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    });
}

#[test]
fn dropping_the_future_cancels() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let peer = APeer::idle(Some(64 * 1024)).await;
        let f = File::open(&files().medium).unwrap();
        let fut = c.sendfile(&peer.client, &f, 0, None, opts());
        let r = tokio::time::timeout(Duration::from_millis(300), fut).await;
        assert!(r.is_err(), "the transfer cannot finish: {r:?}");
        // Requests on a connection are read in order: once the Ping is answered, the
        // Cancel sent on drop has been handled and the position settled.
        let info = c.ping().await.unwrap();
        assert_eq!(info.protocol_version, 1);
        assert_eq!(info.daemon_version, daemon_version_printed());
        let pos = position(&f);
        assert!(pos > 0 && pos < 32 * MIB, "{pos}");
        assert_eq!(peer.finish().await, Received::expected(0, pos));
    });
}

#[test]
fn explicit_cancel() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let peer = APeer::idle(Some(64 * 1024)).await;
        let f = File::open(&files().medium).unwrap();
        let t = c
            .submit(&peer.client, &f, 1000, None, opts())
            .await
            .unwrap();
        peer.wait_data().await;
        assert!(t.cancel().await.unwrap(), "it was in flight");
        let e = t.await.unwrap_err();
        let Error::Cancelled(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.errno, libc::ECANCELED);
        assert!(r.bytes_sent > 0);
        assert_eq!(position(&f), 1000 + r.bytes_sent);
        assert_eq!(r.final_offset, 1000 + r.bytes_sent);
        assert_eq!(peer.finish().await, Received::expected(1000, r.bytes_sent));

        // Cancelling what has finished finds nothing; the outcome stands.
        let peer = APeer::new().await;
        let t = c
            .submit(&peer.client, &f, 0, Some(10), opts())
            .await
            .unwrap();
        let canceller = t.canceller();
        let r = t.await.unwrap();
        assert_eq!(r.bytes_sent, 10);
        assert!(!canceller.cancel().await.unwrap());
        assert_eq!(peer.finish().await, Received::expected(0, 10));
    });
}

#[test]
fn timeout_option() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let peer = APeer::idle(Some(64 * 1024)).await;
        let f = File::open(&files().medium).unwrap();
        let o = opts().timeout(Some(Duration::from_millis(300)));
        let e = c.sendfile(&peer.client, &f, 0, None, o).await.unwrap_err();
        let Error::TimedOut(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.status, Status::Cancelled);
        assert_eq!(position(&f), r.bytes_sent);
        assert_eq!(peer.finish().await, Received::expected(0, r.bytes_sent));
    });
}

#[test]
fn receiver_reset_mid_transfer() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let mut peer = APeer::idle(Some(64 * 1024)).await;
        let mut server = peer.server.take().unwrap();
        let resetter = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = vec![0; 65536];
            while got < 256 * 1024 {
                got += server.read(&mut buf).await.unwrap();
            }
            linger0(&server);
            drop(server);
        });
        let f = File::open(&files().medium).unwrap();
        let e = c
            .sendfile(&peer.client, &f, 10, None, opts())
            .await
            .unwrap_err();
        resetter.await.unwrap();
        assert!(matches!(e, Error::PeerClosed(_)), "{e:?}");
        assert!(e.bytes_sent() >= 256 * 1024);
        assert_eq!(position(&f), 10 + e.bytes_sent());
        assert_eq!(e.reply().unwrap().final_offset, 10 + e.bytes_sent());
    });
}

/// A task sends one file after another while the daemon is restarted twice: every
/// transfer completes, on the old daemon or, sent again, on the new one.
#[test]
fn daemon_restarted_mid_run() {
    let _g = serial();
    warm_up();
    let fds = FdCheck::new();
    let mut d = Daemon::start();
    {
        let rt = runtime();
        let stop = Arc::new(AtomicBool::new(false));
        let c = rt.block_on(AsyncClient::connect(&d.path)).unwrap();
        let worker = rt.spawn({
            let stop = stop.clone();
            async move {
                let f = File::open(&files().small).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let off = n % 1000;
                    let peer = APeer::new().await;
                    let r = c
                        .sendfile(&peer.client, &f, off, Some(4096), opts())
                        .await
                        .unwrap_or_else(|e| panic!("transfer {n}: {e}"));
                    assert_eq!(r.bytes_sent, 4096);
                    assert_eq!(peer.finish().await, Received::expected(off, 4096));
                    n += 1;
                }
                n
            }
        });
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(300));
            d.stop();
            d.spawn();
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        assert!(rt.block_on(worker).unwrap() > 0);
    }
    assert_eq!(d.wait_fd_count(d.base), d.base);
    drop(d);
    fds.assert_same();
}

/// A draining daemon answers SHUTTING_DOWN: a submitted Transfer reports it, with
/// nothing sent; `sendfile` sends the request again on the next daemon.
#[test]
fn shutting_down() {
    let _g = serial();
    warm_up();
    let fds = FdCheck::new();
    let mut d1 = Daemon::start_with(&["--drain-timeout", "60000"]);
    let path = d1.path.clone();
    let d2 = {
        let rt = runtime();
        rt.block_on(async {
            let c = AsyncClient::connect(&path).await.unwrap();
            let mut stuck = APeer::idle(Some(64 * 1024)).await;
            let fm = File::open(&files().medium).unwrap();
            let t_stuck = c.submit(&stuck.client, &fm, 0, None, opts()).await.unwrap();
            stuck.wait_data().await;
            d1.terminate();
            d1.wait_log("stopping");

            let f = File::open(&files().small).unwrap();
            let peer = APeer::new().await;
            let e = c
                .submit(&peer.client, &f, 0, None, opts())
                .await
                .unwrap()
                .await
                .unwrap_err();
            assert!(matches!(e, Error::ShuttingDown(_)), "{e:?}");
            assert_eq!((e.bytes_sent(), position(&f)), (0, 0));

            let fut = c.sendfile(&peer.client, &f, 0, None, opts());
            let start_d2 = tokio::task::spawn_blocking({
                let path = path.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(200));
                    Daemon::start_at(TempDir::new("d2"), path, &[])
                }
            });
            let r = fut.await.unwrap();
            assert_eq!(r.bytes_sent, 100 * KIB);
            assert_eq!(position(&f), 100 * KIB);
            assert_eq!(peer.finish().await, Received::expected(0, 100 * KIB));

            // The old daemon still finishes its transfer, on the old connection.
            stuck.start();
            let r = t_stuck.await.unwrap();
            assert_eq!(r.bytes_sent, 32 * MIB);
            assert_eq!(stuck.finish().await, Received::expected(0, 32 * MIB));
            start_d2.await.unwrap()
        })
    };
    d1.stop();
    // The same daemon, with a client that connected while it started.
    assert_eq!(d2.wait_fd_count(d1.base), d1.base);
    drop(d2);
    drop(d1);
    fds.assert_same();
}

#[test]
fn client_dropped_with_transfers_in_flight() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let peer = APeer::idle(Some(64 * 1024)).await;
        let f = File::open(&files().medium).unwrap();
        let t = c.submit(&peer.client, &f, 0, None, opts()).await.unwrap();
        drop(c);
        // The transfer keeps the connection: it still completes.
        let mut peer = peer;
        peer.start();
        let r = t.await.unwrap();
        assert_eq!(r.bytes_sent, 32 * MIB);
        assert_eq!(peer.finish().await, Received::expected(0, 32 * MIB));
    });
}

/// The daemon killed (SIGKILL) while a submitted transfer to a stalled receiver is in
/// flight: the `Transfer` reports `OutcomeUnknown`, as the blocking client does, and the
/// file position, the error's `bytes_sent` and what the receiver got all agree.
#[test]
fn daemon_killed_mid_submitted_transfer() {
    let _g = serial();
    warm_up();
    let fds = FdCheck::new();
    let mut d = Daemon::start();
    {
        let rt = runtime();
        let c = rt.block_on(AsyncClient::connect(&d.path)).unwrap();
        let f = File::open(&files().medium).unwrap();
        let mut peer = rt.block_on(APeer::idle(Some(64 * 1024)));
        let t = rt
            .block_on(c.submit(&peer.client, &f, 4096, None, opts()))
            .unwrap();
        // The receiver reads nothing yet: the transfer stalls part way.
        rt.block_on(peer.wait_data());
        d.kill();
        let e = rt.block_on(t).unwrap_err();
        assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e:?}");
        assert_eq!(e.errno(), Some(libc::ECONNRESET));
        let got = rt.block_on(async {
            peer.start();
            peer.finish().await
        });
        let n = got.len;
        assert!(n > 0 && n < 32 * MIB - 4096, "{n}");
        assert_eq!(position(&f), 4096 + n);
        assert_eq!(e.bytes_sent(), n);
        assert_eq!(got, Received::expected(4096, n));
        // The same through `sendfile`, on a new daemon.
        d.spawn();
        let mut peer = rt.block_on(APeer::idle(Some(64 * 1024)));
        let e = rt.block_on(async {
            let send = c.sendfile(&peer.client, &f, 0, None, opts());
            tokio::pin!(send);
            tokio::select! {
                r = &mut send => panic!("finished early: {r:?}"),
                () = peer.wait_data() => {}
            }
            d.kill();
            send.await.unwrap_err()
        });
        assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e:?}");
        let got = rt.block_on(async {
            peer.start();
            peer.finish().await
        });
        assert!(got.len > 0 && got.len < 32 * MIB, "{}", got.len);
        assert_eq!(position(&f), got.len);
        assert_eq!(e.bytes_sent(), got.len);
        assert_eq!(got, Received::expected(0, got.len));
        drop((c, f));
    }
    drop(d);
    fds.assert_same();
}

/// `ping` says who answers, the same as the blocking client, while a transfer is in
/// flight on the same connection; that transfer still completes with the right bytes.
#[test]
fn ping_amid_transfers() {
    run(|path| async move {
        let c = AsyncClient::connect(&path).await.unwrap();
        let mut peer = APeer::idle(Some(64 * 1024)).await;
        let f = File::open(&files().medium).unwrap();
        let t = c.submit(&peer.client, &f, 0, None, opts()).await.unwrap();
        peer.wait_data().await;
        let info = c.ping().await.unwrap();
        assert_eq!(info.protocol_version, 1);
        assert_eq!(info.daemon_version, daemon_version_printed());
        let blocking = tokio::task::spawn_blocking(move || {
            sendfiled::Client::connect(&path).unwrap().ping().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(info, blocking);
        peer.start();
        let r = t.await.unwrap();
        assert_eq!(r.bytes_sent, 32 * MIB);
        assert_eq!(peer.finish().await, Received::expected(0, 32 * MIB));
    });
}
