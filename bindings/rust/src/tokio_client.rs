use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::sys::{self, Received};
use crate::wire::{DecodeError, Request, Response, MAX_RECORD};
use crate::{Error, PingInfo, Reply, SendOptions, Status, RESTART_PATIENCE};

/// An asynchronous client on tokio: one connection to the daemon, any number of
/// transfers in flight on it, their replies matched by id by a reader task.
///
/// Cloning is cheap and shares the connection. The connection is closed when the last
/// clone and the last [`Transfer`] are gone; transfers still in flight then are
/// cancelled by the daemon, which settles their file positions.
///
/// Daemon restarts: when the connection has ended (the daemon stopped), the next
/// request is made on a new one, waiting up to [`RESTART_PATIENCE`] for a daemon to
/// listen again. [`AsyncClient::sendfile`] also sends a request again when the daemon
/// certainly did nothing with it (`SHUTTING_DOWN`, or the connection closed before the
/// daemon read it). [`AsyncClient::submit`] does not: its [`Transfer`] reports
/// [`Error::ShuttingDown`] (nothing sent), as it no longer holds the descriptors.
///
/// ```no_run
/// use sendfiled::{AsyncClient, SendOptions};
/// use tokio::net::TcpStream;
///
/// # async fn demo() -> Result<(), sendfiled::Error> {
/// let client = AsyncClient::connect_default().await?;
/// let sock = TcpStream::connect("127.0.0.1:8080").await?;
/// let file = std::fs::File::open("/etc/os-release")?;
/// let reply = client.sendfile(&sock, &file, 0, None, SendOptions::new()).await?;
/// println!("{} bytes with {}", reply.bytes_sent, reply.method);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    current: Mutex<Option<Arc<Conn>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(conn) = lock(&self.current).take() {
            // The reader task sees the end and lets the descriptor go.
            sys::shutdown(conn.fd.as_raw_fd());
        }
    }
}

#[derive(Debug)]
struct Conn {
    fd: AsyncFd<OwnedFd>,
    state: Mutex<ConnState>,
}

#[derive(Debug, Default)]
struct ConnState {
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Delivery>>,
    /// The reader saw the end of the connection.
    ended: bool,
    /// The daemon said it is stopping: make new requests elsewhere.
    retired: bool,
    /// The id of the last record sendmsg() took.
    last_sent: u64,
}

