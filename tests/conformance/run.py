#!/usr/bin/env python3
"""Run the conformance cases through every client against one real daemon.

    tests/conformance/run.py --build BUILD [--clients c,python,...]
                             [--doc docs/CONFORMANCE.md] [--case NAME]...

Starts the daemon from BUILD on a socket in a temporary directory, feeds
cases.json to each client's runner, judges what each runner reports the same
way for every client, prints the case x client matrix, and exits 1 if any
cell failed or any runner could not run (a missing toolchain is a failure,
not a skip). See README.md beside this file for the runner contract.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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
ALL_CLIENTS = ["c", "python", "node", "go", "rust"]
FIELDS = ["name", "op", "source", "path", "size", "offset", "count", "fallback", "dest",
          "action", "at"]
#: The optional features' names, by their proto Feature values.
FEATURE_NAMES = {1: "deadline", 2: "rate_limit", 3: "close_when_done", 4: "idle_timeout"}
#: A /proc file that fstat reports as size 0 and sendfile(2) refuses (so it
#: needs the daemon's read/write copy): this process's command line, stable
#: while it runs, and the same file whichever runner opens it.
PROC_SOURCE = f"/proc/{os.getpid()}/cmdline"


def content(size: int) -> bytes:
    """The generated source bytes: byte i is (i * 31 + (i >> 12)) & 0xff."""
    out = bytearray(size)
    for page in range(0, size, 4096):
        hi = page >> 12
        n = min(4096, size - page)
        out[page:page + n] = bytes(((page + j) * 31 + hi) & 0xFF for j in range(n))
    return bytes(out)


def source_bytes(case: dict, cache: Dict[Tuple[str, int], bytes]) -> bytes:
    if case.get("op") == "ping":
        return b""
    if case["source"] == "proc":
        with open(PROC_SOURCE, "rb") as f:
            return f.read()
    key = (case["source"], case.get("size", 0))
    if key not in cache:
        cache[key] = content(case.get("size", 0))
    return cache[key]


def wire_line(case: dict) -> str:
    vals = {
        "name": case["name"],
        "op": case.get("op", "sendfile"),
        "source": case.get("source", "-"),
        "path": PROC_SOURCE if case.get("source") == "proc" else "-",
        "size": case.get("size", 0),
        "offset": case.get("offset", 0),
        "count": case["count"] if "count" in case else "-",
        "fallback": 1 if case.get("fallback", True) else 0,
        "dest": case.get("dest", "-"),
        "action": case.get("action", "none"),
        "at": case.get("at", 0),
    }
    return " ".join(f"{k}={vals[k]}" for k in FIELDS)


def _varint(b: bytes, i: int) -> Tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def _fields(b: bytes):
    """(field, value) of each field of a protobuf message: an int for a
    varint, bytes for a length-delimited field (the only types used here)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        if key & 7 == 0:
            v, i = _varint(b, i)
            yield key >> 3, v
        elif key & 7 == 2:
            n, i = _varint(b, i)
            yield key >> 3, b[i:i + n]
            i += n
        else:
            raise ValueError(f"wire type {key & 7}")


