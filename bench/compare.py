#!/usr/bin/env python3
"""Side-by-side benchmark of otasync and casync on the shared datasets.

Usage: python3 bench/compare.py [--runs N] [--bench DIR] [--only NAME,...]
(OTASYNC_PREBUILT=1 uses target/release/otasync as it is.)

Builds the datasets with ../shared/bench/make-datasets.sh (1 GiB each; about a minute) unless
they exist under $BENCH/data (default /var/tmp/otasync-bench), builds otasync in release mode,
then runs each operation with both tools: one warm-up run, then N counted runs (default 3).
Prints median wall seconds (min-max), MB/s (10^6 bytes of input per median second) and peak
RSS from /usr/bin/time, as a Markdown table. Stores and outputs live in /dev/shm, so CPU cost
is measured, not the disk; every `make` writes into a brand-new store.
"""

import argparse
import json
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


def seeded_update(tools, data, runs):
    """v1 -> v2 update: extract v2 with v1 as seed from a store holding only the chunks v1 lacks."""
    v1, v2 = os.path.join(data, "v1.img"), os.path.join(data, "v2.img")
    size = os.path.getsize(v2)
    work = os.path.join(SCRATCH, "seeded")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    otasync = tools["otasync"]
    for v, img in (("v1", v1), ("v2", v2)):
        sh([otasync, "make", f"--store={work}/{v}.castr", f"{work}/{v}.caibx", img], stdout=subprocess.DEVNULL)
    delta = os.path.join(work, "delta.castr")
    for root, _, files in os.walk(os.path.join(work, "v2.castr")):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), os.path.join(work, "v2.castr"))
            if not os.path.exists(os.path.join(work, "v1.castr", rel)):
                os.makedirs(os.path.dirname(os.path.join(delta, rel)), exist_ok=True)
                shutil.copy(os.path.join(root, f), os.path.join(delta, rel))
    delta_bytes = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(delta) for f in fs)
    out = os.path.join(work, "out.img")
    index = os.path.join(work, "v2.caibx")
    rows = []
    env_tmp = dict(os.environ, TMPDIR=SCRATCH)
    common = [f"--store={delta}", f"--seed={v1}", index, out]
    casync_cmd = ["env", f"TMPDIR={SCRATCH}", "casync", "extract"] + common
    rows.append(("casync", measure("seeded update v1->v2", fresh(out), casync_cmd, runs, size)))
    ours = measure("seeded update v1->v2", fresh(out), [otasync, "extract"] + common, runs, size)
    rows.append(("otasync", ours))
    cached = [otasync, "extract", f"--seed-index-dir={work}/seed-indexes"] + common
    rows.append(("otasync, cached seed index", measure("seeded update v1->v2", fresh(out), cached, runs, size)))
    fresh(out)()
    stats = json.loads(subprocess.run([otasync, "extract", "--json"] + common, check=True,
                                      stdout=subprocess.PIPE, env=env_tmp).stdout)
    ok = subprocess.run(["cmp", "-s", out, v2]).returncode == 0
    fetched = sum(st["fetched_bytes"] for st in stats["stores"])
    print(f"# seeded: result identical to v2: {ok}; fetched {fetched} bytes in "
          f"{sum(st['chunks'] for st in stats['stores'])} chunks; the delta store holds {delta_bytes} bytes",
          file=sys.stderr)
    shutil.rmtree(work)
    return rows


def start_nginx(root, work):
    """Debian's nginx on a free loopback port serving root; returns (process, base URL)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root; worker_processes 2; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 512; }}
http {{ access_log off; client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp;
  fastcgi_temp_path {work}/tmp; uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
  keepalive_requests 1000000; sendfile on;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", work, "-g", "daemon off;"])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            import time
            time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port}"


def over_http(tools, data, runs):
    """Full extract of the image from nginx on loopback, cold target."""
    image = os.path.join(data, "v1.img")
    size = os.path.getsize(image)
    work = os.path.join(SCRATCH, "http")
    shutil.rmtree(work, ignore_errors=True)
    www = os.path.join(work, "www")
    os.makedirs(www)
    sh([tools["otasync"], "make", f"--store={www}/default.castr", f"{www}/v1.caibx", image], stdout=subprocess.DEVNULL)
    nginx, base = start_nginx(www, work)
    rows = []
    try:
        out = os.path.join(work, "out.img")
        for tool, exe in tools.items():
            rows.append((tool, measure("extract image over HTTP", fresh(out), [exe, "extract", f"{base}/v1.caibx", out],
                                       runs, size)))
            ok = subprocess.run(["cmp", "-s", out, image]).returncode == 0
            print(f"# http: {tool} result identical: {ok}", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work)
    return rows


def tree(tools, data, runs):
    """make of the ~1 GiB, 60k-file tree (d) into a .caidx and a new store, and its extract."""
    src = os.path.join(data, "tree")
    size = int(subprocess.run(["du", "-sb", src], check=True, stdout=subprocess.PIPE, text=True).stdout.split()[0])
    work = os.path.join(SCRATCH, "tree")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rows, indexes = [], {}
    for tool, exe in tools.items():
        store, index = os.path.join(work, f"{tool}.castr"), os.path.join(work, f"{tool}.caidx")
        rows.append((tool, measure("make tree .caidx", fresh(store), [exe, "make", f"--store={store}", index, src],
                                   runs, size)))
        indexes[tool] = (index, store)
    same = open(indexes["casync"][0], "rb").read() == open(indexes["otasync"][0], "rb").read()
    print(f"# tree: .caidx byte-identical to casync's: {same}", file=sys.stderr)
    for tool, exe in tools.items():
        index, store = indexes[tool]
        out = os.path.join(work, f"{tool}-out")
        rows.append((tool, measure("extract tree .caidx", fresh(out), [exe, "extract", f"--store={store}", index, out],
                                   runs, size)))
    shutil.rmtree(work)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bench", default=os.environ.get("BENCH", "/var/tmp/otasync-bench"))
    ap.add_argument("--only", default="", help="comma-separated parts: random,image,seeded,http,tree")
    args = ap.parse_args()

    data = os.path.join(args.bench, "data")
    datasets = {"random": os.path.join(data, "blob-random.bin"), "image": os.path.join(data, "v1.img")}
    if not all(os.path.exists(p) for p in datasets.values()):
        sh(["bash", os.path.join(SHARED, "bench", "make-datasets.sh")], env=dict(os.environ, BENCH=args.bench))
    if not os.environ.get("OTASYNC_PREBUILT"):
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

    if not only or "seeded" in only:
        rows += seeded_update(tools, data, args.runs)
    if not only or "http" in only:
        rows += over_http(tools, data, args.runs)
    if not only or "tree" in only:
        rows += tree(tools, data, args.runs)

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
