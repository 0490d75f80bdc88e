#!/usr/bin/env python3
"""sendfiled --check-config: the effective configuration of a good file,
errors with FILE:LINE for bad ones, and the precedence of the command line
over the environment over the file over the defaults.

Run by meson (suite 'systemd'). Standard library only.
"""
import os
import shutil
import subprocess

from svc import DAEMON, run_tests, tmpdir

D = tmpdir("conf")


def write(name, text):
    path = os.path.join(D, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def check(*args, env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("SENDFILED_") and k != "XDG_RUNTIME_DIR"}
    e.update(env or {})
    return subprocess.run([DAEMON, "--check-config", *args], capture_output=True, text=True,
                          env=e, timeout=10)


def settings(out):
    """The printed configuration as {key: (value, origin comment)}."""
    res = {}
    for line in out.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, rest = line.split("=", 1)
        value, _, origin = rest.partition("  # ")
        res[key.strip()] = (value.strip(), origin.strip())
    return res


GOOD = """\
# a good file
socket = /tmp/sfd-good/s.sock
socket_mode = 0600
max_connections = 12
chunk_size = 512K
allow_uids = 0, 1000
log_level = info
"""


def test_good_file():
    path = write("good.conf", GOOD)
    r = check("--config", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    s = settings(r.stdout)
    assert s["socket"] == ("/tmp/sfd-good/s.sock", f"{path}:2"), s["socket"]
    assert s["socket_mode"] == ("0600", f"{path}:3")
    assert s["max_connections"] == ("12", f"{path}:4")
    assert s["chunk_size"] == ("512K", f"{path}:5")
    assert s["allow_uids"] == ("0,1000", f"{path}:6")
    assert s["log_level"] == ("info", f"{path}:7")
    assert s["workers"] == ("8", "default")
    # One event loop per CPU this process may run on.
    assert s["loops"] == (str(len(os.sched_getaffinity(0))), "default"), s["loops"]
    assert s["control_socket"][0] == "/tmp/sfd-good/s.control.sock"
    assert s["events_socket"][0] == "/tmp/sfd-good/s.events.sock"
    assert s["control_mode"][0] == "0600"
    assert f"# configuration file: {path}\n" in r.stdout
    # Every key is printed, and the output is itself a good file.
    assert s["max_handoffs"] == ("1024", "default")
    assert len(s) == 22, sorted(s)
    assert s["deadline_ms"] == ("0", "default") and s["idle_timeout_ms"] == ("0", "default")
    assert s["max_deadline_ms"] == ("86400000", "default")
    assert s["max_idle_timeout_ms"] == ("86400000", "default")
    again = write("again.conf", r.stdout)
    r2 = check("--config", again)
    assert r2.returncode == 0, r2.stderr
    assert {k: v[0] for k, v in settings(r2.stdout).items()} == \
        {k: v[0] for k, v in s.items()}


def test_unknown_key():
    path = write("unknown.conf", "workers = 2\n\n# fine\nmax_conections = 5\n")
    r = check("--config", path)
    assert r.returncode == 1
    assert f"{path}:4: unknown key 'max_conections'" in r.stderr, r.stderr
    assert "1 error in the configuration" in r.stderr, r.stderr
    assert r.stdout == "", "nothing is printed for a bad configuration"


def test_bad_values_with_line_numbers():
    path = write("bad.conf",
                 "socket_mode = 0999\n"
                 "workers = 4\n"
                 "chunk_size = 3X\n"
                 "socket_group = no-such-group-here\n"
                 "this is not a setting\n")
    r = check("--config", path)
    assert r.returncode == 1
    errs = r.stderr.splitlines()
    assert errs[0].startswith(f"{path}:1: socket_mode: bad file mode '0999'"), errs
    assert errs[1].startswith(f"{path}:3: chunk_size: bad size '3X'"), errs
    assert errs[2].startswith(f"{path}:4: socket_group: no such group"), errs
    assert errs[3].startswith(f"{path}:5: expected 'key = value'"), errs
    assert errs[4] == "sendfiled: 4 errors in the configuration", errs


def test_missing_files():
    # An explicit file must exist, by --config or $SENDFILED_CONFIG.
    r = check("--config", os.path.join(D, "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf: cannot open: No such file or directory" in r.stderr, r.stderr
    r = check(env={"SENDFILED_CONFIG": os.path.join(D, "nope.conf")})
    assert r.returncode == 1
    assert "nope.conf: cannot open" in r.stderr, r.stderr
    # $SENDFILED_CONFIG is used when set.
    path = write("env.conf", "workers = 9\n")
    r = check(env={"SENDFILED_CONFIG": path})
    assert r.returncode == 0, r.stderr
    assert settings(r.stdout)["workers"] == ("9", f"{path}:1")
    # --config wins over it.
    other = write("other.conf", "workers = 10\n")
    r = check("--config", other, env={"SENDFILED_CONFIG": path})
    assert settings(r.stdout)["workers"] == ("10", f"{other}:1")


def test_precedence():
    path = write("prec.conf", "socket = /tmp/file.sock\nlog_level = err\nworkers = 2\n"
                 "max_connections = 3\n")
    env = {"SENDFILED_SOCKET": "/tmp/env.sock", "SENDFILED_LOG_LEVEL": "info"}
    # File over defaults, environment over file.
    s = settings(check("--config", path, env=env).stdout)
    assert s["socket"] == ("/tmp/env.sock", "environment ($SENDFILED_SOCKET)")
    assert s["log_level"] == ("info", "environment ($SENDFILED_LOG_LEVEL)")
    assert s["workers"] == ("2", f"{path}:3")
    # Command line over everything.
    r = check("--config", path, "--socket", "/tmp/flag.sock", "-v", "--workers", "5",
              env=env)
    assert r.returncode == 0, r.stderr
    s = settings(r.stdout)
    assert s["socket"] == ("/tmp/flag.sock", "command line")
    assert s["log_level"] == ("debug", "command line")
    assert s["workers"] == ("5", "command line")
    assert s["max_connections"] == ("3", f"{path}:4")
    # The built-in socket default is under $XDG_RUNTIME_DIR when it is set.
    s = settings(check("--config", write("empty.conf", ""),
                       env={"XDG_RUNTIME_DIR": "/run/user/4242"}).stdout)
    assert s["socket"] == ("/run/user/4242/sendfiled/sendfiled.sock", "default")


def test_bad_flags():
    # Bad option values are configuration errors too; without --check-config
    # they are usage errors (exit 2).
    r = check("--chunk-size", "1K", "--allow-uid", "no-such-user-here")
    assert r.returncode == 1
    assert "--chunk-size: bad size '1K'" in r.stderr, r.stderr
    assert "--allow-uid: no such user: 'no-such-user-here'" in r.stderr, r.stderr
    r = subprocess.run([DAEMON, "--workers", "0"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2
    assert "--workers: bad thread count '0'" in r.stderr, r.stderr
    r = subprocess.run([DAEMON, "--no-such-option"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2
    # A bad file stops the daemon before it binds anything.
    path = write("stop.conf", "sockett = /tmp/x\n")
    sock = os.path.join(D, "never.sock")
    r = subprocess.run([DAEMON, "--config", path, "--socket", sock], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    assert "unknown key 'sockett'" in r.stderr, r.stderr
    assert not os.path.exists(sock)


def test_help_states_precedence():
    r = subprocess.run([DAEMON, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for text in ("--config PATH", "--check-config", "--control-socket PATH",
                 "--events-socket PATH", "--no-control", "--socket-group GROUP",
                 "the command line; the environment", "the configuration file; the",
                 "built-in default"):
        assert text in r.stdout, text


if __name__ == "__main__":
    try:
        run_tests([
            test_good_file,
            test_unknown_key,
            test_bad_values_with_line_numbers,
            test_missing_files,
            test_precedence,
            test_bad_flags,
            test_help_states_precedence,
        ])
    finally:
        shutil.rmtree(D, ignore_errors=True)
