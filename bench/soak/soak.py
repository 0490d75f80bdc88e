#!/usr/bin/env python3
"""Fault soak: many client processes doing random requests while things break.

    bench/soak/soak.py [--build DIR] [--clients N] [--in-flight N]
                       [--phase-seconds S] [--seed N] [--json PATH]
                       [--strict-positions]

This script is the service manager: it binds the daemon's SOCK_SEQPACKET
socket itself and keeps it, and starts build/daemon/sendfiled with it as
LISTEN_FDS (socket activation, as systemd does), so that a daemon killed with
SIGKILL can be replaced while connections wait in the socket's backlog.
(systemd-socket-activate cannot do that: it execs the daemon, and the
socket dies with it.)

Three phases, each --phase-seconds long, each with --clients soak-client
processes (bench/soak/soak-client.c, through libsendfiled) keeping
--in-flight random requests in flight, whose receivers read, reset, stall
(and cancel), whose sources get truncated mid-transfer or are not readable:

  1. faults       only the faults above;
  2. client-kill  and a random client is killed with SIGKILL every 0.2-0.8 s
                  (mid-request: it always has requests in flight), and
                  replaced;
  3. daemon-kill  and the daemon is killed with SIGKILL every 2-5 s, and
                  restarted on the same socket 0-200 ms later.

After each phase the daemon's descriptor count must come back to what it was
idle before the first phase, every client must have ended in time with the
descriptors it started with, and every request of a client that was not
killed must have ended with exactly one reply that agrees with what its
receiver got and with the file position, within its deadline (30 s), or, where the
daemon died, with its receiver read to the end. For those, the file position
is compared with the bytes received and counted apart: death_pos_ok when it
tells how much was sent, death_pos_stale when it does not (the daemon sets
positions when a transfer ends, so one killed mid-transfer leaves them
where they were). Those do not fail the run unless --strict-positions.

Prints a summary per phase and for the run, writes them as JSON to --json,
and exits 0 when nothing was lost, leaked or wrong, 1 otherwise.
Standard library only. It loads the machine fully: run one at a time
(flock LOCKFILE bench/soak/soak.py ...).
"""
import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
DEADLINE_S = 30  # soak-client's per-request deadline
SUMMED = ["submitted", "replied", "finished", "bytes_received", "cancels_sent", "verify_failed",
          "position_failed", "lost", "died_in_flight", "death_pos_ok", "death_pos_ok_sent",
          "death_pos_stale",
          "death_unverifiable", "submit_retried", "reconnects", "unknown_replies",
          "unreadable_ok_at_eof"]
STATUS_NAMES = ["OK", "NOT_AVAILABLE", "INVALID_ARGUMENT", "PEER_CLOSED", "IO_ERROR",
                "CANCELLED", "LIMIT", "PROTOCOL", "SHUTTING_DOWN", "PERMISSION_DENIED"]


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Daemon:
    """The daemon under socket activation, on a listening socket we hold."""

    def __init__(self, binary, directory):
        self.binary = binary
        self.dir = directory
        self.sock_path = os.path.join(directory, "sendfiled.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(self.sock_path)
        self.listener.listen(512)
        self.proc = None
        self.log = open(os.path.join(directory, "daemon.log"), "ab")
        self.starts = 0

    def start(self):
        fd = self.listener.fileno()
        env = dict(os.environ)
        env.update({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "data"})
        for k in ("NOTIFY_SOCKET", "SENDFILED_CONFIG", "SENDFILED_SOCKET", "WATCHDOG_USEC"):
            env.pop(k, None)
        conf = os.path.join(self.dir, "empty.conf")
        open(conf, "w").close()
        # bash puts the listener on descriptor 3 and sets LISTEN_PID to its
        # own pid, which exec gives to the daemon.
        script = f'exec 90<&{fd}; exec 3<&90; exec 90<&-; LISTEN_PID=$$ exec "$0" "$@"'
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", script, self.binary, "--config", conf],
            env=env, pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.starts += 1
        # Ready once the daemon has exec'd and bound its control socket.
        control = os.path.join(self.dir, "control.sock")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if (os.readlink(f"/proc/{self.proc.pid}/exe").endswith("sendfiled")
                        and os.path.exists(control) and self.proc.poll() is None):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"the daemon did not start (exit {self.proc.poll()})")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # The stale control sockets are replaced by the next daemon.

    def alive(self):
        return self.proc.poll() is None

    def fds(self):
        return fd_count(self.proc.pid)

    def idle_fds(self, target, timeout=20.0):
        """The descriptor count once it has settled (at @target, or after
        @timeout): transfers cancelled by a client's death end a moment
        after it."""
        deadline = time.monotonic() + timeout
        n = self.fds()
        while n != target and time.monotonic() < deadline:
            time.sleep(0.1)
            n = self.fds()
        return n

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.listener.close()
        self.log.close()


