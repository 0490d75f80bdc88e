use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;

use crate::wire::{DecodeError, Response};

/// The outcome of a request, as the daemon names it (the wire enum `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done; `bytes_sent` may be short of `count` (see [`Reply::short_source`]).
    Ok,
    /// `fallback` was off and no zero-copy method applies: nothing was sent.
    NotAvailable,
    /// The request or a descriptor cannot be used: nothing was sent.
    InvalidArgument,
    /// The destination's peer closed or reset the connection mid-transfer.
    PeerClosed,
    /// Reading the source or writing the destination failed.
    IoError,
    /// Stopped by a cancel, or by the daemon shutting down.
    Cancelled,
    /// A daemon limit was reached; nothing was sent, retry later.
    Limit,
    /// The daemon could not parse the request.
    Protocol,
    /// The daemon is stopping and took no new work: nothing was sent.
    ShuttingDown,
    /// This user is not in the daemon's allow-list.
    PermissionDenied,
    /// A value this version does not know.
    Unknown(i32),
}

impl Status {
    /// The status of a wire value.
    pub fn from_wire(v: i32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::NotAvailable,
            2 => Status::InvalidArgument,
            3 => Status::PeerClosed,
            4 => Status::IoError,
            5 => Status::Cancelled,
            6 => Status::Limit,
            7 => Status::Protocol,
            8 => Status::ShuttingDown,
            9 => Status::PermissionDenied,
            v => Status::Unknown(v),
        }
    }

    /// The wire value.
    pub fn to_wire(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::NotAvailable => 1,
            Status::InvalidArgument => 2,
            Status::PeerClosed => 3,
            Status::IoError => 4,
            Status::Cancelled => 5,
            Status::Limit => 6,
            Status::Protocol => 7,
            Status::ShuttingDown => 8,
            Status::PermissionDenied => 9,
            Status::Unknown(v) => v,
        }
    }

    /// The schema's name, e.g. `NOT_AVAILABLE`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotAvailable => "NOT_AVAILABLE",
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::PeerClosed => "PEER_CLOSED",
            Status::IoError => "IO_ERROR",
            Status::Cancelled => "CANCELLED",
            Status::Limit => "LIMIT",
            Status::Protocol => "PROTOCOL",
            Status::ShuttingDown => "SHUTTING_DOWN",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Unknown(v) => write!(f, "status {v}"),
            s => f.write_str(s.name()),
        }
    }
}

/// How the bytes moved (the wire enum `Method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// No transfer started (or nothing to send).
    None,
    /// `sendfile(2)`: zero-copy.
    Sendfile,
    /// `splice(2)`: zero-copy, for a pipe or socket source.
    Splice,
    /// The user-space copy: the only one that counts as fallback.
    ReadWrite,
    /// A value this version does not know.
    Unknown(i32),
}

impl Method {
    /// The method of a wire value.
    pub fn from_wire(v: i32) -> Method {
        match v {
            0 => Method::None,
            1 => Method::Sendfile,
            2 => Method::Splice,
            3 => Method::ReadWrite,
            v => Method::Unknown(v),
        }
    }

