#!/usr/bin/env python3
"""aiohttp FileResponse throughput with and without sendfiled, in one run.

Five servers, each in its own process, serve the same files; four with
aiohttp's web.FileResponse:

  uvloop             uvloop, as is (uvloop has no loop.sendfile: aiohttp copies
                     through user space in 256 KiB chunks)
  uvloop+sendfiled   uvloop with sendfiled.aio.install()
  asyncio            asyncio's loop, as is: its native loop.sendfile
                     (os.sendfile() in the server process)
  asyncio+sendfiled  asyncio's loop with sendfiled.aio.install() (small
                     ranges sent by libsendfiled in the server's thread, the
                     rest by the daemon)
  nginx              nginx from Debian, sendfile on, 2 workers (the baseline
                     a user would pick without Python)

Three loads, for each server in turn:

  big    one connection downloads a 1 GiB file several times (keep-alive);
         the client is a small process reading with recv_into() into 4 MiB.
  mib    wrk with many connections fetching 1 MiB files.
  small  wrk with many connections fetching 4 KiB files.

The servers run at once (idle while another is measured) and the runs are
interleaved, each load --repeat times, the order of the servers reversed
every other run; the median run is reported, with every run's figure
beside it, and the ratios are the median of the per-run ratios. For each: GB/s (10^9 bytes per second of body),
and the CPU seconds (user + system, from /proc/PID/stat) of the server
process and of the daemon during the run. Sockets use TCP_CONGESTION cubic where the benchmark makes them
(the server's listening socket, inherited by accepted connections, and the
big-file client); files are read once first so that they are in the page
cache. Results go to RESULTS.md beside this file (or --out).

Usage: bench.py [--build DIR] [--seconds S] [--rounds N] [--repeat N] [--out FILE]
                [--no-nginx]
(bench/python/run.sh installs wrk and nginx from Debian's packages when they
are missing, and runs it under flock /work/bench.lock.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
MiB = 1 << 20
GiB = 1 << 30
TICK = os.sysconf("SC_CLK_TCK")

CONFIGS = [
    ("uvloop", False),
    ("uvloop", True),
    ("asyncio", False),
    ("asyncio", True),
]


def name(loop: str, offload: bool) -> str:
    return loop + ("+sendfiled" if offload else "")


def cubic(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    except (OSError, AttributeError):
        pass


# -- server (a child process) ------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    if args.loop == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if args.offload:
        import sendfiled.aio
        sendfiled.aio.install(loop, path=args.socket, require_daemon=True)

    d = Path(args.dir)

    async def big(request: web.Request) -> web.FileResponse:
        return web.FileResponse(d / "big.bin")

    async def mib(request: web.Request) -> web.FileResponse:
        return web.FileResponse(d / f"mib{request.match_info['n']}.bin")

    async def small(request: web.Request) -> web.FileResponse:
        return web.FileResponse(d / f"small{request.match_info['n']}.bin")

    async def stats(request: web.Request) -> web.Response:
        import json
        import sendfiled
        return web.Response(text=json.dumps(sendfiled.stats()))

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/mib/{n}", mib)
    app.router.add_get("/small/{n}", small)
    app.router.add_get("/stats", stats)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cubic(lsock)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1024)
        site = web.SockSite(runner, lsock)
        await site.start()
        print(lsock.getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    loop.run_until_complete(main())
    loop.close()


# -- the big-file client (a child process) -----------------------------------


def fetch(args: argparse.Namespace) -> None:
    """GET /big args.n times on one connection; print bytes and seconds."""
    s = socket.create_connection(("127.0.0.1", args.port))
    cubic(s)
    buf = bytearray(4 * MiB)
    mv = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for _ in range(args.n):
        s.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed in the headers")
            head += chunk
        hdr, _, rest = head.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length:\s*(\d+)", hdr)
        assert m and hdr.startswith(b"HTTP/1.1 200"), hdr
        left = int(m.group(1)) - len(rest)
        got = len(rest)
        while left > 0:
            n = s.recv_into(mv, min(len(buf), left))
            if not n:
                raise SystemExit("connection closed in the body")
            left -= n
            got += n
        total += got
    dt = time.perf_counter() - t0
    s.close()
    print(total, dt, flush=True)


# -- orchestration -----------------------------------------------------------


def _stat(pid: int) -> List[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system seconds of @pid and of its children still running
    (nginx's workers)."""
    total = 0.0
    for p in [pid] + children(pid):
        try:
            fields = _stat(p)
        except OSError:
            continue
        # utime and stime are fields 14 and 15 (1-based); fields[0] is field 3.
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def children(pid: int) -> List[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(_stat(int(d))[1]) == pid:
                    out.append(int(d))
            except OSError:
                pass
    return out


NGINX_CONF = """daemon off;
master_process on;
worker_processes 2;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location /mib/ {{ rewrite ^/mib/(\\d+)$ /mib$1.bin break; }}
    location /small/ {{ rewrite ^/small/(\\d+)$ /small$1.bin break; }}
    location = /big {{ rewrite ^ /big.bin break; }}
  }}
}}
"""


CC_KEY = "net.ipv4.tcp_congestion_control"


def system_cubic() -> Optional[str]:
    """nginx cannot set TCP_CONGESTION on its sockets: for a fair run the
    system's default becomes cubic (as bench/node/bench.js does), and the
    previous value is returned for restore_cc(). None when it is cubic
    already or cannot be changed."""
    try:
        before = subprocess.run(["sysctl", "-n", CC_KEY], check=True, capture_output=True,
                                text=True).stdout.strip()
        if before == "cubic":
            return None
        subprocess.run(["sysctl", "-q", "-w", f"{CC_KEY}=cubic"], check=True,
                       capture_output=True)
        return before
    except (OSError, subprocess.CalledProcessError):
        return None


def restore_cc(before: Optional[str]) -> None:
    if before:
        subprocess.run(["sysctl", "-q", "-w", f"{CC_KEY}={before}"], check=False,
                       capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(tmp: Path, root: Path) -> Tuple["Proc", int]:
    """nginx as bench/node/bench.js runs it: sendfile on, 2 workers."""
    prefix = tmp / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "",
                                      prefix=prefix, port=port, root=root))
    p = Proc(["nginx", "-p", str(prefix), "-c", str(conf)], quiet=True)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return p, port
        except OSError:
            time.sleep(0.02)
    p.stop()
    raise RuntimeError("nginx did not start: " + (prefix / "error.log").read_text())


