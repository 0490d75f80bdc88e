#!/usr/bin/env python3
"""How closely the daemon's rate limit holds, against nginx's limit_rate in the
same run, and how late its deadline and idle timeout end a transfer.

Rates: each asked rate (decimal: 1 MB/s = 10^6 B/s) for 10 s of data, without
and with a burst (rate_limit_after, nginx's limit_rate_after) of 2 s worth,
over TCP loopback with cubic on the sockets this process makes (nginx's
listener is made here too and inherited through its NGINX variable, so its
connections are cubic as well). The receiver reads as fast as it can; the
rate it measures is

    without a burst: bytes / (time of the last byte - time of the request)
    with a burst:    bytes after the burst / (time of the last byte - time
                     the burst's last byte arrived)

and the error is (measured - asked) / asked. Daemon and nginx runs alternate
in pairs, the order swapped every pair. Statistic: the median and the worst
error per (implementation, rate, burst) over the runs.

Limits: a transfer with a deadline of 500 ms to a receiver that reads at the
rate limit (10 MB/s), and one with an idle timeout of 300 ms to a receiver
that does not read, on a non-blocking destination (the daemon's loop) and a
blocking one (a worker). Delay = reply time - the limit's moment: the
deadline's moment is request + 500 ms; the idle timeout's is the last time
the receiver's queue grew (sampled every millisecond) + 300 ms. Also the
time the receiver saw the last byte, relative to the deadline (negative:
before it). Statistic: median and max over the runs.

The bench process is pinned to one vCPU, the daemon and nginx to the other.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "bindings", "python", "src"))

import sendfiled  # noqa: E402

SIOCINQ = 0x541B
SIOCOUTQNSD = 0x894B
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
BENCH_CPU, SERVER_CPU = 1, 0


def cubic(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    except OSError:
        pass


class Receiver(threading.Thread):
    """Reads a socket to EOF (or `want` bytes), noting when the byte count
    crossed `mark` and when the last byte came."""

    def __init__(self, sock: socket.socket, want: int, mark: int = 0, skip_headers=False):
        super().__init__(daemon=True)
        self.sock, self.want, self.mark = sock, want, mark
        self.skip_headers = skip_headers
        self.n = 0
        self.t_mark = None
        self.t_last = None
        self.start()

    def run(self):
        buf = bytearray(1 << 20)
        mv = memoryview(buf)
        head = b""
        while self.n < self.want:
            k = self.sock.recv_into(mv)
            if k == 0:
                break
            now = time.monotonic()
            if self.skip_headers:
                head += bytes(mv[:k])
                i = head.find(b"\r\n\r\n")
                if i < 0:
                    continue
                k = len(head) - (i + 4)
                self.skip_headers = False
                if k == 0:
                    continue
            self.n += k
            self.t_last = now
            if self.t_mark is None and self.mark and self.n >= self.mark:
                self.t_mark = now


def tcp_pair(nonblock_dst: bool):
    lis = socket.socket()
    cubic(lis)
    lis.bind(("127.0.0.1", 0))
    lis.listen(1)
    dst = socket.socket()
    cubic(dst)
    dst.connect(lis.getsockname())
    rcv, _ = lis.accept()
    lis.close()
    cubic(rcv)
    dst.setblocking(not nonblock_dst)
    return dst, rcv


def via_daemon(client, path, rate, count, burst):
    dst, rcv = tcp_pair(True)
    r = Receiver(rcv, count, burst)
    with open(path, "rb") as f:
        t0 = time.monotonic()
        n = client.sendfile(dst, f, 0, count, rate_limit=rate,
                            rate_limit_after=burst or None)
    r.join(60)
    dst.close()
    rcv.close()
    assert n == count == r.n, (n, count, r.n)
    return t0, r


def via_nginx(port, name, rate, count, burst):
    s = socket.socket()
    cubic(s)
    s.connect(("127.0.0.1", port))
    r = Receiver(s, count, burst, skip_headers=True)
    t0 = time.monotonic()
    s.sendall(f"GET /{name}?rate={rate}&after={burst} HTTP/1.1\r\nHost: x\r\n"
              "Connection: close\r\n\r\n".encode())
    r.join(60)
    s.close()
    assert r.n == count, ("nginx sent", r.n, "of", count)
    return t0, r


def error(t0, r, rate, count, burst):
    if burst:
        secs = r.t_last - r.t_mark
        measured = (count - burst) / secs
    else:
        measured = count / (r.t_last - t0)
    return (measured - rate) / rate * 100


NGINX_CONF = """
daemon off;

