use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use crate::sys::{self, Received};
use crate::wire::{DecodeError, Request, Response, MAX_RECORD};
use crate::{Error, PingInfo, Reply, SendOptions, Status, RESTART_PATIENCE};

/// A blocking client: one connection to the daemon, one request at a time.
///
/// Its methods take `&mut self`: give each thread its own client (a connection is
/// cheap), or share one behind a `Mutex`. Dropping it closes the connection.
///
/// ```no_run
/// use std::fs::File;
/// use std::os::unix::net::UnixStream;
/// use sendfiled::{Client, Error, SendOptions};
///
/// # fn main() -> Result<(), Error> {
/// let mut client = Client::connect("/run/sendfiled/sendfiled.sock")?;
/// let (sock, _peer) = UnixStream::pair()?;
/// let file = File::open("/proc/self/status")?;
/// // A /proc file cannot be sent zero-copy: without fallback nothing is sent.
/// match client.sendfile(&sock, &file, 0, Some(100), SendOptions::new().fallback(false)) {
///     Err(Error::NotAvailable(reply)) => assert_eq!(reply.bytes_sent, 0),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    path: PathBuf,
    next_id: u64,
    /// The daemon closed the connection, or is about to: replace it before use.
    broken: bool,
    buf: Vec<u8>,
}

/// How one try of a request ended.
enum Attempt {
    Done(Reply),
    /// The daemon certainly did nothing with the request: it may be sent again.
    Unsent(Error),
    Failed(Error),
}

enum WaitError {
    /// The connection ended first; `unread`: the daemon had not read our last record.
    Lost {
        unread: bool,
        err: io::Error,
    },
    Fatal(Error),
}

