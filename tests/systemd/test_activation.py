#!/usr/bin/env python3
"""Running under a service manager: socket activation (with systemd's own
systemd-socket-activate, and with a hand-made LISTEN_FDS for the cases it
cannot produce), the control plane beside a passed socket, and the
$NOTIFY_SOCKET protocol (READY=1, STATUS=, WATCHDOG=1, STOPPING=1).

Run by meson (suite 'systemd'). Standard library only.
"""
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

from svc import (CTL, DAEMON, Notify, Receiver, has, listening_socket, make_file,
                 run_tests, spawn_activated, tmpdir)

SSA = shutil.which("systemd-socket-activate")


def ctl(sock, *args, check=True):
    r = subprocess.run([CTL, "--socket", sock, *args], capture_output=True, text=True,
                       timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"sendfilectl {args} exited {r.returncode}: {r.stderr}")
    return r


def wait_path(path, proc, timeout=5):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited {proc.poll()} before {path} appeared")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


def connect_when_listening(path, proc, timeout=5):
    """Connect to @path once it listens: systemd-socket-activate binds the
    socket (the path appears) a moment before it calls listen()."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            return s
        except ConnectionRefusedError:
            s.close()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_systemd_socket_activate():
    """systemd-socket-activate binds the socket and execs the daemon on the
    first connection: real transfers, the control plane beside the socket,
    readiness, live status, the watchdog, stopping."""
    if not SSA:
        print("systemd-socket-activate not found: skipped")
        return
    d = tmpdir("ssa")
    sock = os.path.join(d, "sendfiled.sock")
    notify = Notify(d)
    path, sha = make_file(d, 5_000_000)
    proc = subprocess.Popen(
        [SSA, "--seqpacket", "--fdname=data", "-l", sock,
         f"--setenv=NOTIFY_SOCKET={notify.path}", "--setenv=WATCHDOG_USEC=200000",
         DAEMON, "--log-level", "info"],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_path(sock, proc)
        # The first connection starts the daemon; keep it open so that the
        # live status has a connection to count.
        held = connect_when_listening(sock, proc)
        ready = notify.wait_for(has("READY=1"), what="READY=1")
        assert any(line.startswith("STATUS=Serving:") for line in ready), ready
        wait_path(os.path.join(d, "control.sock"), proc)
        assert os.path.exists(os.path.join(d, "events.sock"))

        # A real transfer through the inherited socket.
        rx = Receiver()
        r = ctl(sock, "send", path, rx.addr)
        assert "sent 5000000 bytes" in r.stdout, r.stdout
        assert rx.result() == (5_000_000, sha)

        # The control plane answers about the passed socket.
        st = ctl(sock, "status")
        assert f"serving {sock}" in st.stdout, st.stdout
        assert f"pid {proc.pid}" in st.stdout, st.stdout

        # STATUS= follows the live counts (refreshed every 2 s).
        notify.wait_for(has("STATUS=Serving: 1 connection,"), timeout=6,
                        what="a status counting the held connection")
        # The watchdog: pings at half of WATCHDOG_USEC, i.e. every 100 ms.
        notify.drain(1.0)
        pings = [t for t, m in notify.snapshot() if "WATCHDOG=1" in m]
        recent = [t for t in pings if t > time.monotonic() - 1.0]
        assert len(recent) >= 5, f"{len(recent)} watchdog pings in the last second"

        proc.send_signal(signal.SIGTERM)
        stopping = notify.wait_for(has("STOPPING=1"), what="STOPPING=1")
        assert any(line.startswith("STATUS=Draining:") for line in stopping), stopping
        held.close()
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert "socket activation: serving the passed socket " + sock in err, err
    # The passed socket is its owner's: never unlinked. The control sockets
    # are the daemon's: removed.
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert not os.path.exists(os.path.join(d, "control.sock"))
    assert not os.path.exists(os.path.join(d, "events.sock"))
    notify.close()
    shutil.rmtree(d)


def test_named_descriptor_is_chosen():
    """Several descriptors: the one named "data" is the data socket; the
    others are closed. An unnamed single one is taken as it is."""
    d = tmpdir("names")
    other = listening_socket(os.path.join(d, "other.sock"))
    data = listening_socket(os.path.join(d, "data.sock"))
    p = spawn_activated([other, data], ["--no-control"], names=["other", "data"])
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(os.path.join(d, "data.sock"))
        time.sleep(0.3)
        links = set()
        for fd in os.listdir(f"/proc/{p.pid}/fd"):
            try:
                links.add(os.readlink(f"/proc/{p.pid}/fd/{fd}"))
            except FileNotFoundError:
                pass
        # "other" was closed; "data" is served.
        assert f"socket:[{os.fstat(other.fileno()).st_ino}]" not in links, links
        assert f"socket:[{os.fstat(data.fileno()).st_ino}]" in links, links
        p.stop()
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr()
    assert "closing descriptor 3 named 'other'" in err, err
    assert " serving " + os.path.join(d, "data.sock") in err, err

    # One descriptor, no names: taken.
    solo = listening_socket(os.path.join(d, "solo.sock"))
    p = spawn_activated([solo], ["--no-control"])
    try:
        time.sleep(0.2)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(os.path.join(d, "solo.sock"))
        p.stop()
    finally:
        if p.poll() is None:
            p.kill()
    assert " serving " + os.path.join(d, "solo.sock") in p.stderr()
    shutil.rmtree(d)


def test_bad_passed_sockets_are_refused():
    """A stream socket, or several descriptors none named "data": exit 1
    with a message, never serve the wrong thing."""
    d = tmpdir("bad")
    stream = listening_socket(os.path.join(d, "s.sock"), socket.SOCK_STREAM)
    p = spawn_activated([stream], ["--no-control"], names=["data"])
    assert p.wait(10) == 1
    assert "is not a listening AF_UNIX SOCK_SEQPACKET socket" in p.stderr(), p.stderr()

    a = listening_socket(os.path.join(d, "a.sock"))
    b = listening_socket(os.path.join(d, "b.sock"))
    p = spawn_activated([a, b], ["--no-control"], names=["x", "y"])
    assert p.wait(10) == 1
    assert "none is named 'data'" in p.stderr(), p.stderr()

    # A name count that does not match the descriptors is an error too.
    p = spawn_activated([a], ["--no-control"], names=["data", "extra"])
    assert p.wait(10) == 1
    assert "LISTEN_FDS" in p.stderr(), p.stderr()
    shutil.rmtree(d)


def test_control_socket_flags_and_no_control():
    """--control-socket/--events-socket place the control plane anywhere;
    --no-control runs without it."""
    d = tmpdir("ctlflags")
    data = listening_socket(os.path.join(d, "data.sock"))
    cpath, epath = os.path.join(d, "c"), os.path.join(d, "e")
    p = spawn_activated([data], ["--control-socket", cpath, "--events-socket", epath],
                        names=["data"])
    try:
        wait_path(cpath, p)
        wait_path(epath, p)
        assert stat.S_IMODE(os.stat(cpath).st_mode) == 0o600
        st = ctl(os.path.join(d, "data.sock"), "--control", cpath, "status", check=False)
        assert st.returncode == 0, st.stderr
        assert not os.path.exists(os.path.join(d, "data.control.sock"))
        p.stop()
    finally:
        if p.poll() is None:
            p.kill()
    assert not os.path.exists(cpath)

    p = spawn_activated([data], ["--no-control"], names=["data"])
    try:
        time.sleep(0.3)
        assert p.poll() is None, p.stderr()
        assert not os.path.exists(os.path.join(d, "data.control.sock"))
        p.stop()
    finally:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(d)


def test_standalone_notify_and_group():
    """Without socket activation the daemon binds its own socket (and removes
    it on exit), still speaks $NOTIFY_SOCKET, and gives every socket to
    socket_group with the control plane at 0660."""
    d = tmpdir("alone")
    notify = Notify(d)
    sock = os.path.join(d, "s.sock")
    group = 65534  # nogroup: not ours, so chown() must really happen
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    env.pop("LISTEN_FDS", None)
    p = subprocess.Popen([DAEMON, "--socket", sock, "--socket-group", str(group)],
                         env=env, stderr=subprocess.PIPE, text=True)
    try:
        notify.wait_for(has("READY=1"), what="READY=1")
        for name, mode in (("s.sock", 0o660), ("s.control.sock", 0o660),
                           ("s.events.sock", 0o660)):
            st = os.stat(os.path.join(d, name))
            assert st.st_gid == group, f"{name}: group {st.st_gid}"
            assert stat.S_IMODE(st.st_mode) == mode, f"{name}: mode {st.st_mode:o}"
        # No watchdog asked for, none sent.
        notify.drain(0.5)
        assert "WATCHDOG=1" not in notify.lines()
        p.send_signal(signal.SIGTERM)
        notify.wait_for(has("STOPPING=1"), what="STOPPING=1")
        assert p.wait(10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not os.path.exists(sock)
    notify.close()
    shutil.rmtree(d)


def test_drain_via_control_plane_notifies_stopping():
    """A drain asked for on the control plane is a stop like SIGTERM: the
    service manager hears STOPPING=1 too."""
    d = tmpdir("drain")
    notify = Notify(d)
    data = listening_socket(os.path.join(d, "data.sock"))
    p = spawn_activated([data], [], env={"NOTIFY_SOCKET": notify.path}, names=["data"])
    try:
        notify.wait_for(has("READY=1"), what="READY=1")
        ctl(os.path.join(d, "data.sock"), "drain")
        notify.wait_for(has("STOPPING=1"), what="STOPPING=1")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    notify.close()
    shutil.rmtree(d)


def test_passed_tcp_socket_in_other_network_namespace():
    """The unit sets PrivateNetwork=yes: a daemon in a network namespace of
    its own must still send to TCP sockets its clients pass it."""
    unshare = shutil.which("unshare")
    if not unshare or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        print("cannot create a network namespace here: skipped")
        return
    d = tmpdir("netns")
    sock = os.path.join(d, "s.sock")
    path, sha = make_file(d, 3_000_000)
    p = subprocess.Popen([unshare, "-n", DAEMON, "--socket", sock, "--no-control"],
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_path(sock, p)
        assert os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        rx = Receiver()
        r = ctl(sock, "send", path, rx.addr)
        assert "sent 3000000 bytes" in r.stdout, r.stdout
        assert rx.result() == (3_000_000, sha)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    shutil.rmtree(d)


if __name__ == "__main__":
    run_tests([
        test_systemd_socket_activate,
        test_named_descriptor_is_chosen,
        test_bad_passed_sockets_are_refused,
        test_control_socket_flags_and_no_control,
        test_standalone_notify_and_group,
        test_drain_via_control_plane_notifies_stopping,
        test_passed_tcp_socket_in_other_network_namespace,
    ])