def daemon_says(sock: Path) -> dict:
    """Who answers, in the daemon's own words: a Ping in the documented bytes
    (docs/PROTOCOL.md) and its PingInfo, decoded here, with no client in
    between. The feature names are those of the values run.py knows."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.send(b"\x08\x03\x22\x00")
        rec = s.recv(4096)
    info: dict = {"protocol_version": 1, "daemon_version": "", "features": set()}
    for field, v in _fields(rec):
        if field != 9 or not isinstance(v, bytes):
            continue
        for f, x in _fields(v):
            if f == 1:
                info["protocol_version"] = x
            elif f == 2:
                info["daemon_version"] = x.decode()
            elif f == 3:
                vals = [x] if isinstance(x, int) else []
                q = 0
                while isinstance(x, bytes) and q < len(x):
                    n, q = _varint(x, q)
                    vals.append(n)
                info["features"] |= {FEATURE_NAMES[n] for n in vals if n in FEATURE_NAMES}
    return info


def judge_ping(case: dict, got: dict, facts: dict) -> List[str]:
    """A ping's report: protocol 1, the version `sendfiled --version` prints,
    and exactly the features the daemon itself lists (none unknown)."""
    exp = case["expect"]
    bad: List[str] = []
    if got.get("status") != exp["status"]:
        bad.append(f"status {got.get('status')} (want {exp['status']}; {got.get('error', '')})")
    if got.get("protocol_version") != exp["protocol_version"]:
        bad.append(f"protocol_version {got.get('protocol_version')!r} "
                   f"(want {exp['protocol_version']})")
    if got.get("daemon_version") != facts["printed_version"]:
        bad.append(f"daemon_version {got.get('daemon_version')!r} "
                   f"(sendfiled --version: {facts['printed_version']!r})")
    feats = got.get("features")
    if not isinstance(feats, list) or len(set(feats)) != len(feats):
        bad.append(f"features {feats!r} is not a list of distinct names")
    elif set(feats) != facts["features"]:
        bad.append(f"features {sorted(feats)} (the daemon lists {sorted(facts['features'])})")
    return bad


def judge(case: dict, got: dict, src: bytes) -> List[str]:
    """What is wrong with a runner's report of @case; empty when it conforms."""
    exp = case["expect"]
    offset = case.get("offset", 0)
    avail = max(0, len(src) - offset)
    want_range = avail if "count" not in case else min(case["count"], avail)
    bad: List[str] = []

    if got.get("status") != exp["status"]:
        bad.append(f"status {got.get('status')} (want {exp['status']}; {got.get('error', '')})")
    n = got.get("bytes")
    if not isinstance(n, int):
        return bad + [f"bytes {n!r} is not a number"]
    want = exp["bytes"]
    if want == "range":
        if n != want_range:
            bad.append(f"bytes {n} (want {want_range})")
    elif want == "partial":
        if not 0 < n < want_range:
            bad.append(f"bytes {n} (want between 1 and {want_range - 1})")
    elif n != want:
        bad.append(f"bytes {n} (want {want})")

    fo = got.get("final_offset")
    if fo is not None and fo != offset + n:
        bad.append(f"final_offset {fo} (want {offset + n})")

    pos = got.get("position")
    where = exp["position"]
    if where == "end" and pos != offset + n:
        bad.append(f"position {pos} (want offset + bytes = {offset + n})")
    elif where == "untouched" and pos != 0:
        bad.append(f"position {pos} (want untouched: 0)")
    elif where == "none" and pos is not None:
        bad.append(f"position {pos} (want none: a pipe)")

    method = got.get("method")
    if n > 0 and "method" in exp and method not in exp["method"]:
        bad.append(f"method {method} (want one of {exp['method']})")

    rlen = got.get("received_len")
    if case.get("action") == "reset":
        if not isinstance(rlen, int) or rlen > n:
            bad.append(f"received {rlen} bytes, more than the {n} sent")
    elif rlen != n:
        bad.append(f"received {rlen} bytes (sent {n})")
    if isinstance(rlen, int) and rlen <= len(src) - offset:
        digest = hashlib.sha256(src[offset:offset + rlen]).hexdigest()
        if got.get("received_sha256") != digest:
            bad.append("received bytes differ from the source's range")
    return bad


