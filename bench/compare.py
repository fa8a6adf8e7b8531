#!/usr/bin/env python3
"""Side-by-side benchmark of otasync and casync on the shared datasets.

Usage: python3 bench/compare.py [--runs N] [--bench DIR] [--only NAME,...]

Builds the datasets with ../shared/bench/make-datasets.sh (1 GiB each; about a minute) unless
they exist under $BENCH/data (default /var/tmp/otasync-bench), builds otasync in release mode,
then runs each operation with both tools: one warm-up run, then N counted runs (default 3).
Prints median wall seconds (min-max), MB/s (10^6 bytes of input per median second) and peak
RSS from /usr/bin/time, as a Markdown table. Stores and outputs live in /dev/shm, so CPU cost
is measured, not the disk; every `make` writes into a brand-new store.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OTASYNC_SHARED", os.path.join(ROOT, "..", "shared"))
SCRATCH = "/dev/shm/otasync-bench"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS KiB, stdout)."""
    with tempfile.NamedTemporaryFile("r") as t:
        out = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M"] + cmd,
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wall, rss = t.read().split()
    return float(wall), int(rss), out.stdout


def measure(label, setup, cmd, runs, size):
    samples, peak, out = [], 0, b""
    for i in range(runs + 1):
        setup()
        wall, rss, out = timed(cmd)
        peak = max(peak, rss)
        if i > 0:
            samples.append(wall)
    med = statistics.median(samples)
    return {
        "label": label,
        "wall": med,
        "min": min(samples),
        "max": max(samples),
        "mbs": size / 1e6 / med,
        "rss": peak / 1024,
        "out": out,
    }


def fresh(path):
    def setup():
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
    return setup


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bench", default=os.environ.get("BENCH", "/var/tmp/otasync-bench"))
    ap.add_argument("--only", default="", help="comma-separated dataset names: random,image")
    args = ap.parse_args()

    data = os.path.join(args.bench, "data")
    datasets = {"random": os.path.join(data, "blob-random.bin"), "image": os.path.join(data, "v1.img")}
    if not all(os.path.exists(p) for p in datasets.values()):
        sh(["bash", os.path.join(SHARED, "bench", "make-datasets.sh")], env=dict(os.environ, BENCH=args.bench))
    sh(["cargo", "build", "--release", "--quiet", "-p", "otasync"], cwd=ROOT)
    otasync = os.path.join(ROOT, "target", "release", "otasync")
    tools = {"casync": "casync", "otasync": otasync}

    os.makedirs(SCRATCH, exist_ok=True)
    rows = []
    only = set(filter(None, args.only.split(",")))
    for name, path in datasets.items():
        if only and name not in only:
            continue
        size = os.path.getsize(path)
        indexes = {}
        for tool, exe in tools.items():
            store = os.path.join(SCRATCH, f"{tool}-{name}.castr")
            index = os.path.join(SCRATCH, f"{tool}-{name}.caibx")
            r = measure(f"make {name}", fresh(store), [exe, "make", f"--store={store}", index, path],
                        args.runs, size)
            rows.append((tool, r))
            indexes[tool] = (index, store)
        same = open(indexes["casync"][0], "rb").read() == open(indexes["otasync"][0], "rb").read()
        print(f"# {name}: .caibx byte-identical to casync's: {same}", file=sys.stderr)
        for tool, exe in tools.items():
            index, store = indexes[tool]
            out = os.path.join(SCRATCH, f"{tool}-{name}.out")
            r = measure(f"extract {name}", fresh(out), [exe, "extract", f"--store={store}", index, out],
                        args.runs, size)
            rows.append((tool, r))
            ok = subprocess.run(["cmp", "-s", out, path]).returncode == 0
            print(f"# {name}: {tool} extract identical to the input: {ok}", file=sys.stderr)
            os.unlink(out)
        for tool, exe in tools.items():
            r = measure(f"digest {name}", lambda: None, [exe, "digest", path], args.runs, size)
            rows.append((tool, r))
        for tool in tools:
            shutil.rmtree(indexes[tool][1])
            os.unlink(indexes[tool][0])

    print("| operation | tool | wall s (min-max) | MB/s | peak RSS MiB | speed-up |")
    print("|---|---|---|---|---|---|")
    base = {r["label"]: r["wall"] for tool, r in rows if tool == "casync"}
    for tool, r in rows:
        speedup = base[r["label"]] / r["wall"]
        print(f"| {r['label']} | {tool} | {r['wall']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | {r['mbs']:.0f} "
              f"| {r['rss']:.1f} | {speedup:.2f}x |")
    core = subprocess.run(["cargo", "run", "--release", "--quiet", "-p", "otasync-core", "--example",
                           "throughput", "--", datasets["image"]], cwd=ROOT, check=True,
                          stdout=subprocess.PIPE, text=True).stdout
    print("\nSingle-core primitives on the image (otasync-core, in memory):\n")
    print("```\n" + core.rstrip() + "\n```")


if __name__ == "__main__":
    main()
