#!/usr/bin/env python3
"""A restart under socket activation refuses no client.

This script is the service manager: it binds the SOCK_SEQPACKET listening
socket itself and keeps it open, starts the daemon with it as LISTEN_FDS, and
restarts the daemon (SIGTERM, wait for it to exit, start a new one on the same
socket) while restart-client works through it. Connections made while no
daemon runs wait in the socket's backlog; requests the stopping daemon did not
act on are sent again by libsendfiled.

Run by meson (suite 'systemd'). Standard library only.
"""
import os
import select
import shutil
import signal
import subprocess
import time

from svc import (RESTART_CLIENT, Notify, has, listening_socket, make_file, run_tests,
                 spawn_activated, tmpdir)

REQUESTS = 500
# The reader of each transfer waits this long before reading: 500 requests
# take a few seconds, and the larger transfers are in flight when a restart
# comes.
PACE_US = 3000
RESTART_EVERY = 0.3  # seconds
MIN_RESTARTS = 4


class Supervisor:
    def __init__(self, tag, daemon_args=()):
        self.dir = tmpdir(tag)
        self.sock = os.path.join(self.dir, "sendfiled.sock")
        self.listener = listening_socket(self.sock)
        self.notify = Notify(self.dir)
        self.args = list(daemon_args)
        self.daemon = None
        self.generation = 0

    def start(self):
        self.generation += 1
        if self.daemon:
            self.daemon.close()
        self.daemon = spawn_activated([self.listener], self.args,
                                      env={"NOTIFY_SOCKET": self.notify.path},
                                      names=["data"])

    def stop(self):
        """As systemd's stop job: SIGTERM, then wait for the exit."""
        self.daemon.stop(timeout=20)
        err = self.daemon.stderr()
        # The passed socket is never unlinked by the daemon.
        assert os.path.exists(self.sock), "the daemon removed the passed socket"
        return err

    def close(self):
        if self.daemon:
            self.daemon.close()
        self.listener.close()
        self.notify.close()
        shutil.rmtree(self.dir)


def read_line(proc, timeout):
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    if not r:
        raise AssertionError(f"restart-client said nothing for {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"restart-client exited {proc.wait()}")
    return line.strip()


def test_sequential_requests_survive_restarts():
    """500 blocking sfd_client_sendfile() calls on one client, the daemon
    restarted every 0.3 s under them: every one succeeds, with the right
    bytes, result and file position."""
    sup = Supervisor("restart")
    path, _ = make_file(sup.dir, 4 << 20)
    client = None
    try:
        sup.start()
        client = subprocess.Popen(
            [RESTART_CLIENT, "sync", sup.sock, path, str(REQUESTS), str(PACE_US)],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        done = 0
        restarted_at = []
        next_restart = time.monotonic() + RESTART_EVERY
        while True:
            left = next_restart - time.monotonic()
            if left <= 0:
                # The client keeps sending while the daemon stops and
                # while no daemon runs at all.
                sup.stop()
                sup.start()
                restarted_at.append(done)
                next_restart = time.monotonic() + RESTART_EVERY
                continue
            r, _, _ = select.select([client.stdout], [], [], left)
            if not r:
                continue
            line = client.stdout.readline().strip()
            if not line:
                raise AssertionError(f"restart-client exited {client.wait()} after "
                                     f"{done} requests")
            if line.startswith("FAIL"):
                raise AssertionError(f"after {done} requests and restarts at "
                                     f"{restarted_at}: {line}")
            if line.startswith("done"):
                assert line == f"done {REQUESTS}", line
                break
            assert line == f"ok {done}", line
            done += 1
        assert client.wait(10) == 0
        # Restarts that came after the last request would prove nothing.
        during = [n for n in restarted_at if n < REQUESTS]
        assert len(during) >= MIN_RESTARTS, f"only restarted at {restarted_at}"
        print(f"restarted after requests {during}")
        sup.stop()
    finally:
        if client and client.poll() is None:
            client.kill()
        sup.close()


def test_async_resubmit_after_shutting_down():
    """The event-loop recipe from sendfiled.h: a request made on a connection
    while the daemon drains gets SHUTTING_DOWN with nothing sent; resubmitted
    on a new client it is served by the next daemon, and the transfer that
    was in flight during the drain completes on the old one."""
    sup = Supervisor("async")
    path, _ = make_file(sup.dir, 16 << 20)
    client = None
    try:
        sup.start()
        client = subprocess.Popen([RESTART_CLIENT, "async", sup.sock, path],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        assert read_line(client, 30) == "started"
        old = sup.daemon
        old.send_signal(signal.SIGTERM)
        sup.notify.wait_for(has("STOPPING=1"), what="STOPPING=1")
        client.stdin.write("go\n")
        client.stdin.flush()
        line = read_line(client, 30)
        assert line == "shutting down", line
        # The old daemon drains the first transfer, then exits; only then
        # does the "service manager" start the next one.
        assert old.wait(30) == 0, old.stderr()
        sup.start()  # closes the old one's log
        line = read_line(client, 30)
        assert line == "done", line
        assert client.wait(10) == 0
        sup.stop()
    finally:
        if client and client.poll() is None:
            client.kill()
        sup.close()


if __name__ == "__main__":
    run_tests([
        test_sequential_requests_survive_restarts,
        test_async_resubmit_after_shutting_down,
    ])