class Daemon:
    def __init__(self, build: Path, tmp: Path) -> None:
        self.sock = tmp / "sendfiled.sock"
        binary = build / "daemon" / "sendfiled"
        if not binary.exists():
            raise SystemExit(f"run.py: {binary} is missing: build first (ninja -C {build})")
        self.proc = subprocess.Popen(
            [str(binary), "--socket", str(self.sock), "--no-control", "--log-level", "warning"],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"run.py: the daemon exited with status {self.proc.returncode}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                    s.connect(str(self.sock))
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("run.py: the daemon did not start listening in 20 s")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def settled_fd_count(self) -> int:
        """The daemon's descriptors once the connection that checked it was
        listening is gone: the same count twice, 200 ms apart."""
        last = -1
        for _ in range(50):
            n = self.fd_count()
            if n == last:
                return n
            last = n
            time.sleep(0.2)
        return last

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def runner_command(client: str, build: Path) -> Tuple[List[str], Dict[str, str], Optional[str]]:
    """The command that runs @client's runner, extra environment, and why it
    cannot run (None when it can)."""
    env: Dict[str, str] = {}
    lib = build / "client-lib" / "libsendfiled.so.0"
    env["SENDFILED_LIB"] = str(lib)
    r = HERE / "runners"
    if client == "c":
        exe = build / "tests" / "conformance" / "conformance-c"
        return [str(exe)], env, None if exe.exists() else f"{exe} is missing (ninja -C {build})"
    if client == "python":
        py = TOP / "bindings" / "python" / ".venv" / "bin" / "python"
        why = None if py.exists() else (f"{py} is missing: bindings/python/run-tests.sh "
                                        "makes the environment with the package installed")
        return [str(py), str(r / "python_runner.py")], env, why
    if client == "node":
        node = shutil.which("node")
        addon = TOP / "bindings" / "node" / "build" / "Release" / "sendfiled.node"
        why = None
        if not node:
            why = "node is not installed (scripts/install-deps.sh installs it)"
        elif not addon.exists():
            why = f"{addon} is missing: bindings/node/run-tests.sh builds it (npm install)"
        return [node or "node", str(r / "node_runner.js")], env, why
    if client == "go":
        go = shutil.which("go")
        env["GOFLAGS"] = "-mod=mod"
        return ([go or "go", "run", "."], env,
                None if go else "go is not installed (scripts/install-deps.sh installs it)")
    if client == "rust":
        cargo = shutil.which("cargo")
        # The binding's own target directory: its dependencies are built there already.
        env["CARGO_TARGET_DIR"] = str(TOP / "bindings" / "rust" / "target")
        return ([cargo or "cargo", "run", "--quiet", "--manifest-path",
                 str(r / "rust" / "Cargo.toml")], env,
                None if cargo else "cargo is not installed (scripts/install-deps.sh installs it)")
    raise SystemExit(f"run.py: unknown client {client!r}")


def run_client(client: str, build: Path, cases: List[dict], sock: Path,
               tmp: Path) -> Tuple[Dict[str, dict], Optional[str]]:
    cmd, env, why = runner_command(client, build)
    if why:
        return {}, why
    work = tmp / client
    work.mkdir()
    full_env = dict(os.environ, **env, SENDFILED_SOCKET=str(sock), CONFORMANCE_TMP=str(work))
    cwd = HERE / "runners" / "go" if client == "go" else TOP
    stdin = "".join(wire_line(c) + "\n" for c in cases)
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=full_env,
                           cwd=cwd, timeout=900)
    except subprocess.TimeoutExpired:
        return {}, "the runner ran past 900 s"
    except OSError as e:
        return {}, f"cannot start the runner: {e}"
    reports: Dict[str, dict] = {}
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rep = json.loads(line)
        except ValueError:
            continue
        reports[rep.get("case", "?")] = rep
    if p.returncode != 0 and not reports:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        return {}, f"the runner exited with status {p.returncode}:\n{tail}"
    if p.stderr.strip():
        sys.stderr.write(f"--- {client} runner stderr ---\n{p.stderr}")
    return reports, None


