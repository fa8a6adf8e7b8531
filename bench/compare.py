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
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OTASYNC_SHARED", os.path.join(ROOT, "..", "shared"))
SCRATCH = "/dev/shm/otasync-bench"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS KiB, stdout)."""
    with tempfile.NamedTemporaryFile("r") as t:
        out = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M"] + cmd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr.decode(errors='replace')}")
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


def start_nginx(root, work, tls=None):
    """Debian's nginx on a free loopback port serving root (over HTTPS with tls = (cert, key));
    returns (process, base URL)."""
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
  server {{ listen 127.0.0.1:{port}{" ssl" if tls else ""}; root {root};
    {f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else ""} }} }}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", work, "-g", "daemon off;"])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            import time
            time.sleep(0.02)
    return proc, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


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


def agent_update(tools, data, runs):
    """The device agent: a signed v1 -> v2 update of a 1 GiB slot over HTTPS on loopback (nginx),
    with a redundant U-Boot environment; casync's part of RAUC's equivalent (a seeded
    extract from nginx over HTTP, no signature, verification or slot switch) beside it."""
    otasync = tools["otasync"]
    v1, v2 = os.path.join(data, "v1.img"), os.path.join(data, "v2.img")
    size = os.path.getsize(v2)
    work = os.path.join(SCRATCH, "agent")
    shutil.rmtree(work, ignore_errors=True)
    www = os.path.join(work, "www")
    os.makedirs(www)
    quiet = dict(stdout=subprocess.DEVNULL)
    w = lambda name: os.path.join(work, name)
    for key in ("root", "release"):
        sh([otasync, "keygen", f"--secret-key={w(key + '.sec')}", f"--public-key={w(key + '.pub')}"], **quiet)
    sh([otasync, "root", "create", w("root.json"), f"--root-key={w('root.pub')}",
        f"--release-key={w('release.pub')}"])
    sh([otasync, "make", f"--store={www}/store", f"{www}/v2.caibx", v2], **quiet)
    # v1's index, for the steady state: the agent installed v1 in both slots before.
    sh([otasync, "make", f"--store={w('v1.castr')}", w("v1.caibx"), v1], **quiet)
    shutil.rmtree(w("v1.castr"))
    sh([otasync, "manifest", "create", f"{www}/manifest.json", f"rootfs={www}/v2.caibx:{v2}",
        "--product=bench", "--release=v2", "--metadata-version=2"])
    sh([otasync, "sign", f"{www}/manifest.json", f"--key={w('release.sec')}"])
    # A CA and a server certificate for 127.0.0.1 signed by it (webpki refuses a CA as server).
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh(["openssl", "req", "-x509"] + ec + ["-keyout", w("ca.key"), "-out", w("ca.pem"), "-subj", "/CN=bench CA",
        "-days", "2"], stderr=subprocess.DEVNULL)
    sh(["openssl", "req"] + ec + ["-keyout", w("key.pem"), "-out", w("req.pem"), "-subj", "/CN=127.0.0.1"],
       stderr=subprocess.DEVNULL)
    with open(w("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    sh(["openssl", "x509", "-req", "-in", w("req.pem"), "-CA", w("ca.pem"), "-CAkey", w("ca.key"),
        "-CAcreateserial", "-out", w("cert.pem"), "-days", "2", "-extfile", w("ext.cnf")], stderr=subprocess.DEVNULL)
    server, base = start_nginx(www, w("nginx-tls"), tls=(w("cert.pem"), w("key.pem")))
    with open(w("env.txt"), "w") as f:
        f.write("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n")
    sh(["mkenvimage", "-r", "-s", "0x4000", "-o", w("env0.bin"), w("env.txt")])
    with open(w("fw_env.config"), "w") as f:
        f.write(f"{w('uboot.env')} 0x0000 0x4000\n{w('uboot.env')} 0x4000 0x4000\n")
    with open(w("cmdline"), "w") as f:
        f.write("otasync.slot=A")
    shutil.copyfile(v1, w("a.img"))
    config = {
        "compatible": "bench",
        "slots": [{"class": "rootfs", "bootname": "A", "device": w("a.img")},
                  {"class": "rootfs", "bootname": "B", "device": w("b.img")}],
        "booted": {"cmdline": w("cmdline")},
        "bootloader": {"backend": "uboot", "fw_env_config": w("fw_env.config")},
        "release_url": f"{base}/manifest.json", "stores": [f"{base}/store"],
        "tls": {"ca": w("ca.pem"), "https_only": True},
        "trust_root": w("root.json"), "state_dir": w("state"),
    }
    with open(w("system.json"), "w") as f:
        json.dump(config, f)

    def setup(known=False):
        # B holds the previous release (v1); no state (or, known: the indexes of what the agent
        # installed in both slots before); the environment boots A first.
        shutil.copyfile(v1, w("b.img"))
        shutil.rmtree(w("state"), ignore_errors=True)
        if known:
            os.makedirs(w("state/slots"))
            for slot in "AB":
                shutil.copyfile(w("v1.caibx"), w(f"state/slots/{slot}.rootfs.caibx"))
        env = open(w("env0.bin"), "rb").read()
        with open(w("uboot.env"), "wb") as f:
            f.write(env + bytes(0x4000))
    rows = []
    label = "update 1 GiB slot v1->v2 (seed v1)"
    nginx, http_base = start_nginx(www, os.path.join(work, "nginx"))
    try:
        casync_cmd = ["env", f"TMPDIR={SCRATCH}", "casync", "extract", "--seed-output=no", f"--seed={w('a.img')}",
                      f"--store={http_base}/store", f"{http_base}/v2.caibx", w("b.img")]
        rows.append(("casync", measure(label, setup, casync_cmd, runs, size)))
        update = [otasync, "update", f"--config={w('system.json')}"]
        ours = measure(label, setup, update, runs, size)
        rows.append(("otasync agent (HTTPS, verify, env switch)", ours))
        steady = measure(label, lambda: setup(known=True), update, runs, size)
        rows.append(("otasync agent, slots' indexes known (2nd update on)", steady))
        status = json.loads(subprocess.run([otasync, "--json", "status", f"--config={w('system.json')}"],
                                           check=True, stdout=subprocess.PIPE).stdout)
        ok = subprocess.run(["cmp", "-n", str(size), w("b.img"), v2]).returncode == 0
        downloaded = status["progress"]["bytes_downloaded"]
        # The floor the target compares with: the same bytes as one download, plus one read.
        with open(os.path.join(www, "blob"), "wb") as f:
            f.write(os.urandom(downloaded))
        fetch = measure("download", lambda: None, ["curl", "-s", "--cacert", w("ca.pem"), "-o", "/dev/null",
                                                   f"{base}/blob"], runs, downloaded)["wall"]
        read = measure("read", lambda: None, ["dd", f"if={w('b.img')}", "of=/dev/null", "bs=4M"], runs,
                       size)["wall"]
        print(f"# agent: result identical to v2: {ok}; downloaded {downloaded} bytes in "
              f"{status['progress']['chunks_fetched']} chunks (index and manifest included); "
              f"{ours['wall']:.2f} s = {ours['wall'] / (fetch + read):.1f}x (download {fetch:.2f} s + one read "
              f"of the slot {read:.2f} s); peak RSS {ours['rss']:.1f} MiB; with the slots' indexes known "
              f"{steady['wall']:.2f} s = {steady['wall'] / (fetch + read):.1f}x", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait()
        server.terminate()
        server.wait()
        if not os.environ.get("BENCH_KEEP"):
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


def mounted(cmd, mnt):
    """Starts a FUSE mount command; returns its process once mnt is mounted."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        if os.path.ismount(mnt):
            return proc
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"{' '.join(cmd)} did not mount {mnt}")


