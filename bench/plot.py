#!/usr/bin/env python3
"""Draw the benchmark pictures from the recorded figures.

    bench/plot.sh            (makes bench/.venv with matplotlib, then runs this)
    python3 bench/plot.py [RESULTS_DIR]

Reads the figures in bench/results/*.csv (taken from bench/RESULTS.md and
bench/python/RESULTS.md; lines starting with '#' are comments) and writes one
PNG per benchmark beside them, plus summary.png, the one README.md shows:

  large-file.png      1 GiB file: in-process sendfile(2) against offloaded, per run
  small-requests.png  4 KiB requests: the daemon against the floor server and the
                      raw descriptor-passing exchange, per run
  python-aiohttp.png  aiohttp FileResponse with and without the daemon, every run
  summary.png         the first two side by side, as ratios
"""
import csv
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

C_INPROC = "#4c72b0"
C_DAEMON = "#dd8452"
C_FLOOR = "#55a868"
C_RAW = "#8c8c8c"


def read(directory, name):
    with open(os.path.join(directory, name), newline="") as f:
        rows = [line for line in f if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(rows))


def num(s):
    return float(s) if s not in ("", None) else None


def short_label(row):
    run = row["run"].replace(" day run ", " #").replace("second", "2nd").replace("third", "3rd")
    return f"{run}\n{row['commit']}" if row.get("commit") else run


def large_file(rows, out):
    fig, ax = plt.subplots(figsize=(10, 4.8))
    x = range(len(rows))
    w = 0.38
    inproc = [num(r["inprocess_gbps"]) for r in rows]
    off = [num(r["offloaded_gbps"]) for r in rows]
    ax.bar([i - w / 2 for i in x], inproc, w, label="in-process sendfile(2)", color=C_INPROC)
    ax.bar([i + w / 2 for i in x], off, w, label="offloaded to sendfiled", color=C_DAEMON)
    for i, r in zip(x, rows):
        ax.annotate(f"{num(r['ratio']):.2f}", (i, max(inproc[i], off[i])),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([short_label(r) for r in rows], fontsize=7)
    ax.set_ylabel("GB/s (median of 64 rounds; 100 from 2026-12-03)")
    ax.set_ylim(0, max(inproc + off) * 1.3)
    ax.set_xlabel("runs of 2026-11-26 (second and third series), commit where recorded")
    ax.set_title("1 GiB page-cached file over TCP loopback\n"
                 "(numbers: offloaded / in-process, ratio of medians)")
    ax.legend(loc="upper left", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def small_requests(rows, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for ax, dest, title in ((axes[0], "tcp", "to TCP loopback"),
                            (axes[1], "unix", "to an AF_UNIX socket")):
        x = range(len(rows))
        w = 0.38
        daemon = [num(r[f"daemon_{dest}"]) / 1000 for r in rows]
        floor = [num(r[f"floor_{dest}"]) / 1000 if num(r[f"floor_{dest}"]) else None
                 for r in rows]
        raw = [num(r["raw"]) / 1000 for r in rows]
        ax.bar([i - w / 2 for i in x], [f or 0 for f in floor], w, color=C_FLOOR,
               label="floor server (only the syscalls needed)")
        ax.bar([i + w / 2 for i in x], daemon, w, color=C_DAEMON, label="sendfiled")
        ax.plot(list(x), raw, "o--", color=C_RAW, label="raw record + 2 fds exchange")
        for i in x:
            if floor[i]:
                ax.annotate(f"{daemon[i] / floor[i]:.2f}", (i + w / 2, daemon[i]),
                            textcoords="offset points", xytext=(0, 3), ha="center",
                            fontsize=8)
            else:
                ax.annotate("no floor\nrecorded", (i - w / 2, 2), ha="center", fontsize=6,
                            rotation=90, va="bottom", color="#555555")
        ax.set_xticks(list(x))
        ax.set_xticklabels([short_label(r) for r in rows], fontsize=7)
        ax.set_title(title)
        ax.set_ylim(0, max(raw) * 1.4)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("thousand requests/s")
    axes[0].legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle("4 KiB requests, 64 in flight on one connection "
                 "(numbers: sendfiled / floor server, same run)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def python_aiohttp(rows, out):
    loads = []
    for r in rows:
        if r["load"] not in loads:
            loads.append(r["load"])
    fig, axes = plt.subplots(1, len(loads), figsize=(11, 4.6))
    for ax, load in zip(axes, loads):
        sel = [r for r in rows if r["load"] == load]
        for i, r in enumerate(sel):
            runs = [num(v) for k, v in r.items() if k.startswith("run") and v]
            color = C_DAEMON if "sendfiled" in r["server"] else C_INPROC
            ax.bar(i, statistics.median(runs), 0.6, color=color, alpha=0.85)
            ax.plot([i] * len(runs), runs, "k.", markersize=4)
            # 4 KiB bodies make small GB/s figures: more digits.
            ax.annotate(f"{statistics.median(runs):.{2 if max(runs) >= 0.1 else 4}f}",
                        (i, max(runs)),
                        textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels([r["server"].replace("+", "\n+") for r in sel], fontsize=8)
        ax.set_title(load)
        ax.set_ylabel("GB/s of body (bars: median; dots: runs)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("aiohttp FileResponse, with and without sendfiled")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def summary(large, small, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ax = axes[0]
    x = range(len(large))
    ax.plot(list(x), [num(r["ratio"]) for r in large], "o-", color=C_DAEMON,
            label="ratio of medians")
    ax.plot(list(x), [num(r["paired"]) for r in large], "s--", color=C_INPROC,
            label="median of paired ratios")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhspan(0.90, 1.06, color=C_RAW, alpha=0.15,
               label="in-process against itself (A/A)")
    ax.set_ylim(0.85, 1.1)
    ax.set_xticks(list(x))
    ax.set_xticklabels([str(i + 1) for i in x])
    ax.set_xlabel("run (bench/results/large-file.csv)")
    ax.set_ylabel("offloaded / in-process sendfile(2)")
    ax.set_title("1 GiB file over TCP loopback")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    rows = [r for r in small if num(r["floor_tcp"])]
    labels = [short_label(r) for r in rows]
    x = range(len(rows))
    w = 0.2
    series = [("floor_tcp", "floor, TCP", C_FLOOR, 1.0), ("daemon_tcp", "sendfiled, TCP",
                                                          C_DAEMON, 1.0),
              ("floor_unix", "floor, AF_UNIX", C_FLOOR, 0.5),
              ("daemon_unix", "sendfiled, AF_UNIX", C_DAEMON, 0.5)]
    for k, (col, label, color, alpha) in enumerate(series):
        vals = [num(r[col]) / 1000 for r in rows]
        ax.bar([i + (k - 1.5) * w for i in x], vals, w, color=color, alpha=alpha, label=label)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("thousand requests/s")
    ax.set_title("4 KiB requests, 64 in flight on one connection")
    ax.set_ylim(0, 200)
    ax.legend(loc="upper center", fontsize=8, ncol=2,
              title="floor server: only the syscalls a request needs", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results")
    large = read(directory, "large-file.csv")
    small = read(directory, "small-requests.csv")
    py = read(directory, "python-aiohttp.csv")
    large_file(large, os.path.join(directory, "large-file.png"))
    small_requests(small, os.path.join(directory, "small-requests.png"))
    python_aiohttp(py, os.path.join(directory, "python-aiohttp.png"))
    summary(large, small, os.path.join(directory, "summary.png"))
    for name in ("large-file", "small-requests", "python-aiohttp", "summary"):
        print(os.path.join(directory, name + ".png"))


if __name__ == "__main__":
    main()
