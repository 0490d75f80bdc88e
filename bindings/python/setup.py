"""Packaging hook: remember where an installed libsendfiled lives.

Everything else is in pyproject.toml. When the package is built (pip install
./bindings/python), this writes sendfiled/_paths.py with the directories an
installed libsendfiled.so.0 is expected in, so that the package finds it at
run time without an environment variable:

- the install directory (prefix + libdir) of each meson build directory of
  the checkout this package is built from (build*/ at the top of the tree),
  as `meson install` puts the library there;
- the libdir of `pkg-config --variable=libdir sendfiled`, as seen at build
  time (this honours PKG_CONFIG_PATH).

Nothing is required to exist: each directory is tried at run time, in order,
and the error that lists every place tried names them. A build from an sdist
or anywhere without a checkout records only what pkg-config knows.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import List

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def meson_install_libdirs() -> List[str]:
    top = HERE.parent.parent
    builds = sorted(p for p in top.glob("build*") if p.is_dir())
    builds.sort(key=lambda p: (p.name != "build", p.name))
    found = []
    for b in builds:
        info = b / "meson-info" / "intro-buildoptions.json"
        try:
            opts = {o["name"]: o["value"] for o in json.loads(info.read_text())}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        prefix, libdir = opts.get("prefix"), opts.get("libdir")
        if isinstance(prefix, str) and isinstance(libdir, str) and prefix:
            found.append(os.path.normpath(os.path.join(prefix, libdir)))
    return found


def pkg_config_libdir() -> List[str]:
    try:
        r = subprocess.run(["pkg-config", "--variable=libdir", "sendfiled"],
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    d = r.stdout.strip()
    return [os.path.normpath(d)] if r.returncode == 0 and d else []


class BuildPyWithPaths(build_py):
    def run(self) -> None:
        super().run()
        dirs: List[str] = []
        for d in meson_install_libdirs() + pkg_config_libdir():
            if d not in dirs:
                dirs.append(d)
        out = Path(self.build_lib) / "sendfiled" / "_paths.py"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            '"""Where an installed libsendfiled was expected when this package was built\n'
            '(written by setup.py; tried by _lib.load_library())."""\n\n'
            f"LIBDIRS = {dirs!r}\n")


setup(cmdclass={"build_py": BuildPyWithPaths})