def drop_caches():
    """Writes dirty pages out and empties the page cache, so that reads come from the disk."""
    sh(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def fuse_runs(label, mount_cmd, mnt, cmd, runs, size, setup=lambda: None):
    """Times cmd on a fresh mount each run (one warm-up, setup before each mount); the RSS is
    the mounting process's."""
    samples, peak = [], 0
    for i in range(runs + 1):
        setup()
        proc = mounted(mount_cmd, mnt)
        try:
            start = time.monotonic()
            sh(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.monotonic() - start
            with open(f"/proc/{proc.pid}/status") as f:
                peak = max(peak, *(int(l.split()[1]) for l in f if l.startswith("VmHWM:")))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", mnt])
        if i > 0:
            samples.append(wall)
    med = statistics.median(samples)
    return {"label": label, "wall": med, "min": min(samples), "max": max(samples),
            "mbs": size / 1e6 / med, "rss": peak / 1024, "out": b""}


def fuse_mounts(tools, data, runs):
    """FUSE (root only): dd of the image through mkdev, and find + cat of every file of the tree
    through mount (casync's once: it is slow) beside the same on the extracted tree; each run on
    a fresh mount, so every chunk is fetched, decompressed and checked. Then both again from
    the disk with the page cache emptied before each run."""
    otasync = tools["otasync"]
    work = os.path.join(SCRATCH, "fuse")
    shutil.rmtree(work, ignore_errors=True)
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    quiet = dict(stdout=subprocess.DEVNULL)
    img, src = os.path.join(data, "v1.img"), os.path.join(data, "tree")
    size = int(subprocess.run(["du", "-sb", src], check=True, stdout=subprocess.PIPE, text=True).stdout.split()[0])
    sh([otasync, "make", f"--store={work}/img.castr", f"{work}/img.caibx", img], **quiet)
    sh([otasync, "make", f"--store={work}/tree.castr", f"{work}/tree.caidx", src], **quiet)
    sh([otasync, "extract", f"--store={work}/tree.castr", f"{work}/tree.caidx", f"{work}/tree"], **quiet)
    catall = ["sh", "-c", f"find '{mnt}' -type f -exec cat {{}} + >/dev/null"]
    rows = [("otasync", fuse_runs("mkdev + dd image", [otasync, "mkdev", f"--store={work}/img.castr",
                                                       f"{work}/img.caibx", mnt], mnt,
                                  ["dd", f"if={mnt}/img", "of=/dev/null", "bs=1M"], runs, os.path.getsize(img)))]
    rows.append(("otasync", measure("find+cat extracted tree (tmpfs)", lambda: None,
                                    ["sh", "-c", f"find '{work}/tree' -type f -exec cat {{}} + >/dev/null"],
                                    runs, size)))
    for tool, exe, n in (("otasync", otasync, runs), ("casync", "casync", 1)):
        rows.append((tool, fuse_runs("find+cat tree through mount", [exe, "mount", f"--store={work}/tree.castr",
                                                                      f"{work}/tree.caidx", mnt], mnt,
                                     catall, n, size)))
    # The same two on the disk with the page cache emptied before each run: the store and the
    # extracted tree as they would be read on a machine that has not just written them.
    disk = os.path.join(os.path.dirname(data), "fuse-disk")
    shutil.rmtree(disk, ignore_errors=True)
    os.makedirs(disk)
    try:
        for name in ("tree.castr", "tree.caidx", "tree"):
            sh(["cp", "-a", os.path.join(work, name), disk])
        rows.append(("otasync", measure("find+cat extracted tree (disk, cold cache)", drop_caches,
                                        ["sh", "-c", f"find '{disk}/tree' -type f -exec cat {{}} + >/dev/null"],
                                        runs, size)))
        rows.append(("otasync", fuse_runs("find+cat tree through mount (store on disk, cold cache)",
                                          [otasync, "mount", f"--store={disk}/tree.castr", f"{disk}/tree.caidx",
                                           mnt], mnt, catall, runs, size, setup=drop_caches)))
    finally:
        shutil.rmtree(disk)
    shutil.rmtree(work)
    return rows


def store_files(store):
    """Relative paths of the chunk files of a store."""
    return {os.path.relpath(os.path.join(r, f), store) for r, _, fs in os.walk(store) for f in fs}


def tune_download(tools, data):
    """v1 -> v2 download (index + chunks) with casync's defaults against the parameters
    `otasync tune` recommends: each time v1 is chunked into a store, then v2 into the same store
    (a pipeline's incremental make); the chunks v2 adds are what a device holding v1 fetches.
    casync makes the default row itself; the tuned row's index is extracted by casync (seeded
    from v1) to show it stays casync-readable, and by otasync, whose --json figures must equal
    tune's prediction. Returns the Markdown table (printed separately from the timing table)."""
    otasync = tools["otasync"]
    v1, v2 = os.path.join(data, "v1.img"), os.path.join(data, "v2.img")
    work = os.path.join(SCRATCH, "tune")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    quiet = dict(stdout=subprocess.DEVNULL)
    start = time.monotonic()
    tuned = json.loads(subprocess.run([otasync, "tune", "--json", f"--old={v1}", f"--new={v2}"], check=True,
                                      stdout=subprocess.PIPE).stdout)
    tune_wall = time.monotonic() - start
    best = tuned["recommended"]
    predicted = next(r for r in tuned["candidates"] if r["recommended"])
    lines = [f"`otasync tune --old=v1.img --new=v2.img` (six candidates, zstd 3 and 19): {tune_wall:.1f} s wall; "
             f"recommends `{best['args']}`, predicted download {predicted['download_bytes']} bytes", "",
             "| v1 -> v2 | index bytes | chunk bytes | requests | total download | MB | make v2 into v1's store s | "
             "casync extracts it | otasync extract --json download | tune's prediction |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def delta(tool_make, store, name, v2_args):
        tool_make([f"--store={store}", "make", f"{work}/{name}-v1.caibx", v1])
        before = store_files(store)
        t = time.monotonic()
        tool_make(v2_args + [f"--store={store}", "make", f"{work}/{name}-v2.caibx", v2])
        make_s = time.monotonic() - t
        new = store_files(store) - before
        dstore = os.path.join(work, f"{name}-delta.castr")
        for rel in new:
            os.makedirs(os.path.dirname(os.path.join(dstore, rel)), exist_ok=True)
            shutil.copy(os.path.join(store, rel), os.path.join(dstore, rel))
        index = f"{work}/{name}-v2.caibx"
        chunk_bytes = sum(os.path.getsize(os.path.join(store, rel)) for rel in new)
        return index, dstore, os.path.getsize(index), chunk_bytes, len(new), make_s

    def check(index, dstore):
        out = os.path.join(work, "out.img")
        fresh(out)()
        sh(["env", f"TMPDIR={SCRATCH}", "casync", "extract", f"--seed={v1}", f"--store={dstore}", index, out], **quiet)
        casync_ok = subprocess.run(["cmp", "-s", out, v2]).returncode == 0
        fresh(out)()
        stats = json.loads(subprocess.run([otasync, "extract", "--json", f"--seed={v1}", f"--store={dstore}", index,
                                           out], check=True, stdout=subprocess.PIPE).stdout)
        fresh(out)()
        return casync_ok, stats["download"]

    rows = []
    casync_make = lambda args: sh(["casync"] + args, **quiet)
    otasync_make = lambda args: sh([otasync] + args, **quiet)
    index, dstore, ib, cb, n, make_s = delta(casync_make, os.path.join(work, "casync.castr"), "casync", [])
    ok, got = check(index, dstore)
    default = next(r for r in tuned["candidates"] if r["chunk_size_arg"] == "16K:64K:256K" and r["level"] == 3)
    rows.append(("casync defaults 16K:64K:256K, zstd-3 (casync make)", ib, cb, n, make_s, ok, got, default))
    sizes, level = best["chunk_size"], best["level"]
    # v1 at level 3 (the chunk set does not depend on the level), v2's new chunks at the tuned level.
    index, dstore, ib, cb, n, make_s = delta(
        lambda args: otasync_make([f"--chunk-size={sizes}"] + args), os.path.join(work, "tuned.castr"), "tuned",
        [f"--compression-level={level}"])
    ok, got = check(index, dstore)
    rows.append((f"otasync tuned {sizes}, zstd-{level} (otasync make)", ib, cb, n, make_s, ok, got, predicted))
    for label, ib, cb, n, make_s, ok, got, pred in rows:
        lines.append(f"| {label} | {ib} | {cb} | {n} | {ib + cb} | {(ib + cb) / 1e6:.2f} | {make_s:.1f} | {ok} | "
                     f"{got['total_bytes']} in {got['chunks']} | {pred['download_bytes']} in {pred['requests']} |")
    lines.append("\n(tune predicts with otasync's zstd build; casync's libzstd makes slightly different frames.)")
    shutil.rmtree(work)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bench", default=os.environ.get("BENCH", "/var/tmp/otasync-bench"))
    ap.add_argument("--only", default="", help="comma-separated parts: random,image,seeded,http,tree,agent,fuse,tune")
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
    if not only or "agent" in only:
        rows += agent_update(tools, data, args.runs)
    if (not only or "fuse" in only) and os.geteuid() == 0 and os.path.exists("/dev/fuse"):
        rows += fuse_mounts(tools, data, args.runs)
    tune_table = tune_download(tools, data) if not only or "tune" in only else None

    print("| operation | tool | wall s (min-max) | MB/s | peak RSS MiB | speed-up |")
    print("|---|---|---|---|---|---|")
    base = {r["label"]: r["wall"] for tool, r in rows if tool == "casync"}
    for tool, r in rows:
        speedup = f"{base[r['label']] / r['wall']:.2f}x" if r["label"] in base else "n/a"
        print(f"| {r['label']} | {tool} | {r['wall']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | {r['mbs']:.0f} "
              f"| {r['rss']:.1f} | {speedup} |")
    core = subprocess.run(["cargo", "run", "--release", "--quiet", "-p", "otasync-core", "--example",
                           "throughput", "--", datasets["image"]], cwd=ROOT, check=True,
                          stdout=subprocess.PIPE, text=True).stdout
    print("\nSingle-core primitives on the image (otasync-core, in memory):\n")
    print("```\n" + core.rstrip() + "\n```")
    if tune_table:
        print("\nUpdate size, v1 -> v2 (index + chunks a device holding v1 downloads; MB = 10^6 bytes):\n")
        print(tune_table)


if __name__ == "__main__":
    main()