worker_processes 1;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            limit_rate $arg_rate;
            limit_rate_after $arg_after;
        }}
    }}
}}
"""


def start_nginx(tmp, root):
    lis = socket.socket()
    lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    cubic(lis)
    lis.bind(("127.0.0.1", 0))
    lis.listen(64)
    port = lis.getsockname()[1]
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, port=port, root=root))
    fd = lis.fileno()
    os.set_inheritable(fd, True)
    env = dict(os.environ, NGINX=f"{fd};")
    p = subprocess.Popen(["taskset", "-c", str(SERVER_CPU), "nginx", "-p", tmp, "-c", conf],
                         env=env, pass_fds=(fd,), stderr=subprocess.DEVNULL)
    lis.close()
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return p, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nginx did not start")


def start_daemon(tmp, binary):
    sock = os.path.join(tmp, "sendfiled.sock")
    p = subprocess.Popen(["taskset", "-c", str(SERVER_CPU), binary, "--socket", sock,
                          "--no-control"], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            return p, sock
        time.sleep(0.02)
    raise RuntimeError("sendfiled did not start")


def sparse_file(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def warm(path, size):
    """Read the range once so that both implementations find it cached."""
    with open(path, "rb", buffering=0) as f:
        left = size
        while left > 0:
            b = f.read(min(left, 8 << 20))
            if not b:
                break
            left -= len(b)


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def rates_bench(args, client, port, root, out):
    name = "data.bin"
    path = os.path.join(root, name)
    rows = {}
    for rate in args.rates:
        for burst_s in (0, 2):
            burst = rate * burst_s
            count = rate * args.seconds + burst
            sparse_file(path, count)
            warm(path, count)
            for i in range(args.runs):
                order = ("daemon", "nginx") if i % 2 == 0 else ("nginx", "daemon")
                for impl in order:
                    if impl == "daemon":
                        t0, r = via_daemon(client, path, rate, count, burst)
                    else:
                        t0, r = via_nginx(port, name, rate, count, burst)
                    e = error(t0, r, rate, count, burst)
                    rows.setdefault((impl, rate, burst_s), []).append(e)
                    print(f"  {impl:6} rate {rate:>10} burst {burst_s}s run {i}: "
                          f"error {e:+.2f}%", file=out, flush=True)
            drop_cache(path)
            os.unlink(path)
    return rows


def limits_bench(args, client):
    """Deadline and idle timeout: reply delay and last-byte time."""
    res = {}
    path = os.path.join(args.tmp, "limits.bin")
    sparse_file(path, 256 << 20)
    warm(path, 256 << 20)
    for nonblock in (True, False):
        where = "loop" if nonblock else "worker"
        for i in range(args.limit_runs):
            # Deadline: a transfer kept moving by the rate limit.
            dst, rcv = tcp_pair(nonblock)
            r = Receiver(rcv, 1 << 62)
            with open(path, "rb") as f:
                t0 = time.monotonic()
                try:
                    client.sendfile(dst, f, 0, deadline=0.5, rate_limit=10_000_000)
                    raise AssertionError("the deadline did not end it")
                except sendfiled.TransferTimeoutError as e:
                    t_reply = time.monotonic()
                    sent = e.bytes_sent
            dst.close()
            r.join(10)
            rcv.close()
            assert r.n == sent, (r.n, sent)
            res.setdefault(("deadline reply", where), []).append((t_reply - t0 - 0.5) * 1000)
            res.setdefault(("deadline last byte", where), []).append(
                (r.t_last - t0 - 0.5) * 1000)

            # Idle: a receiver that does not read.
            dst, rcv = tcp_pair(nonblock)
            stop = threading.Event()
            last = [time.monotonic(), 0]

            def sample():
                # Bytes the daemon has written and nobody has read: those
                # not sent yet from the destination's queue plus those in
                # the receiver's queue (loopback delivers at once). Not
                # SIOCOUTQ: it counts delivered bytes until their delayed
                # ACK, 40 ms later. The sum grows exactly when the daemon
                # writes.
                while not stop.is_set():
                    q = (struct.unpack("i", fcntl.ioctl(rcv.fileno(), SIOCINQ, b"\0" * 4))[0] +
                         struct.unpack("i", fcntl.ioctl(dst.fileno(), SIOCOUTQNSD,
                                                        b"\0" * 4))[0])
                    if q > last[1]:
                        last[:] = [time.monotonic(), q]
                    time.sleep(0.001)

            th = threading.Thread(target=sample, daemon=True)
            with open(path, "rb") as f:
                th.start()
                try:
                    client.sendfile(dst, f, 0, idle_timeout=0.3)
                    raise AssertionError("the idle timeout did not end it")
                except sendfiled.TransferTimeoutError as e:
                    t_reply = time.monotonic()
                    sent = e.bytes_sent
            stop.set()
            th.join()
            dst.close()
            r = Receiver(rcv, 1 << 62)
            r.join(10)
            rcv.close()
            assert r.n == sent, (r.n, sent)
            res.setdefault(("idle reply", where), []).append((t_reply - last[0] - 0.3) * 1000)
    drop_cache(path)
    os.unlink(path)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--rates", default="1000000,10000000,100000000,1000000000")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit-runs", type=int, default=20)
    ap.add_argument("--only", choices=("rates", "limits"))
    args = ap.parse_args()
    args.rates = [int(x) for x in args.rates.split(",")]
    os.sched_setaffinity(0, {BENCH_CPU})
    print(f"placement: bench process on CPU {BENCH_CPU}; sendfiled and nginx on CPU "
          f"{SERVER_CPU}")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout
          .strip())
    args.tmp = tempfile.mkdtemp(prefix="sfd-ratelimit-")
    root = os.path.join(args.tmp, "www")
    os.mkdir(root)
    # nginx's worker runs as an unprivileged user when started as root.
    os.chmod(args.tmp, 0o755)
    os.chmod(root, 0o755)
    dp, sock = start_daemon(args.tmp, args.daemon)
    np_ = port = None
    if shutil.which("nginx") and args.only != "limits":
        np_, port = start_nginx(args.tmp, root)
    try:
        with sendfiled.Client(sock) as client:
            if args.only != "limits":
                print(f"rates over {args.seconds} s, {args.runs} runs each, "
                      "error = (measured - asked) / asked")
                rows = rates_bench(args, client, port, root, sys.stdout)
                print("\n| impl | asked (B/s) | burst | median error | worst error | runs |")
                print("| --- | ---: | ---: | ---: | ---: | ---: |")
                for (impl, rate, b), es in sorted(rows.items(), key=lambda kv: (kv[0][1],
                                                                               kv[0][2],
                                                                               kv[0][0])):
                    worst = max(es, key=abs)
                    print(f"| {impl} | {rate:,} | {b} s | {statistics.median(es):+.2f}% | "
                          f"{worst:+.2f}% | {len(es)} |")
            if args.only != "rates":
                res = limits_bench(args, client)
                print(f"\nlimits: {args.limit_runs} runs each, ms after the limit's moment")
                print("| what | where | median (ms) | max (ms) |")
                print("| --- | --- | ---: | ---: |")
                for (what, where), v in sorted(res.items()):
                    print(f"| {what} | {where} | {statistics.median(v):.1f} | "
                          f"{max(v):.1f} |")
    finally:
        dp.send_signal(signal.SIGTERM)
        dp.wait(10)
        if np_ is not None:
            np_.send_signal(signal.SIGQUIT)
            try:
                np_.wait(10)
            except subprocess.TimeoutExpired:
                np_.kill()
        shutil.rmtree(args.tmp, ignore_errors=True)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout
          .strip())


if __name__ == "__main__":
    main()