    /// A short name: `none`, `sendfile`, `splice`, `read_write`.
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::ReadWrite => "read_write",
            Method::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The daemon's answer to one transfer: what a successful call returns, and what every
/// error the daemon reported carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The request's id on its connection.
    pub id: u64,
    /// The outcome.
    pub status: Status,
    /// A positive errno giving the cause, 0 when none.
    pub errno: i32,
    /// The daemon's explanation, in English, for people and logs ("" when none).
    pub message: String,
    /// Bytes sent, on every outcome.
    pub bytes_sent: u64,
    /// `offset + bytes_sent`: where the source's file position was left (it is moved
    /// only when `bytes_sent > 0`).
    pub final_offset: u64,
    /// The method that ran or was tried.
    pub method: Method,
    /// The source ended before the requested range did.
    pub short_source: bool,
    /// A Ping's reply only: who answered, as the daemon said it.
    pub(crate) ping: Option<crate::wire::PingInfo>,
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply {
            id: r.id,
            status: r.status(),
            method: r.method(),
            errno: r.error,
            message: r.message,
            bytes_sent: r.bytes_sent,
            final_offset: r.final_offset,
            short_source: r.short_source,
            ping: r.ping,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if self.errno > 0 {
            write!(f, " ({})", io::Error::from_raw_os_error(self.errno))?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        write!(f, ", {} bytes sent", self.bytes_sent)
    }
}

/// Everything that can go wrong with a request.
///
/// The variants that carry a [`Reply`] are the daemon's answers; the others mean the
/// daemon could not be asked or did not answer. [`Error::bytes_sent`] and
/// [`Error::errno`] work on all of them, and `io::Error::from` keeps the errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `fallback` was off and no zero-copy method applies (a `/proc` file as source, an
    /// `O_APPEND` file as destination): nothing was sent, the position is untouched.
    #[error("sendfile not available: {0}")]
    NotAvailable(Box<Reply>),
    /// The destination's peer closed or reset the connection mid-transfer.
    #[error("peer closed the connection: {0}")]
    PeerClosed(Box<Reply>),
    /// Stopped by a cancel (this client's, `sendfilectl cancel`, or the daemon stopping).
    #[error("transfer cancelled: {0}")]
    Cancelled(Box<Reply>),
    /// The blocking client's timeout ran out: the transfer was cancelled and its reply
    /// awaited, so the position is settled.
    #[error("transfer timed out: {0}")]
    TimedOut(Box<Reply>),
    /// The daemon is stopping and did nothing with the request. Send it again on a new
    /// connection (the clients' `sendfile` methods do).
    #[error("sendfiled is shutting down: {0}")]
    ShuttingDown(Box<Reply>),
    /// Any other status: `INVALID_ARGUMENT`, `IO_ERROR`, `LIMIT`, `PROTOCOL`,
    /// `PERMISSION_DENIED`.
    #[error("sendfiled: {0}")]
    Failed(Box<Reply>),
    /// No daemon could be reached at `path`.
    #[error("cannot connect to sendfiled at {}: {source}", path.display())]
    Connect {
        /// The socket tried.
        path: PathBuf,
        /// What `connect(2)` said.
        #[source]
        source: io::Error,
    },
    /// The connection to the daemon ended before its reply came. The daemon settles the
    /// file position of a transfer it had started.
    #[error("connection to sendfiled lost: {0}")]
    Disconnected(#[source] io::Error),
    /// The connection to the daemon was lost (it was killed, or crashed) after it read
    /// the request: no reply will come. `bytes_sent` is read from the source's file
    /// position, which the daemon keeps at `offset + bytes sent` while it sends (exact
    /// when no other transfer was sending from the same open file description). Sending
    /// the rest from there is safe; sending the whole range again is not.
    #[error("connection to sendfiled lost: outcome unknown: see the file position ({bytes_sent} bytes sent): {source}")]
    OutcomeUnknown {
        /// `position - offset`, or 0 when the position is before the offset.
        bytes_sent: u64,
        /// How the connection ended (`ECONNRESET`).
        #[source]
        source: io::Error,
    },
    /// The daemon sent a record that cannot be read; the connection was given up.
    #[error(transparent)]
    BadReply(#[from] DecodeError),
    /// A local failure (sending the request, an invalid argument, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    pub(crate) fn from_reply(reply: Reply) -> Error {
        let b = Box::new(reply);
        match b.status {
            Status::NotAvailable => Error::NotAvailable(b),
            Status::PeerClosed => Error::PeerClosed(b),
            Status::Cancelled => Error::Cancelled(b),
            Status::ShuttingDown => Error::ShuttingDown(b),
            _ => Error::Failed(b),
        }
    }

    /// The daemon's reply, when it answered.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Error::NotAvailable(r)
            | Error::PeerClosed(r)
            | Error::Cancelled(r)
            | Error::TimedOut(r)
            | Error::ShuttingDown(r)
            | Error::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// The daemon's status, when it answered.
    pub fn status(&self) -> Option<Status> {
        self.reply().map(|r| r.status)
    }

    /// Bytes sent before the failure (0 when the daemon did not answer, but for
    /// [`Error::OutcomeUnknown`], where the file position tells).
    pub fn bytes_sent(&self) -> u64 {
        match self {
            Error::OutcomeUnknown { bytes_sent, .. } => *bytes_sent,
            e => e.reply().map_or(0, |r| r.bytes_sent),
        }
    }

    /// The connection ended after the daemon read a transfer's request: what was sent
    /// is what the source's position says.
    pub(crate) fn outcome_unknown(src: BorrowedFd<'_>, offset: u64, source: io::Error) -> Error {
        // SAFETY: lseek on a borrowed, open descriptor.
        let pos = unsafe { libc::lseek(src.as_raw_fd(), 0, libc::SEEK_CUR) };
        let bytes_sent = u64::try_from(pos).map_or(0, |p| p.saturating_sub(offset));
        Error::OutcomeUnknown { bytes_sent, source }
    }

    /// The errno giving the cause, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::TimedOut(_) => Some(libc::ETIMEDOUT),
            Error::BadReply(_) => Some(libc::EBADMSG),
            Error::Connect { source: e, .. }
            | Error::Disconnected(e)
            | Error::OutcomeUnknown { source: e, .. }
            | Error::Io(e) => e.raw_os_error(),
            e => e.reply().map(|r| r.errno).filter(|&n| n > 0),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            e => {
                let kind = match e.errno() {
                    Some(n) => io::Error::from_raw_os_error(n).kind(),
                    None => io::ErrorKind::Other,
                };
                io::Error::new(kind, e)
            }
        }
    }
}