/// What the reader hands a waiting request.
#[derive(Debug)]
enum Delivery {
    Reply(Reply),
    /// The connection ended first; `unread`: the daemon had not read the request.
    Lost {
        unread: bool,
    },
    /// The daemon refused this user (a reply with id 0).
    Refused(Reply),
    Bad(DecodeError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lost() -> io::Error {
    io::Error::from_raw_os_error(libc::ECONNRESET)
}

impl Delivery {
    fn into_result(self) -> Result<Reply, Error> {
        match self {
            Delivery::Reply(r) if r.status == Status::Ok => Ok(r),
            Delivery::Reply(r) | Delivery::Refused(r) => Err(Error::from_reply(r)),
            Delivery::Lost { .. } => Err(Error::Disconnected(lost())),
            Delivery::Bad(e) => Err(Error::BadReply(e)),
        }
    }

    /// Whether the request may be sent again: the daemon did nothing with it.
    fn unsent(&self) -> bool {
        match self {
            Delivery::Reply(r) => r.status == Status::ShuttingDown,
            Delivery::Lost { unread } => *unread,
            _ => false,
        }
    }
}

impl Conn {
    async fn open(path: &Path, until: Instant) -> Result<Arc<Conn>, Error> {
        let mut attempt = 0;
        let fd = loop {
            match sys::connect(path, true) {
                Ok(fd) => break fd,
                Err(e)
                    if sys::nobody_listens(&e)
                        && Instant::now() + crate::retry_pause(attempt + 1) < until =>
                {
                    attempt += 1;
                    tokio::time::sleep(crate::retry_pause(attempt)).await;
                }
                Err(source) => {
                    return Err(Error::Connect {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        };
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until it drops.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        let conn = Arc::new(Conn {
            fd,
            state: Mutex::new(ConnState {
                next_id: 1,
                ..ConnState::default()
            }),
        });
        tokio::spawn(read_loop(conn.clone()));
        Ok(conn)
    }

    fn usable(&self) -> bool {
        let st = lock(&self.state);
        !st.ended && !st.retired
    }

    /// A fresh id, and the receiver of its reply when `wait`.
    fn register(&self, wait: bool) -> Option<(u64, Option<oneshot::Receiver<Delivery>>)> {
        let mut st = lock(&self.state);
        if st.ended {
            return None;
        }
        let id = st.next_id;
        st.next_id = st.next_id.checked_add(1).unwrap_or(1);
        if !wait {
            return Some((id, None));
        }
        let (tx, rx) = oneshot::channel();
        st.waiting.insert(id, tx);
        Some((id, Some(rx)))
    }

    fn unregister(&self, id: u64) -> bool {
        lock(&self.state).waiting.remove(&id).is_some()
    }

    fn try_send(&self, id: u64, rec: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        // Under the lock, so that last_sent names the record the kernel queued last.
        let mut st = lock(&self.state);
        sys::send_record(self.fd.as_raw_fd(), rec, fds, libc::MSG_DONTWAIT)?;
        st.last_sent = id;
        Ok(())
    }

    async fn send(&self, req: &Request, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let rec = req.encode();
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|_| self.try_send(req.id(), &rec, fds)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Send a Cancel for `target` without waiting for anything; its reply is dropped by
    /// the reader.
    fn cancel_detached(self: &Arc<Self>, target: u64) {
        let Some((id, _)) = self.register(false) else {
            return;
        };
        let req = Request::Cancel { id, target };
        match self.try_send(id, &req.encode(), &[]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The socket is full: send it once there is room.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let conn = self.clone();
                    rt.spawn(async move {
                        let _ = conn.send(&req, &[]).await;
                    });
                }
            }
            _ => {}
        }
    }

    fn end(&self, how: impl Fn(u64) -> Delivery) {
        let mut st = lock(&self.state);
        st.ended = true;
        for (id, tx) in st.waiting.drain() {
            let _ = tx.send(how(id));
        }
    }
}

async fn read_loop(conn: Arc<Conn>) {
    let mut buf = vec![0u8; MAX_RECORD];
    let mut reset_seen = false;
    let refusal = 'conn: loop {
        let Ok(mut guard) = conn.fd.readable().await else {
            break None;
        };
        loop {
            let r =
                guard.try_io(|fd| sys::recv_record(fd.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT));
            let rec = match r {
                Err(_would_block) => break,
                // The kernel reports once that the daemon closed with records unread,
                // before the replies still queued for us: read those first.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ECONNRESET) && !reset_seen => {
                    reset_seen = true;
                    continue;
                }
                Ok(Err(_)) | Ok(Ok(Received::Record(0))) => break 'conn None,
                Ok(Ok(Received::Truncated)) => {
                    break 'conn Some(Delivery::Bad(DecodeError("truncated record")))
                }
                Ok(Ok(Received::Record(n))) => &buf[..n],
            };
            let resp = match Response::decode(rec) {
                Ok(r) => r,
                Err(e) => break 'conn Some(Delivery::Bad(e)),
            };
            if resp.id == 0 {
                break 'conn Some(Delivery::Refused(resp.into()));
            }
            let reply = Reply::from(resp);
            let mut st = lock(&conn.state);
            if reply.status == Status::ShuttingDown {
                st.retired = true;
            }
            // Nobody waits for replies to Cancels, or to dropped transfers.
            if let Some(tx) = st.waiting.remove(&reply.id) {
                let _ = tx.send(Delivery::Reply(reply));
            }
        }
    };
    match refusal {
        Some(Delivery::Refused(r)) => conn.end(|_| Delivery::Refused(r.clone())),
        Some(Delivery::Bad(e)) => conn.end(|_| Delivery::Bad(e.clone())),
        _ => {
            // Records are read in order: when some were left unread, the last one was.
            let last = lock(&conn.state).last_sent;
            conn.end(|id| Delivery::Lost {
                unread: reset_seen && id == last,
            })
        }
    }
    sys::shutdown(conn.fd.as_raw_fd());
}

impl AsyncClient {
    /// Connect to the daemon listening at `path`. Must be called within a tokio runtime
    /// (it spawns the reader task).
    pub async fn connect(path: impl AsRef<Path>) -> Result<AsyncClient, Error> {
        let path = path.as_ref().to_path_buf();
        // A first connect does not wait for a daemon to appear.
        let conn = Conn::open(&path, Instant::now()).await?;
        Ok(AsyncClient {
            shared: Arc::new(Shared {
                path,
                current: Mutex::new(Some(conn)),
            }),
        })
    }

    /// Connect to the default socket ([`default_socket_path`](crate::default_socket_path)).
    pub async fn connect_default() -> Result<AsyncClient, Error> {
        AsyncClient::connect(crate::default_socket_path()).await
    }

    /// The socket this client connects to.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The current connection, or a new one when it has ended or the daemon behind it is
    /// stopping.
    async fn conn(&self, patience: &mut Option<Instant>) -> Result<Arc<Conn>, Error> {
        if let Some(c) = lock(&self.shared.current).as_ref().filter(|c| c.usable()) {
            return Ok(c.clone());
        }
        let until = *patience.get_or_insert_with(|| Instant::now() + RESTART_PATIENCE);
        let fresh = Conn::open(&self.shared.path, until).await?;
        let mut cur = lock(&self.shared.current);
        if let Some(c) = cur.as_ref().filter(|c| c.usable()) {
            // Another task replaced it meanwhile; the new one's reader ends with it.
            sys::shutdown(fresh.fd.as_raw_fd());
            return Ok(c.clone());
        }
        *cur = Some(fresh.clone());
        Ok(fresh)
    }

    async fn start(
        &self,
        dst: BorrowedFd<'_>,
        src: BorrowedFd<'_>,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
        patience: &mut Option<Instant>,
    ) -> Result<Transfer, Error> {
        // The transfer's own handle on the source's open file description: its file
        // position is the only account of what left should the daemon die.
        let src_dup = src.try_clone_to_owned()?;
        loop {
            let conn = self.conn(patience).await?;
            let Some((id, Some(rx))) = conn.register(true) else {
                continue;
            };
            let req = Request::Sendfile {
                id,
                offset,
                count,
                fallback,
            };
            match conn.send(&req, &[dst, src]).await {
                Ok(()) => {
                    return Ok(Transfer {
                        id,
                        conn,
                        _client: self.shared.clone(),
                        rx,
                        done: false,
                        src: src_dup,
                        offset,
                    })
                }
                Err(e) => {
                    conn.unregister(id);
                    // sendmsg() took nothing: try a new connection.
                    if !sys::went_away(&e) {
                        return Err(Error::Io(e));
                    }
                    lock(&conn.state).retired = true;
                    if patience.is_some_and(|p| Instant::now() >= p) {
                        return Err(Error::Disconnected(e));
                    }
                }
            }
        }
    }

    /// Start sending `count` bytes (`None`: to end of file) of `src` from `offset` to
    /// `dst`, and return once the daemon has the request. The returned [`Transfer`] is a
    /// future of its outcome; dropping it cancels the transfer.
    ///
    /// The descriptors are borrowed for this call only (the daemon works on duplicates),
    /// but do not use them until the transfer has completed: the daemon moves the
    /// source's file position. `opts`' timeout does not apply here: await the transfer
    /// under `tokio::time::timeout` instead (dropping it cancels it).
    ///
    /// The [`Transfer`] keeps a close-on-exec duplicate of `src` until it is dropped: if
    /// the daemon dies with the transfer in flight, it reports
    /// [`Error::OutcomeUnknown`] with the bytes sent that the file position tells, as
    /// [`sendfile`](Self::sendfile) does.
    pub async fn submit(
        &self,
        dst: impl AsFd,
        src: impl AsFd,
        offset: u64,
        count: Option<u64>,
        opts: SendOptions,
    ) -> Result<Transfer, Error> {
        let mut patience = None;
        self.start(
            dst.as_fd(),
            src.as_fd(),
            offset,
            count,
            opts.allows_fallback(),
            &mut patience,
        )
        .await
    }

    /// Send `count` bytes (`None`: to end of file) of `src` from `offset` to `dst` and
    /// wait for the outcome: the same as [`Client::sendfile`](crate::Client::sendfile),
    /// with as many calls in flight as you like.
    ///
    /// Dropping the future cancels the transfer: the daemon stops it, its reply is
    /// consumed by the client's reader, and the daemon settles the file position
    /// (`offset + bytes sent`). To learn how far it got, use `opts`' timeout, or
    /// [`submit`](Self::submit) and [`Transfer::cancel`], which wait for the reply.
    pub async fn sendfile(
        &self,
        dst: impl AsFd,
        src: impl AsFd,
        offset: u64,
        count: Option<u64>,
        opts: SendOptions,
    ) -> Result<Reply, Error> {
        let (dst, src) = (dst.as_fd(), src.as_fd());
        let deadline = opts.get_timeout().map(|d| tokio::time::Instant::now() + d);
        let mut patience = None;
        loop {
            let mut t = self
                .start(
                    dst,
                    src,
                    offset,
                    count,
                    opts.allows_fallback(),
                    &mut patience,
                )
                .await?;
            let delivery = match deadline {
                None => t.raw().await,
                Some(d) => match tokio::time::timeout_at(d, t.raw()).await {
                    Ok(d) => d,
                    Err(_elapsed) => {
                        t.cancel().await?;
                        match t.raw().await {
                            Delivery::Reply(r) if r.status == Status::Cancelled => {
                                return Err(Error::TimedOut(Box::new(r)))
                            }
                            d => d,
                        }
                    }
                },
            };
            let retry = delivery.unsent()
                && patience.is_none_or(|p| Instant::now() < p)
                && deadline.is_none_or(|d| tokio::time::Instant::now() < d);
            if !retry {
                return match delivery {
                    // The daemon read the request and went away without a reply.
                    Delivery::Lost { unread: false } => {
                        Err(Error::outcome_unknown(src, offset, lost()))
                    }
                    d => d.into_result(),
                };
            }
            patience.get_or_insert_with(|| Instant::now() + RESTART_PATIENCE);
        }
    }

    /// Ask the daemon whether it is alive and serving this client, and who it is (see
    /// [`PingInfo`]). The reply also tells that every request sent before it has been
    /// read by the daemon.
    pub async fn ping(&self) -> Result<PingInfo, Error> {
        let mut patience = None;
        let conn = self.conn(&mut patience).await?;
        let Some((id, Some(rx))) = conn.register(true) else {
            return Err(Error::Disconnected(lost()));
        };
        if let Err(e) = conn.send(&Request::Ping { id }, &[]).await {
            conn.unregister(id);
            return Err(Error::Disconnected(e));
        }
        rx.await
            .unwrap_or(Delivery::Lost { unread: false })
            .into_result()
            .map(|r| PingInfo::from_wire(r.ping))
    }
}

/// A transfer in flight: a future of its outcome (`Ok` with the reply when the daemon
/// answered `OK`, else the error, which carries the reply).
///
/// Dropping it before it completes cancels the transfer (the daemon settles the file
/// position; the reply is consumed by the client's reader). [`Transfer::cancel`] cancels
/// it and keeps the future, which then completes with [`Error::Cancelled`] and the
/// bytes sent, or with the real outcome when the transfer finished first.
#[derive(Debug)]
#[must_use = "dropping a Transfer cancels it"]
pub struct Transfer {
    id: u64,
    conn: Arc<Conn>,
    _client: Arc<Shared>,
    rx: oneshot::Receiver<Delivery>,
    done: bool,
    /// A duplicate of the source (close-on-exec), whose position tells what was sent
    /// if the daemon dies with the transfer in flight.
    src: OwnedFd,
    offset: u64,
}

impl Transfer {
    /// The request's id on its connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A handle that cancels this transfer from elsewhere (another task).
    pub fn canceller(&self) -> Canceller {
        Canceller {
            id: self.id,
            conn: Arc::downgrade(&self.conn),
        }
    }

    /// Ask the daemon to stop this transfer, and wait for its answer to that request.
    /// Return: whether the transfer was still in flight (false: it had already ended,
    /// and the future gives its real outcome).
    pub async fn cancel(&self) -> Result<bool, Error> {
        self.canceller().cancel().await
    }

    fn raw(&mut self) -> RawWait<'_> {
        RawWait(self)
    }

    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        if self.done {
            return Poll::Ready(Delivery::Lost { unread: false });
        }
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(d) => {
                self.done = true;
                Poll::Ready(d.unwrap_or(Delivery::Lost { unread: false }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

struct RawWait<'a>(&'a mut Transfer);

impl Future for RawWait<'_> {
    type Output = Delivery;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery> {
        self.0.poll_raw(cx)
    }
}

impl Future for Transfer {
    type Output = Result<Reply, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_raw(cx).map(|d| match d {
            // The daemon read the request and went away without a reply.
            Delivery::Lost { unread: false } => Err(Error::outcome_unknown(
                self.src.as_fd(),
                self.offset,
                lost(),
            )),
            d => d.into_result(),
        })
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // Still waited for: the daemon has not answered yet, so stop it.
        if !self.done && self.conn.unregister(self.id) {
            self.conn.cancel_detached(self.id);
        }
    }
}

/// Cancels a [`Transfer`] from anywhere; see [`Transfer::canceller`].
#[derive(Debug, Clone)]
pub struct Canceller {
    id: u64,
    conn: Weak<Conn>,
}

impl Canceller {
    /// The transfer's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// See [`Transfer::cancel`].
    pub async fn cancel(&self) -> Result<bool, Error> {
        let Some(conn) = self.conn.upgrade() else {
            return Ok(false);
        };
        let Some((id, Some(rx))) = conn.register(true) else {
            return Ok(false);
        };
        let req = Request::Cancel {
            id,
            target: self.id,
        };
        if let Err(e) = conn.send(&req, &[]).await {
            conn.unregister(id);
            return Err(Error::Disconnected(e));
        }
        match rx.await.unwrap_or(Delivery::Lost { unread: false }) {
            Delivery::Reply(r) if r.status == Status::Ok => Ok(true),
            Delivery::Reply(r) if r.errno == libc::ENOENT => Ok(false),
            // The connection ended: the transfer ended with it.
            Delivery::Lost { .. } => Ok(false),
            d => d.into_result().map(|_| false),
        }
    }
}
