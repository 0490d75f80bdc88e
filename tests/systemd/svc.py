"""Helpers shared by the 'systemd' suite's tests: a $NOTIFY_SOCKET listener, a
socket-activation supervisor, a TCP receiver and a tiny test runner.

Standard library only. Paths of the programs under test come from the
environment meson sets (SENDFILED_BIN, SENDFILECTL_BIN, RESTART_CLIENT_BIN).
"""
import atexit
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

DAEMON = os.environ.get("SENDFILED_BIN", "build/daemon/sendfiled")
CTL = os.environ.get("SENDFILECTL_BIN", "build/tools/sendfilectl")
RESTART_CLIENT = os.environ.get("RESTART_CLIENT_BIN", "build/tests/systemd/restart-client")


def tmpdir(tag):
    # Short: a socket path must fit in 108 bytes.
    return tempfile.mkdtemp(prefix=f"sfd-{tag}-", dir="/tmp")


class Notify:
    """An AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET.
    A thread reads it all the time, as systemd does, and collects every
    message, each split into its KEY=VALUE lines."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, [lines])
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages.append((time.monotonic(), data.decode().split("\n")))
                self.cond.notify_all()

    def wait_for(self, pred, timeout=5.0, what="a notification"):
        """Wait until a message satisfies @pred(lines); return it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, msg in self.messages:
                    if pred(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m for _, m in self.messages]
                    raise AssertionError(f"no {what} within {timeout} s; got {seen}")
                self.cond.wait(left)

    def drain(self, seconds):
        time.sleep(seconds)

    def snapshot(self):
        with self.cond:
            return list(self.messages)

    def lines(self):
        return [line for _, msg in self.snapshot() for line in msg]

    def close(self):
        self.closed = True
        self.thread.join()
        self.sock.close()


def has(key):
    return lambda msg: any(line == key or line.startswith(key) for line in msg)


def listening_socket(path, kind=socket.SOCK_SEQPACKET):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(path)
    s.listen(128)
    return s


def spawn_activated(listeners, args=(), env=None, names=None):
    """Start the daemon as a service manager would: @listeners (socket
    objects) become descriptors 3, 4, ... with LISTEN_FDS, LISTEN_PID (the
    child's own pid, known only after fork) and LISTEN_FDNAMES. Returns a
    Popen-like object with pid, wait(), poll(), send_signal() and stderr path."""
    return Activated(listeners, args, env or {}, names)


_spawned = []


@atexit.register
def _cleanup():
    for a in _spawned:
        a.close()


class Activated:
    def __init__(self, listeners, args, env, names):
        self.errpath = tempfile.mktemp(prefix="sfd-daemon-", suffix=".log", dir="/tmp")
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["LISTEN_FDS"] = str(len(listeners))
        if names is not None:
            full_env["LISTEN_FDNAMES"] = ":".join(names)
        else:
            full_env.pop("LISTEN_FDNAMES", None)
        fds = [s.fileno() for s in listeners]
        assert all(fd < 90 for fd in fds)
        # bash moves the listeners to 3, 4, ... (through 90+ so that no
        # move overwrites another; dash takes single-digit descriptors
        # only) and sets LISTEN_PID to its own pid, which exec gives to the
        # daemon. Popen forks and execs in C: no Python code runs in the
        # child of this threaded process.
        tmp = " ".join(f"{90 + i}<&{fd}" for i, fd in enumerate(fds))
        final = " ".join(f"{3 + i}<&{90 + i}" for i in range(len(fds)))
        close = " ".join(f"{90 + i}<&-" for i in range(len(fds)))
        script = f'exec {tmp}; exec {final}; exec {close}; LISTEN_PID=$$ exec "$0" "$@"'
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, DAEMON, *args],
                                         env=full_env, pass_fds=fds, stdin=subprocess.DEVNULL,
                                         stderr=err)
        self.pid = self.proc.pid
        self.returncode = None
        _spawned.append(self)

    def poll(self):
        self.returncode = self.proc.poll()
        return self.returncode

    def wait(self, timeout=None):
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)
        self.wait()

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def close(self):
        if self.poll() is None:
            self.kill()
        if os.path.exists(self.errpath):
            os.unlink(self.errpath)

    def wait_handles_sigterm(self, timeout=5.0):
        """Until the daemon has exec'd and blocks or catches SIGTERM: a
        SIGTERM before that (to bash, or to the daemon before main()) would
        kill it, as it would any program."""
        bit = 1 << (signal.SIGTERM - 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    st = dict(l.split(":", 1) for l in f if ":" in l)
                if os.readlink(f"/proc/{self.pid}/exe").endswith("sendfiled") and (
                        int(st["SigBlk"], 16) & bit or int(st["SigCgt"], 16) & bit):
                    return
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.005)

    def stop(self, timeout=15):
        """SIGTERM; the daemon must exit 0 within @timeout."""
        self.wait_handles_sigterm()
        self.send_signal(signal.SIGTERM)
        try:
            rc = self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the daemon did not stop on SIGTERM")
        assert rc == 0, f"the daemon exited {rc}: {self.stderr()}"


class Receiver:
    """A TCP receiver on loopback: counts and hashes what one peer sends."""

    def __init__(self):
        self.lis = socket.socket()
        self.lis.bind(("127.0.0.1", 0))
        self.lis.listen(1)
        self.addr = "127.0.0.1:%d" % self.lis.getsockname()[1]
        self.n = 0
        self.sha = hashlib.sha256()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        c, _ = self.lis.accept()
        self.lis.close()
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            self.n += len(d)
            self.sha.update(d)
        c.close()

    def result(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the receiver saw no end of stream"
        return self.n, self.sha.hexdigest()


def make_file(directory, size, name="data.bin"):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).hexdigest()


def run_tests(tests):
    """Run each test function; print a summary; exit 1 if any failed."""
    passed = failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f} s)")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