class Client:
    def __init__(self, binary, sock, seconds, seed, in_flight):
        self.proc = subprocess.Popen([binary, sock, f"{seconds:.2f}", str(seed), str(in_flight)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.last = None  # the last progress or final record
        self.final = None
        self.killed = False
        self.deadline = time.monotonic() + seconds + 2 * DEADLINE_S + 10

    def read(self):
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, ValueError):
            return
        if chunk:
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            self.last = rec
            if rec.get("final"):
                self.final = rec

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.killed = True


def run_phase(name, args, daemon, baseline, rng, client_bin):
    seconds = args.phase_seconds
    t0 = time.monotonic()
    end = t0 + seconds
    seeds = iter(range(rng.randrange(1 << 30), 1 << 40))
    clients = [Client(client_bin, daemon.sock_path, seconds, next(seeds), args.in_flight)
               for _ in range(args.clients)]
    everyone = list(clients)
    next_client_kill = t0 + rng.uniform(0.2, 0.8)
    next_daemon_kill = t0 + rng.uniform(2, 5)
    client_kills = daemon_kills = 0
    crashed = False
    while True:
        now = time.monotonic()
        running = [c for c in everyone if c.proc.poll() is None]
        for c in everyone:
            c.read()
        if not running:
            break
        if name == "client-kill" and now >= next_client_kill and now < end - 0.5:
            live = [c for c in clients if c.proc.poll() is None]
            if live:
                victim = rng.choice(live)
                victim.read()
                victim.kill()
                client_kills += 1
                clients.remove(victim)
                repl = Client(client_bin, daemon.sock_path, end - now, next(seeds), args.in_flight)
                clients.append(repl)
                everyone.append(repl)
            next_client_kill = now + rng.uniform(0.2, 0.8)
        if name == "daemon-kill" and now >= next_daemon_kill and now < end - 1:
            daemon.kill()
            daemon_kills += 1
            time.sleep(rng.uniform(0, 0.2))
            daemon.start()
            next_daemon_kill = time.monotonic() + rng.uniform(2, 5)
        if not daemon.alive():
            crashed = True
            print(f"[{name}] the daemon exited on its own ({daemon.proc.returncode});"
                  " restarting it", flush=True)
            daemon.start()
        for c in running:
            if now > c.deadline:
                print(f"[{name}] client {c.proc.pid} is past its deadline: killed", flush=True)
                c.kill()
                c.hung = True
        fds = [c.proc.stdout.fileno() for c in running]
        select.select(fds, [], [], 0.05)
    for c in everyone:
        c.proc.wait()
        c.read()
        c.proc.stdout.close()
        # A killed client cannot remove its files.
        shutil.rmtree(f"/dev/shm/soak-client-{c.proc.pid}", ignore_errors=True)
        shutil.rmtree(os.path.join(tempfile.gettempdir(), f"soak-client-{c.proc.pid}"),
                      ignore_errors=True)
    elapsed = time.monotonic() - t0
    daemon_fds = daemon.idle_fds(baseline)

    res = {"phase": name, "seconds": round(elapsed, 1), "clients": len(everyone),
           "clients_killed": client_kills, "daemon_kills": daemon_kills,
           "daemon_crashed": crashed, "daemon_fds_idle_before": baseline,
           "daemon_fds_after": daemon_fds}
    for k in SUMMED:
        res[k] = 0
    res["status"] = {s: 0 for s in STATUS_NAMES}
    res["kinds"] = {}
    res["clients_failed"] = res["client_fd_leaks"] = res["clients_hung"] = 0
    res["killed_requests_finished"] = res["killed_requests_abandoned"] = 0
    # Over the clients that ran to the end: every request they submitted was
    # answered, died with the daemon, or was lost.
    done = {"submitted": 0, "replied": 0, "died_in_flight": 0, "lost": 0}
    for c in everyone:
        if getattr(c, "hung", False):
            res["clients_hung"] += 1
            continue
        if c.killed and c.final is None:
            # What it checked before it was killed counts; its requests in
            # flight died with it: their outcome is the daemon's business
            # (cancel, close, no leak), checked by the descriptor count.
            rec = c.last
            if rec is None:
                continue
            res["killed_requests_finished"] += rec["finished"]
            res["killed_requests_abandoned"] += rec["submitted"] - rec["finished"]
        else:
            rec = c.final
            if rec is None:
                res["clients_failed"] += 1
                print(f"[{name}] client {c.proc.pid} exited {c.proc.returncode} without a"
                      " report", flush=True)
                continue
            if c.proc.returncode != 0:
                res["clients_failed"] += 1
            if rec["fd_end"] != rec["fd_start"]:
                res["client_fd_leaks"] += 1
            for k in done:
                done[k] += rec[k]
        for k in SUMMED:
            res[k] += rec[k]
        for i, v in enumerate(rec["status"]):
            res["status"][STATUS_NAMES[i]] += v
        for k, v in rec["kinds"].items():
            res["kinds"][k] = res["kinds"].get(k, 0) + v
    res["unaccounted"] = done["submitted"] - done["replied"] - done["died_in_flight"] - \
        done["lost"]
    res["requests"] = res["submitted"]
    res["daemon_fd_leak"] = (daemon_fds or 0) - baseline
    return res


def failures(res, strict_positions):
    bad = []
    for k in ("lost", "verify_failed", "position_failed", "unknown_replies", "clients_failed",
              "client_fd_leaks", "clients_hung"):
        if res[k]:
            bad.append(f"{k} {res[k]}")
    if res["daemon_fd_leak"]:
        bad.append(f"daemon descriptors {res['daemon_fds_after']} after, "
                   f"{res['daemon_fds_idle_before']} idle before")
    if res["daemon_crashed"]:
        bad.append("the daemon exited on its own")
    if res["unaccounted"]:
        bad.append(f"{res['unaccounted']} requests neither answered, nor died with the daemon, "
                   "nor lost")
    if strict_positions and res["death_pos_stale"]:
        bad.append(f"death_pos_stale {res['death_pos_stale']}")
    return bad


def describe(res):
    st = ", ".join(f"{k} {v}" for k, v in res["status"].items() if v)
    kinds = ", ".join(f"{k} {v}" for k, v in res["kinds"].items())
    return (f"[{res['phase']}] {res['seconds']} s, {res['clients']} clients "
            f"({res['clients_killed']} killed), daemon killed {res['daemon_kills']} times\n"
            f"  requests {res['requests']} ({kinds}); in killed clients: "
            f"{res['killed_requests_finished']} finished before the kill, "
            f"{res['killed_requests_abandoned']} in flight at it\n"
            f"  replies {res['replied']} ({st}); {res['bytes_received']} bytes received; "
            f"cancels {res['cancels_sent']}; resubmitted after a daemon death "
            f"{res['submit_retried']}\n"
            f"  no reply because the daemon died: {res['died_in_flight']} (position right "
            f"{res['death_pos_ok']}, of which {res['death_pos_ok_sent']} had sent something; "
            f"stale {res['death_pos_stale']}; unverifiable "
            f"{res['death_unverifiable']})\n"
            f"  unreadable source answered OK at end of file (known deviation): "
            f"{res['unreadable_ok_at_eof']}\n"
            f"  lost {res['lost']}, wrong {res['verify_failed']}, wrong position "
            f"{res['position_failed']}, duplicate/unknown replies {res['unknown_replies']}, "
            f"clients failed {res['clients_failed']}, hung {res['clients_hung']}, "
            f"client fd leaks {res['client_fd_leaks']}; daemon fds idle "
            f"{res['daemon_fds_idle_before']} -> {res['daemon_fds_after']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--phase-seconds", type=float, default=40)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--strict-positions", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    build = os.path.abspath(args.build)
    daemon_bin = os.path.join(build, "daemon", "sendfiled")
    client_bin = os.path.join(build, "bench", "soak", "soak-client")
    for f in (daemon_bin, client_bin):
        if not os.access(f, os.X_OK):
            sys.exit(f"soak.py: {f} is missing: build first (ninja -C {args.build})")

    directory = tempfile.mkdtemp(prefix="sfd-soak-", dir="/tmp")
    daemon = Daemon(daemon_bin, directory)
    started = time.time()
    results = {"seed": seed, "clients": args.clients, "in_flight": args.in_flight,
               "phase_seconds": args.phase_seconds, "started": time.strftime(
                   "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "kernel": os.uname().release, "cpus": os.cpu_count(), "phases": []}
    ok = True
    try:
        daemon.start()
        # Warm up (the worker threads and the control plane's lazily made
        # descriptors), then take the idle descriptor count.
        warm = Client(client_bin, daemon.sock_path, 1.0, seed, 4)
        warm.proc.wait()
        warm.proc.stdout.close()
        time.sleep(0.5)
        baseline = daemon.fds()
        print(f"soak: seed {seed}, {args.clients} clients x {args.in_flight} in flight, "
              f"{args.phase_seconds} s per phase; daemon idle with {baseline} descriptors",
              flush=True)
        for name in ("faults", "client-kill", "daemon-kill"):
            res = run_phase(name, args, daemon, baseline, rng, client_bin)
            bad = failures(res, args.strict_positions)
            res["failures"] = bad
            results["phases"].append(res)
            print(describe(res), flush=True)
            if bad:
                ok = False
                print(f"  FAILED: {'; '.join(bad)}", flush=True)
    finally:
        daemon.stop()
        log = os.path.join(directory, "daemon.log")
        if not ok and os.path.exists(log):
            with open(log, errors="replace") as f:
                tail = f.readlines()[-20:]
            print("daemon log (tail):\n" + "".join(tail), flush=True)
        shutil.rmtree(directory, ignore_errors=True)

    total = {k: sum(p[k] for p in results["phases"]) for k in
             SUMMED + ["requests", "clients_killed", "daemon_kills", "killed_requests_abandoned"]}
    total["seconds"] = round(time.time() - started, 1)
    total["ok"] = ok
    results["total"] = total
    print(f"soak: {total['requests']} requests in {total['seconds']} s, "
          f"{total['clients_killed']} clients and the daemon {total['daemon_kills']} times "
          f"killed; lost {total['lost']}, wrong {total['verify_failed']}, wrong position "
          f"{total['position_failed']}; after a daemon death: position right "
          f"{total['death_pos_ok']}, stale {total['death_pos_stale']}: "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