impl Client {
    /// Connect to the daemon listening at `path`. Blocks for the `connect(2)` only.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        let path = path.as_ref().to_path_buf();
        let fd = sys::connect(&path, false).map_err(|source| Error::Connect {
            path: path.clone(),
            source,
        })?;
        Ok(Client {
            fd,
            path,
            next_id: 1,
            broken: false,
            buf: vec![0; MAX_RECORD],
        })
    }

    /// Connect to the default socket ([`default_socket_path`](crate::default_socket_path)).
    pub fn connect_default() -> Result<Client, Error> {
        Client::connect(crate::default_socket_path())
    }

    /// The socket this client connects to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send `count` bytes (`None`: to end of file) of `src` from `offset` to `dst`, and
    /// wait for the outcome.
    ///
    /// `dst` is normally a connected stream socket (a pipe, a file or a character
    /// device also work); `src` a regular file (a pipe or stream socket also works, with
    /// `offset` 0). Both are borrowed: the daemon works on duplicates, which share the
    /// open file descriptions, so do not use them until this returns. The source's file
    /// position is left at `offset + bytes_sent` when anything was sent.
    ///
    /// Returns the daemon's [`Reply`] when it answered `OK` (`bytes_sent` may be short of
    /// `count` when the file is shorter: see [`Reply::short_source`]), else the error,
    /// which carries the reply when there is one.
    ///
    /// Daemon restarts: when the daemon did nothing with the request because it is
    /// stopping (it answered `SHUTTING_DOWN`, or closed the connection before reading the
    /// request), the request is sent again on a new connection to the same socket, for
    /// up to [`RESTART_PATIENCE`] (never past the timeout). A request the daemon may
    /// have started is never sent twice: then the call fails with
    /// [`Error::OutcomeUnknown`].
    pub fn sendfile(
        &mut self,
        dst: impl AsFd,
        src: impl AsFd,
        offset: u64,
        count: Option<u64>,
        opts: SendOptions,
    ) -> Result<Reply, Error> {
        let deadline = opts.get_timeout().map(|t| Instant::now() + t);
        let mut patience: Option<Instant> = None;
        let mut until = |deadline: Option<Instant>| {
            let p = *patience.get_or_insert_with(|| Instant::now() + RESTART_PATIENCE);
            deadline.map_or(p, |d| d.min(p))
        };
        if self.broken {
            self.reconnect(until(deadline))?;
        }
        loop {
            let id = self.take_id();
            let req = Request::Sendfile {
                id,
                offset,
                count,
                fallback: opts.allows_fallback(),
            };
            let fds = [dst.as_fd(), src.as_fd()];
            let unsent = match self.try_once(&req, &fds, deadline) {
                Attempt::Done(reply) if reply.status == Status::ShuttingDown => {
                    self.broken = true;
                    Error::from_reply(reply)
                }
                Attempt::Done(reply) if reply.status == Status::Ok => return Ok(reply),
                Attempt::Done(reply) => return Err(Error::from_reply(reply)),
                // The daemon read the request and went away without a reply.
                Attempt::Failed(Error::Disconnected(e)) => {
                    return Err(Error::outcome_unknown(src.as_fd(), offset, e))
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Unsent(e) => e,
            };
            let until = until(deadline);
            if Instant::now() >= until || self.reconnect(until).is_err() {
                return Err(unsent);
            }
        }
    }

    /// Ask the daemon whether it is alive and serving this client, and who it is: its
    /// protocol version, its own version and the optional features it implements.
    /// Like [`sendfile`](Self::sendfile), it first replaces a connection the daemon
    /// closed (a restart).
    pub fn ping(&mut self) -> Result<PingInfo, Error> {
        if self.broken {
            self.reconnect(Instant::now() + RESTART_PATIENCE)?;
        }
        let id = self.take_id();
        self.send(&Request::Ping { id }, &[])
            .map_err(Error::Disconnected)?;
        match self.wait_reply(id, None) {
            Ok(Some(r)) if r.status == Status::Ok => Ok(PingInfo::from_wire(r.ping)),
            Ok(Some(r)) => Err(Error::from_reply(r)),
            Ok(None) => unreachable!("no deadline"),
            Err(WaitError::Lost { err, .. }) => Err(Error::Disconnected(err)),
            Err(WaitError::Fatal(e)) => Err(e),
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    fn send(&mut self, req: &Request, fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<()> {
        let r = sys::send_record(self.fd.as_raw_fd(), &req.encode(), fds, 0);
        if let Err(e) = &r {
            if sys::went_away(e) {
                self.broken = true;
            }
        }
        r
    }

    fn try_once(
        &mut self,
        req: &Request,
        fds: &[std::os::fd::BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Attempt {
        let id = req.id();
        if let Err(e) = self.send(req, fds) {
            // sendmsg() took nothing: the daemon cannot have seen the request.
            return if sys::went_away(&e) {
                Attempt::Unsent(Error::Disconnected(e))
            } else {
                Attempt::Failed(Error::Io(e))
            };
        }
        match self.wait_reply(id, deadline) {
            Ok(Some(reply)) => Attempt::Done(reply),
            Ok(None) => {
                // The daemon answers a Cancel at once; waiting for the target's own
                // reply settles its file position before the caller sees the error.
                let cancel = Request::Cancel {
                    id: self.take_id(),
                    target: id,
                };
                if let Err(e) = self.send(&cancel, &[]) {
                    return Attempt::Failed(Error::Disconnected(e));
                }
                match self.wait_reply(id, None) {
                    Ok(Some(r)) if r.status == Status::Cancelled => {
                        Attempt::Failed(Error::TimedOut(Box::new(r)))
                    }
                    Ok(Some(r)) => Attempt::Done(r),
                    Ok(None) => unreachable!("no deadline"),
                    Err(WaitError::Lost { err, .. }) => Attempt::Failed(Error::Disconnected(err)),
                    Err(WaitError::Fatal(e)) => Attempt::Failed(e),
                }
            }
            // Records are read in order and ours was the last one sent: if the daemon
            // left records unread, ours was among them.
            Err(WaitError::Lost { unread: true, err }) => Attempt::Unsent(Error::Disconnected(err)),
            Err(WaitError::Lost { unread: false, err }) => {
                Attempt::Failed(Error::Disconnected(err))
            }
            Err(WaitError::Fatal(e)) => Attempt::Failed(e),
        }
    }

    /// Read replies until the one to `id` comes (others are stale: replies to Cancels,
    /// or to a request a timed-out call gave up on). `Ok(None)`: the deadline passed.
    fn wait_reply(
        &mut self,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<Reply>, WaitError> {
        let fd = self.fd.as_raw_fd();
        let mut reset_seen = false;
        loop {
            let timeout_ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            match sys::poll(fd, libc::POLLIN, timeout_ms) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(WaitError::Fatal(Error::Io(e))),
            }
            match sys::recv_record(fd, &mut self.buf, libc::MSG_DONTWAIT) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The kernel reports once that the daemon closed with records of ours
                // unread, before the replies still queued for us: read those first.
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) && !reset_seen => {
                    reset_seen = true;
                }
                Err(err) => {
                    self.broken = true;
                    return Err(WaitError::Lost {
                        unread: reset_seen,
                        err,
                    });
                }
                Ok(Received::Truncated) => {
                    return Err(self.give_up(Error::BadReply(DecodeError("truncated record"))))
                }
                Ok(Received::Record(0)) => {
                    self.broken = true;
                    return Err(WaitError::Lost {
                        unread: reset_seen,
                        err: io::Error::from_raw_os_error(libc::ECONNRESET),
                    });
                }
                Ok(Received::Record(n)) => {
                    let resp = match Response::decode(&self.buf[..n]) {
                        Ok(r) => r,
                        Err(e) => return Err(self.give_up(Error::BadReply(e))),
                    };
                    // Id 0 is about the connection itself: the allow-list refused us,
                    // and the daemon closes the connection next.
                    if resp.id == 0 {
                        self.broken = true;
                        return Err(WaitError::Fatal(Error::from_reply(resp.into())));
                    }
                    if resp.id == id {
                        return Ok(Some(resp.into()));
                    }
                }
            }
        }
    }

    fn give_up(&mut self, e: Error) -> WaitError {
        sys::shutdown(self.fd.as_raw_fd());
        self.broken = true;
        WaitError::Fatal(e)
    }

    /// Replace the connection, waiting while nobody listens on the socket (a daemon
    /// that binds its own socket is restarting), until `until`.
    fn reconnect(&mut self, until: Instant) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match sys::connect(&self.path, false) {
                Ok(fd) => {
                    self.fd = fd;
                    self.broken = false;
                    return Ok(());
                }
                Err(e)
                    if sys::nobody_listens(&e)
                        && Instant::now() + crate::retry_pause(attempt) < until =>
                {
                    attempt += 1;
                    thread::sleep(crate::retry_pause(attempt));
                }
                Err(source) => {
                    return Err(Error::Connect {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
    }
}