def make_files(d: Path, n_mib: int) -> None:
    block = random.Random(1).randbytes(MiB)
    big = d / "big.bin"
    if not big.exists() or big.stat().st_size != GiB:
        with open(big, "wb") as f:
            for i in range(1024):
                f.write(i.to_bytes(8, "little") + block[8:])
    for i in range(n_mib):
        p = d / f"mib{i}.bin"
        if not p.exists():
            p.write_bytes(i.to_bytes(8, "little") + block[8:])
        p = d / f"small{i}.bin"
        if not p.exists():
            p.write_bytes(i.to_bytes(8, "little") + block[8:4096])
    # Warm the page cache.
    for p in d.iterdir():
        with open(p, "rb") as f:
            while f.read(16 * MiB):
                pass


class Proc:
    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None,
                 quiet: bool = False) -> None:
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                                  env=env, text=True)

    def line(self) -> str:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.p.args} exited early")
        return line.strip()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run_big(port: int, rounds: int, server_pid: int, daemon_pid: int) -> Tuple[float, float,
                                                                               float]:
    c0, d0 = cpu_seconds(server_pid), cpu_seconds(daemon_pid)
    out = subprocess.run([sys.executable, __file__, "fetch", "--port", str(port), "-n",
                          str(rounds)], check=True, capture_output=True, text=True).stdout
    c1, d1 = cpu_seconds(server_pid), cpu_seconds(daemon_pid)
    total, dt = out.split()
    return int(total) / float(dt) / 1e9, c1 - c0, d1 - d0


WRK_LUA = """
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/{kind}/" .. (n % {files}))
end
"""