def write_doc(path: Path, clients: List[str], cases: List[dict],
              cells: Dict[Tuple[str, str], str]) -> None:
    lines = [
        "# Conformance: every client against one list of cases",
        "",
        "Each client of sendfiled runs the cases of "
        "[`tests/conformance/cases.json`](../tests/conformance/cases.json) through its own "
        "public API against one real daemon; "
        "[`tests/conformance/run.py`](../tests/conformance/run.py) judges every report the "
        "same way (status, bytes sent, final offset, file position, method, and the "
        "received bytes by SHA-256; for `ping`, the protocol version, the version "
        "`sendfiled --version` prints, and the features the daemon itself lists). "
        "`scripts/test.sh` runs it; this table is its output "
        "(`tests/conformance/run.py --build build --doc docs/CONFORMANCE.md`).",
        "",
        "| case | " + " | ".join(clients) + " |",
        "| --- | " + " | ".join("---" for _ in clients) + " |",
    ]
    for case in cases:
        row = [cells.get((case["name"], c), "?") for c in clients]
        lines.append(f"| `{case['name']}` | " + " | ".join(row) + " |")
    lines += ["", "pass: conforms; n/a: the client's public API cannot express the case "
              "(the reason is printed by run.py); FAIL: does not conform.", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", default=",".join(ALL_CLIENTS))
    ap.add_argument("--case", action="append", default=[])
    ap.add_argument("--doc")
    args = ap.parse_args()

    build = Path(args.build)
    if not build.is_absolute():
        build = build.resolve() if build.exists() else TOP / build
    clients = [c for c in args.clients.split(",") if c]
    cases = json.loads((HERE / "cases.json").read_text())["cases"]
    if args.case:
        cases = [c for c in cases if c["name"] in args.case]
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"

    failures = 0
    cells: Dict[Tuple[str, str], str] = {}
    srcs: Dict[Tuple[str, int], bytes] = {}
    with tempfile.TemporaryDirectory(prefix="sfd-conformance-") as t:
        tmp = Path(t)
        daemon = Daemon(build, tmp)
        baseline = daemon.settled_fd_count()
        facts = daemon_says(daemon.sock)
        printed = subprocess.run([str(build / "daemon" / "sendfiled"), "--version"],
                                 capture_output=True, text=True, check=True).stdout.split()
        facts["printed_version"] = printed[1] if len(printed) > 1 else ""
        try:
            for client in clients:
                t0 = time.monotonic()
                reports, why = run_client(client, build, cases, daemon.sock, tmp)
                if why:
                    print(f"{client}: CANNOT RUN: {why}")
                    failures += len(cases)
                    for c in cases:
                        cells[(c["name"], client)] = "FAIL"
                    continue
                for case in cases:
                    rep = reports.get(case["name"])
                    if rep is None:
                        bad = ["no report"]
                    elif "na" in rep:
                        cells[(case["name"], client)] = "n/a"
                        print(f"{client:7} {case['name']:32} n/a   {rep['na']}")
                        continue
                    elif case.get("op") == "ping":
                        bad = judge_ping(case, rep, facts)
                    else:
                        bad = judge(case, rep, source_bytes(case, srcs))
                    cells[(case["name"], client)] = "FAIL" if bad else "pass"
                    failures += bool(bad)
                    print(f"{client:7} {case['name']:32} {'FAIL' if bad else 'pass'}"
                          + (f"  {'; '.join(bad)}" if bad else ""))
                # Every runner's connections and descriptors are gone.
                deadline = time.monotonic() + 10
                while daemon.fd_count() != baseline and time.monotonic() < deadline:
                    time.sleep(0.05)
                if daemon.fd_count() != baseline:
                    print(f"{client}: FAIL: the daemon holds {daemon.fd_count()} descriptors "
                          f"after the runner, {baseline} before")
                    failures += 1
                print(f"{client}: {time.monotonic() - t0:.1f} s")
        finally:
            status = daemon.stop()
        if status != 0:
            print(f"the daemon exited with status {status}")
            failures += 1

    width = max(len(n) for n in names)
    print()
    print(" " * width + "  " + "  ".join(f"{c:6}" for c in clients))
    for case in cases:
        print(f"{case['name']:{width}}  "
              + "  ".join(f"{cells.get((case['name'], c), '?'):6}" for c in clients))
    if args.doc:
        write_doc(Path(args.doc), clients, cases, cells)
    print(f"\nconformance: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
