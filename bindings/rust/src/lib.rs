//! Client of sendfiled, the local daemon that sends files over sockets zero-copy on
//! behalf of other processes.
//!
//! A client hands the daemon a destination (normally a connected socket) and a source
//! (normally a regular file) as descriptors over a Unix socket; the daemon sends the
//! requested range with `sendfile(2)` (or `splice(2)`, or a read/write copy when the
//! kernel can do neither and the caller allows it) and answers with the bytes sent, the
//! final file offset and the method used. This crate speaks the protocol itself
//! (`docs/PROTOCOL.md` in the sendfiled tree): no C library is needed.
//!
//! The semantics are those of Python asyncio's `loop.sendfile()`:
//!
//! - `offset` and `count` select the range; `count: None` means to end of file; a count
//!   past end of file sends what there is (not an error), an offset past it sends 0.
//! - The source's file position is set to `offset + bytes_sent` whenever anything was
//!   sent, whatever the outcome, and is left alone when nothing was.
//! - With `fallback` off, a transfer that no zero-copy method can serve fails with
//!   [`Error::NotAvailable`] and sends nothing.
//! - A peer that resets the connection mid-transfer gives [`Error::PeerClosed`], which
//!   carries the bytes sent ([`Error::bytes_sent`]).
//!
//! Two clients:
//!
//! - [`Client`], blocking: one request at a time per client (use one per thread). It
//!   survives daemon restarts: a request the stopping daemon did nothing with is sent
//!   again on a new connection.
//! - [`AsyncClient`] (feature `tokio`, on by default): many transfers in flight on one
//!   connection, replies matched by id; dropping a transfer's future cancels it.
//!
//! ```no_run
//! use std::fs::File;
//! use std::net::TcpStream;
//!
//! # fn main() -> Result<(), sendfiled::Error> {
//! let mut client = sendfiled::Client::connect_default()?;
//! let sock = TcpStream::connect("127.0.0.1:8080")?;
//! let file = File::open("/etc/os-release")?;
//! let reply = client.sendfile(&sock, &file, 0, None, Default::default())?;
//! println!("sent {} bytes with {}", reply.bytes_sent, reply.method);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod blocking;
mod error;
mod sys;
#[cfg(feature = "tokio")]
mod tokio_client;
pub mod wire;

use std::collections::BTreeSet;
use std::env;
use std::path::PathBuf;
use std::time::Duration;

pub use blocking::Client;
pub use error::{Error, Method, Reply, Status};
#[cfg(feature = "tokio")]
pub use tokio_client::{AsyncClient, Canceller, Transfer};

/// Where the system's daemon listens.
pub const SYSTEM_SOCKET: &str = "/run/sendfiled/sendfiled.sock";

/// The default data socket: `$SENDFILED_SOCKET` when set and not empty, else
/// `$XDG_RUNTIME_DIR/sendfiled/sendfiled.sock` when that socket exists (a per-user
/// daemon), else [`SYSTEM_SOCKET`].
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = env::var_os("SENDFILED_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        let user = PathBuf::from(dir).join("sendfiled").join("sendfiled.sock");
        if user.exists() {
            return user;
        }
    }
    PathBuf::from(SYSTEM_SOCKET)
}

/// Options of one transfer. The default: fallback allowed, no timeout.
///
/// ```
/// use std::time::Duration;
/// let opts = sendfiled::SendOptions::new()
///     .fallback(false)
///     .timeout(Some(Duration::from_secs(30)));
/// assert!(!opts.allows_fallback());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    fallback: bool,
    timeout: Option<Duration>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            fallback: true,
            timeout: None,
        }
    }
}

impl SendOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the daemon may copy through user space when no zero-copy method applies
    /// (true by default). When false, such a transfer fails with [`Error::NotAvailable`].
    pub fn fallback(mut self, allow: bool) -> Self {
        self.fallback = allow;
        self
    }

    /// How long to wait for the reply (`None`, the default: as long as it takes). When
    /// it runs out the transfer is cancelled and its reply awaited, so the file position
    /// is settled, and the call fails with [`Error::TimedOut`], unless the transfer ended
    /// by itself first: then that outcome is returned.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The fallback setting.
    pub fn allows_fallback(&self) -> bool {
        self.fallback
    }

    /// The timeout setting.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// An optional part of the protocol a daemon may implement (`Feature` in
/// `proto/sendfiled.proto`), as [`PingInfo::features`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// A deadline per transfer (`Sendfile.deadline_ms`).
    Deadline,
    /// A rate limit per transfer (`Sendfile.rate_limit_bps`, `rate_limit_after`).
    RateLimit,
    /// Hand-off: the daemon keeps and closes the destination (`close_when_done`).
    CloseWhenDone,
    /// An idle timeout per transfer (`Sendfile.idle_timeout_ms`).
    IdleTimeout,
}

impl Feature {
    /// The feature of a wire value, `None` for one this library does not know.
    pub fn from_wire(v: i32) -> Option<Feature> {
        Some(match v {
            1 => Feature::Deadline,
            2 => Feature::RateLimit,
            3 => Feature::CloseWhenDone,
            4 => Feature::IdleTimeout,
            _ => return None,
        })
    }

    /// Its name, the one every binding uses: `deadline`, `rate_limit`,
    /// `close_when_done`, `idle_timeout`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Deadline => "deadline",
            Feature::RateLimit => "rate_limit",
            Feature::CloseWhenDone => "close_when_done",
            Feature::IdleTimeout => "idle_timeout",
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who answered a ping ([`Client::ping`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PingInfo {
    /// The data-plane protocol's version: 1.
    pub protocol_version: u32,
    /// The daemon's own version, e.g. `0.1.0`, for people and logs ("" when a daemon
    /// too old to say answered).
    pub daemon_version: String,
    /// The optional features the daemon implements; those this library does not know
    /// are left out. Ask before using one: a daemon without it refuses the request.
    pub features: BTreeSet<Feature>,
}

impl PingInfo {
    /// A daemon older than `PingInfo` answers without it: protocol 1, nothing optional.
    pub(crate) fn from_wire(w: Option<wire::PingInfo>) -> PingInfo {
        match w {
            None => PingInfo {
                protocol_version: 1,
                daemon_version: String::new(),
                features: BTreeSet::new(),
            },
            Some(w) => PingInfo {
                protocol_version: w.protocol_version,
                daemon_version: w.daemon_version,
                features: w
                    .features
                    .into_iter()
                    .filter_map(Feature::from_wire)
                    .collect(),
            },
        }
    }

    /// Whether the daemon implements `f`.
    pub fn has(&self, f: Feature) -> bool {
        self.features.contains(&f)
    }
}

/// How long the clients keep trying to reach a daemon that is restarting: after a
/// `SHUTTING_DOWN` reply or a closed connection, connects are retried for this long
/// (while nothing listens on the socket), with pauses of 10 ms growing to 50 ms.
pub const RESTART_PATIENCE: Duration = Duration::from_secs(5);

fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(u64::from(attempt.min(5)) * 10)
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn clients_cross_threads() {
        send_sync::<crate::Client>();
        send_sync::<crate::Error>();
        #[cfg(feature = "tokio")]
        {
            send_sync::<crate::AsyncClient>();
            send_sync::<crate::Transfer>();
            send_sync::<crate::Canceller>();
        }
    }
}