def run_mib(port: int, seconds: float, conns: int, n_files: int, script: Path,
            server_pid: int, daemon_pid: int, size: int = MiB
            ) -> Tuple[float, float, float, float, str]:
    c0, d0 = cpu_seconds(server_pid), cpu_seconds(daemon_pid)
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{int(seconds)}s", "-s", str(script),
            f"http://127.0.0.1:{port}"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    c1, d1 = cpu_seconds(server_pid), cpu_seconds(daemon_pid)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    assert m, out
    rps = float(m.group(1))
    return rps * size / 1e9, rps, c1 - c0, d1 - d0, errs.group(0) if errs else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--loop", required=True)
    s.add_argument("--offload", type=int, default=0)
    s.add_argument("--socket")
    s.add_argument("--dir", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("-n", type=int, default=3)
    ap.add_argument("--build", default=str(TOP / "build"))
    ap.add_argument("--seconds", type=int, default=4, help="duration of each wrk run")
    ap.add_argument("--rounds", type=int, default=8, help="1 GiB downloads per run")
    ap.add_argument("--repeat", type=int, default=7,
                    help="runs of the 1 GiB load per server (the median is reported)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--files", type=int, default=16, help="distinct 1 MiB files")
    ap.add_argument("--dir", help="where the files are made (default: a temporary directory)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--no-nginx", action="store_true", help="leave nginx out")
    args = ap.parse_args()
    if args.cmd == "serve":
        return serve(args)
    if args.cmd == "fetch":
        return fetch(args)
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    args.load_start = os.getloadavg()[0]
    build = Path(args.build).resolve()
    daemon_bin = build / "daemon" / "sendfiled"
    lib = build / "client-lib" / "libsendfiled.so.0"
    tmp = Path(tempfile.mkdtemp(prefix="sfd-bench-"))
    data = Path(args.dir) if args.dir else tmp
    data.mkdir(parents=True, exist_ok=True)
    print(f"making and warming the files in {data} ...", flush=True)
    make_files(data, args.files)
    script = tmp / "mib.lua"
    script.write_text(WRK_LUA.format(kind="mib", files=args.files))
    small_script = tmp / "small.lua"
    small_script.write_text(WRK_LUA.format(kind="small", files=args.files))

    sock = str(tmp / "sendfiled.sock")
    daemon = subprocess.Popen([str(daemon_bin), "--socket", sock], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.02)
    env = dict(os.environ, SENDFILED_LIB=str(lib))

    results: Dict[str, Dict[str, float]] = {}
    servers: Dict[str, Tuple[Proc, int]] = {}
    cc_before = None if args.no_nginx else system_cubic()
    args.cc_note = (f"the system's default congestion control set from {cc_before} to cubic "
                    f"for the run and restored after it (nginx cannot set it per socket)"
                    if cc_before else "")
    try:
        # All four servers run at once (idle when not under load), and the
        # runs are interleaved (A B C D A B C D ...), so that whatever else
        # the machine does weighs on every configuration alike.
        for loop, offload in CONFIGS:
            srv = Proc([sys.executable, __file__, "serve", "--loop", loop, "--offload",
                        str(int(offload)), "--socket", sock, "--dir", str(data)], env=env)
            servers[name(loop, offload)] = (srv, int(srv.line()))
        if not args.no_nginx:
            servers["nginx"] = start_nginx(tmp, data)
        for key, (srv, port) in servers.items():
            subprocess.run([sys.executable, __file__, "fetch", "--port", str(port), "-n", "1"],
                           check=True, capture_output=True)  # warm-up
        big: Dict[str, list] = {k: [] for k in servers}
        mib: Dict[str, list] = {k: [] for k in servers}
        small: Dict[str, list] = {k: [] for k in servers}

        def order(rep: int) -> List[Tuple[str, Tuple[Proc, int]]]:
            """The servers in turn, the order reversed every other run: the
            one measured first or last is not always the same."""
            items = list(servers.items())
            return items if rep % 2 == 0 else items[::-1]

        for rep in range(args.repeat):
            for key, (srv, port) in order(rep):
                big[key].append(run_big(port, args.rounds, srv.p.pid, daemon.pid))
                print(f"  1 GiB  {key:18} {big[key][-1][0]:6.2f} GB/s", flush=True)
        for rep in range(args.repeat):
            for key, (srv, port) in order(rep):
                mib[key].append(run_mib(port, args.seconds, args.connections, args.files, script,
                                        srv.p.pid, daemon.pid))
                print(f"  1 MiB  {key:18} {mib[key][-1][0]:6.2f} GB/s {mib[key][-1][4]}",
                      flush=True)
        for rep in range(args.repeat):
            for key, (srv, port) in order(rep):
                small[key].append(run_mib(port, args.seconds, args.connections, args.files,
                                          small_script, srv.p.pid, daemon.pid, size=4096))
                print(f"  4 KiB  {key:18} {small[key][-1][1]:8.0f} requests/s "
                      f"{small[key][-1][4]}", flush=True)
        import json
        import urllib.request
        for key, (srv, port) in servers.items():
            st: Dict[str, int] = {"offloaded": 0, "inline": 0}
            if key != "nginx":
                st = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())
            # The median run of each (by throughput), with its CPU times.
            gbs, cpu, dcpu = sorted(big[key])[len(big[key]) // 2]
            mgbs, rps, mcpu, mdcpu, errs = sorted(mib[key])[len(mib[key]) // 2]
            sgbs, srps, scpu, sdcpu, serrs = sorted(small[key])[len(small[key]) // 2]
            results[key] = dict(big_gbs=gbs, big_cpu=cpu, big_dcpu=dcpu, mib_gbs=mgbs,
                                mib_rps=rps, mib_cpu=mcpu, mib_dcpu=mdcpu,
                                small_gbs=sgbs, small_rps=srps, small_cpu=scpu,
                                small_dcpu=sdcpu,
                                offloaded=st["offloaded"], inline=st.get("inline", 0),
                                fallbacks=sum(
                                    v for k, v in st.items() if k.startswith("fallback_")),
                                big_all=[b[0] for b in big[key]],
                                mib_all=[m[0] for m in mib[key]],
                                small_all=[m[0] for m in small[key]])
    finally:
        for srv, _ in servers.values():
            srv.stop()
        daemon.terminate()
        daemon.wait()
        restore_cc(cc_before)
        shutil.rmtree(tmp, ignore_errors=True)

    write_results(args, results)


def write_results(args: argparse.Namespace, r: Dict[str, Dict[str, float]]) -> None:
    def ratio(a: str, b: str, k: str) -> str:
        """The median of the ratios of runs made one after the other (run i
        of a over run i of b), then the ratio of the medians."""
        pairs = sorted(x / y for x, y in zip(r[a][k + "_all"], r[b][k + "_all"]) if y)
        if not pairs or not r[b][k + "_gbs"]:
            return "n/a"
        each = " ".join(f"{x:.2f}" for x in pairs)
        return (f"**{pairs[len(pairs) // 2]:.2f}x** (run by run: {each}; ratio of the "
                f"medians {r[a][k + '_gbs'] / r[b][k + '_gbs']:.2f}x)")

    py = sys.executable
    if Path(py).is_relative_to(TOP):
        py = os.path.relpath(py, TOP)
    cmd = f"{py} bench/python/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# aiohttp FileResponse: with and without sendfiled",
        "",
        f"Command, from the top of the tree: `{cmd.strip()}` (that Python has the binding, "
        f"aiohttp and uvloop installed, as bindings/python/run-tests.sh makes it; wrk and "
        f"nginx from Debian's packages); `bench/python/run.sh` runs it so, after installing "
        f"and building what it needs: `flock /work/bench.lock bench/python/run.sh "
        f"{' '.join(shlex.quote(a) for a in sys.argv[1:] if a not in ('--build', 'build-release'))}`.",
        "",
        f"Machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}; {datetime.date.today().isoformat()}. Loopback TCP; "
        f"files in the page cache. GB/s is 10^9 bytes of body per second. CPU is user + "
        f"system seconds during the run, of the server process and of the daemon. Load "
        f"average (1 min) at the start {args.load_start:.2f}, at the end "
        f"{os.getloadavg()[0]:.2f}: anything else running on the machine shows in the "
        f"spread of the runs." + (f" TCP: {args.cc_note}." if args.cc_note else ""),
        "",
        f"## 1 GiB file, one connection ({args.rounds} downloads, keep-alive; the median "
        f"of {args.repeat} runs)",
        "",
        "| server | GB/s (median) | all runs | server CPU s | daemon CPU s "
        "| CPU s per GB (server + daemon) |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for k, v in r.items():
        gb = args.rounds * GiB / 1e9
        runs = " ".join(f"{x:.2f}" for x in v["big_all"])
        lines.append(f"| {k} | {v['big_gbs']:.2f} | {runs} | {v['big_cpu']:.2f} "
                     f"| {v['big_dcpu']:.2f} | {(v['big_cpu'] + v['big_dcpu']) / gb:.3f} |")
    lines += [
        "",
        f"## 1 MiB files, wrk -t2 -c{args.connections} -d{args.seconds:g}s "
        f"({args.files} distinct files; the median of {args.repeat} runs)",
        "",
        "| server | GB/s (median) | all runs | requests/s | server CPU s | daemon CPU s |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for k, v in r.items():
        runs = " ".join(f"{x:.2f}" for x in v["mib_all"])
        lines.append(f"| {k} | {v['mib_gbs']:.2f} | {runs} | {v['mib_rps']:.0f} "
                     f"| {v['mib_cpu']:.2f} | {v['mib_dcpu']:.2f} |")
    lines += [
        "",
        f"## 4 KiB files, wrk -t2 -c{args.connections} -d{args.seconds:g}s "
        f"({args.files} distinct files; the median of {args.repeat} runs)",
        "",
        "| server | requests/s (median) | all runs (requests/s) | server CPU s "
        "| daemon CPU s |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for k, v in r.items():
        runs = " ".join(f"{x * 1e9 / 4096:.0f}" for x in v["small_all"])
        lines.append(f"| {k} | {v['small_rps']:.0f} | {runs} | {v['small_cpu']:.2f} "
                     f"| {v['small_dcpu']:.2f} |")
    py_servers = {k: v for k, v in r.items() if k != "nginx"}
    lines += [
        "",
        "Requests libsendfiled answered, per server (every load and the warm-up): " +
        ", ".join(f"{k} {v['offloaded']}" for k, v in py_servers.items()) +
        "; of them sent in the server's own thread (the in-caller path): " +
        ", ".join(f"{k} {v['inline']}" for k, v in py_servers.items()) +
        "; served in-process by a fallback: " +
        ", ".join(f"{k} {v['fallbacks']}" for k, v in py_servers.items()) + ".",
    ]
    lines += [
        "",
        "## Ratios",
        "",
        "Throughput, offloaded over not (target: uvloop >= 2x on 1 GiB; asyncio's loop "
        ">= 0.9x of its native os.sendfile):",
        "",
        f"- 1 GiB, uvloop+sendfiled / uvloop: {ratio('uvloop+sendfiled', 'uvloop', 'big')}",
        f"- 1 GiB, asyncio+sendfiled / asyncio: {ratio('asyncio+sendfiled', 'asyncio', 'big')}",
        f"- 1 MiB, uvloop+sendfiled / uvloop: {ratio('uvloop+sendfiled', 'uvloop', 'mib')}",
        f"- 1 MiB, asyncio+sendfiled / asyncio: {ratio('asyncio+sendfiled', 'asyncio', 'mib')}",
        f"- 4 KiB, asyncio+sendfiled / asyncio: "
        f"{ratio('asyncio+sendfiled', 'asyncio', 'small')}",
        f"- 4 KiB, uvloop+sendfiled / uvloop: {ratio('uvloop+sendfiled', 'uvloop', 'small')}",
        "",
    ]
    if "nginx" in r:
        lines += [
            "Against nginx (sendfile on, 2 workers), the same runs:",
            "",
            f"- 1 GiB, asyncio+sendfiled / nginx: {ratio('asyncio+sendfiled', 'nginx', 'big')}",
            f"- 1 MiB, asyncio+sendfiled / nginx: {ratio('asyncio+sendfiled', 'nginx', 'mib')}",
            f"- 4 KiB, asyncio+sendfiled / nginx: "
            f"{ratio('asyncio+sendfiled', 'nginx', 'small')}",
            "",
        ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
