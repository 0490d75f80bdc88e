//! The test harness: a real sendfiled daemon on a socket in a temporary directory, test
//! files with known contents, TCP receivers that hash what they get, descriptor counts.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// Generous: the machine may be slow and shared.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The tests of one binary run one at a time: they compare the process's descriptors.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn find_in_build(rel: &str) -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut builds: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("build"))
            })
            .collect();
        builds.sort_by_key(|p| (p.file_name().unwrap() != "build", p.clone()));
        if let Some(found) = builds.iter().map(|b| b.join(rel)).find(|p| p.exists()) {
            return Some(found);
        }
    }
    None
}

/// The daemon to test against: `$SENDFILED_BIN`, else `build*/daemon/sendfiled` in a
/// directory above the crate. Its absence fails the test: it is never skipped.
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SENDFILED_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "SENDFILED_BIN={} does not exist", p.display());
        return p;
    }
    find_in_build("daemon/sendfiled").unwrap_or_else(|| {
        panic!(
            "the sendfiled daemon was not found: set SENDFILED_BIN, or build it \
             (meson setup build && ninja -C build) in the source tree above {}",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sfd-rs-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A sendfiled process serving a socket in a temporary directory.
pub struct Daemon {
    pub dir: TempDir,
    pub path: PathBuf,
    pub args: Vec<String>,
    /// Its descriptor count once started, with no client.
    pub base: usize,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Daemon {
        let dir = TempDir::new("daemon");
        let path = dir.path().join("sendfiled.sock");
        Daemon::start_at(dir, path, args)
    }

    /// Another daemon on `path` (its directory belongs to the caller).
    pub fn start_at(dir: TempDir, path: PathBuf, args: &[&str]) -> Daemon {
        let mut d = Daemon {
            dir,
            path,
            args: args.iter().map(|s| s.to_string()).collect(),
            base: 0,
            child: None,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(daemon_binary())
            .arg("--socket")
            .arg(&self.path)
            .arg("--no-control")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start the sendfiled daemon");
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if self.path.exists() && sendfiled::Client::connect(&self.path).is_ok() {
                break;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sendfiled exited with {st} at start: {}", self.log());
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "sendfiled did not start: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
        // The probe connection above is gone once the daemon has seen it close.
        // A restarted daemon has the same descriptors as the first one had, and may
        // have clients already: keep the first count.
        if self.base == 0 {
            self.base = self.baseline_guess();
        }
    }

    fn baseline_guess(&self) -> usize {
        // Settle: the count stops changing once the probe's close was handled.
        let mut last = self.fd_count();
        for _ in 0..50 {
            thread::sleep(Duration::from_millis(20));
            let n = self.fd_count();
            if n == last {
                return n;
            }
            last = n;
        }
        last
    }

    /// The descriptor count of a daemon with no client, measured once on a daemon of
    /// its own: for daemons that clients connected to while they started.
    pub fn clean_base() -> usize {
        static BASE: OnceLock<usize> = OnceLock::new();
        *BASE.get_or_init(|| Daemon::start().base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon not running").id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Send SIGTERM, and return without waiting.
    pub fn terminate(&self) {
        // SAFETY: a plain system call.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
    }

    /// Wait for `text` in the daemon's log.
    pub fn wait_log(&self, text: &str) {
        let t0 = Instant::now();
        while !self.log().contains(text) {
            assert!(
                t0.elapsed() < PATIENCE,
                "no {text:?} in the log: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop it with SIGTERM and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: a plain system call.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let t0 = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if t0.elapsed() > PATIENCE {
                    let _ = c.kill();
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kill it with SIGKILL, as a crash would, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn fd_count(&self) -> usize {
        fd_set(Some(self.pid())).len()
    }

    /// Wait (generously) for the daemon's descriptor count to be `n`; return what it is.
    pub fn wait_fd_count(&self, n: usize) -> usize {
        let t0 = Instant::now();
        loop {
            let now = self.fd_count();
            if now == n || t0.elapsed() > PATIENCE {
                return now;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The open descriptors of a process (this one when `None`), with what they point to.
pub fn fd_set(pid: Option<u32>) -> BTreeSet<(i32, String)> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}/fd"),
        None => "/proc/self/fd".to_string(),
    };
    let mut out = BTreeSet::new();
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let (Ok(n), Ok(target)) = (name.parse(), fs::read_link(e.path())) {
            out.insert((n, target.to_string_lossy().into_owned()));
        }
    }
    out
}

/// Checks at the end of a test that the process's descriptors are those it started with.
pub struct FdCheck(BTreeSet<(i32, String)>);

impl FdCheck {
    pub fn new() -> FdCheck {
        FdCheck(fd_set(None))
    }

    /// Wait (generously: reader tasks end asynchronously) for the same set again.
    pub fn assert_same(&self) {
        let t0 = Instant::now();
        loop {
            let now = fd_set(None);
            if now == self.0 {
                return;
            }
            if t0.elapsed() > PATIENCE {
                let unix = fs::read_to_string("/proc/net/unix").unwrap_or_default();
                let tcp = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
                let extra: Vec<String> = now
                    .difference(&self.0)
                    .map(|(_, t)| {
                        let ino = t.trim_start_matches("socket:[").trim_end_matches(']');
                        let line = unix
                            .lines()
                            .chain(tcp.lines())
                            .find(|l| l.split_whitespace().any(|w| w == ino))
                            .unwrap_or("");
                        format!("{t}: {line}")
                    })
                    .collect();
                panic!(
                    "descriptors differ: before {:?}, after {:?}, new: {extra:#?}",
                    self.0, now
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Default for FdCheck {
    fn default() -> Self {
        Self::new()
    }
}

/// The byte at `i` of every test file: a pattern that does not repeat for 2^32 bytes.
pub fn byte_at(i: u64) -> u8 {
    let x = (i / 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> (8 * (i % 4) + 24)) as u8
}

pub fn content(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(byte_at).collect()
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// A test file of `len` bytes with the pattern above.
pub fn make_file(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap();
    let mut off = 0;
    while off < len {
        let n = (len - off).min(MIB);
        std::io::Write::write_all(&mut f, &content(off, n)).unwrap();
        off += n;
    }
    p
}

pub fn position(f: &File) -> u64 {
    let mut f = f;
    f.stream_position().unwrap()
}

pub fn seek(f: &File, to: u64) {
    let mut f = f;
    f.seek(SeekFrom::Start(to)).unwrap();
}

/// What a receiver got: the byte count and their sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub len: u64,
    pub sha256: [u8; 32],
}

impl Received {
    pub fn of(b: &[u8]) -> Received {
        Received {
            len: b.len() as u64,
            sha256: sha256(b),
        }
    }

    /// What reading `len` bytes of the pattern from `offset` gives.
    pub fn expected(offset: u64, len: u64) -> Received {
        let mut h = Sha256::new();
        let mut off = offset;
        while off < offset + len {
            let n = (offset + len - off).min(MIB);
            h.update(content(off, n));
            off += n;
        }
        Received {
            len,
            sha256: h.finalize().into(),
        }
    }
}

/// Read `r` to end of file (or reset), hashing.
pub fn drain(mut r: impl Read) -> Received {
    let mut h = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0; 256 * 1024];
    loop {
        match r.read(&mut buf) {
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

/// A TCP connection on 127.0.0.1: `client` is the destination handed to the daemon,
/// `server` the receiving end.
pub struct Peer {
    pub client: TcpStream,
    pub server: Option<TcpStream>,
    reader: Option<JoinHandle<Received>>,
}

impl Peer {
    /// A connection whose receiver reads everything in a thread.
    pub fn new() -> Peer {
        let mut p = Peer::idle(None);
        p.start();
        p
    }

    /// A connection nobody reads yet, with a small receive buffer if asked.
    pub fn idle(rcvbuf: Option<i32>) -> Peer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        if let Some(n) = rcvbuf {
            setsockopt_int(&server, libc::SOL_SOCKET, libc::SO_RCVBUF, n);
        }
        Peer {
            client,
            server: Some(server),
            reader: None,
        }
    }

    pub fn start(&mut self) {
        let s = self.server.take().unwrap();
        self.reader = Some(thread::spawn(move || drain(s)));
    }

    /// Close the sending side and return what the receiver got.
    pub fn finish(mut self) -> Received {
        if self.reader.is_none() {
            self.start();
        }
        let _ = self.client.shutdown(std::net::Shutdown::Write);
        drop(self.client);
        self.reader.take().unwrap().join().unwrap()
    }
}

impl Default for Peer {
    fn default() -> Self {
        Self::new()
    }
}

pub fn setsockopt_int(s: &impl AsRawFd, level: i32, name: i32, v: i32) {
    // SAFETY: a plain system call with a valid int.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Close `s` with a RST (SO_LINGER 0).
pub fn reset(s: TcpStream) {
    linger0(&s);
    drop(s);
}

/// Make closing `s` send a RST.
pub fn linger0(s: &impl AsRawFd) {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a plain system call with a valid linger.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lg as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// The test files: small (100 KiB), medium (32 MiB), empty; made once in the target
/// directory and kept.
pub struct Files {
    pub small: PathBuf,
    pub medium: PathBuf,
    pub empty: PathBuf,
}

pub fn files() -> &'static Files {
    static F: OnceLock<Files> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sendfiled-files");
        fs::create_dir_all(&dir).unwrap();
        let make = |name: &str, len: u64| {
            let p = dir.join(name);
            if fs::metadata(&p).map(|m| m.len()).ok() != Some(len) {
                make_file(&dir, &format!("{name}.tmp"), len);
                fs::rename(dir.join(format!("{name}.tmp")), &p).unwrap();
            }
            p
        };
        let small = make("small", 100 * KIB);
        let medium = make("medium", 32 * MIB);
        let empty = make("empty", 0);
        Files {
            small,
            medium,
            empty,
        }
    })
}

/// The meson build tree the daemon came from (`$SENDFILED_BIN`'s, or the one found above
/// the crate).
pub fn build_dir() -> PathBuf {
    daemon_binary()
        .canonicalize()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .expect("the daemon is not in BUILD/daemon/")
        .to_path_buf()
}

/// The top of the source tree.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The version `sendfiled --version` prints ("sendfiled 0.1.0" -> "0.1.0").
pub fn daemon_version_printed() -> String {
    let out = std::process::Command::new(daemon_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim()
        .strip_prefix("sendfiled ")
        .unwrap_or_else(|| panic!("sendfiled --version printed {s:?}"))
        .to_string()
}
