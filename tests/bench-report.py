#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-report.py: the report of tests/bench.sh, from the records the VM
runs wrote (tests/vm/bench-matrix.sh, one JSON object per line).

    bench-report.py --out DIR [--vm-rc BOOT=RC]... [--host K=V]... RAW.jsonl...

Writes into DIR:
  results.json  every record as it came (meta, one per fio run, device status)
                plus the summary per (VM run, job, device): median, min, max
                and the ratio of the medians to brd's in the same VM run
  bench.md      per job a table: device, IOPS, MB/s, p50/p99 total
                latency, CPU us per request (each with its ratio to brd),
                azbuse's requests per syscall, wake-ups, ring wait and sync
                ends per request
  bench-<BOOT>.png  IOPS as a ratio to brd, per job, one bar per device
                (gnuplot; skipped with a note if gnuplot is missing)
Prints bench.md, then one line per skipped or failed device and, last,
"N passed, N failed, N skipped" (one per device and VM run; a VM run that
failed without a device failing counts as one failure). Exit status 1 if
anything failed.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

METRICS = ("iops", "mb_s", "lat_p50_us", "lat_p99_us", "cpu_us_per_req",
           "requests_per_syscall", "wakeups_per_request", "ring_wait_us_per_request",
           "sync_ends_per_request")
JOB_TITLES = {
    "randread-4k-qd1": "4k random read, depth 1, 1 job",
    "randwrite-4k-qd1": "4k random write, depth 1, 1 job",
    "randread-4k-qd32": "4k random read, depth 32, 1 job",
    "randwrite-4k-qd32": "4k random write, depth 32, 1 job",
    "randread-4k-qd32-percpu": "4k random read, depth 32, one job per vCPU",
    "randwrite-4k-qd32-percpu": "4k random write, depth 32, one job per vCPU",
    "read-128k-qd8": "128k sequential read, depth 8, 1 job",
    "write-128k-qd8": "128k sequential write, depth 8, 1 job",
    "read-1m-qd8": "1M sequential read, depth 8, 1 job",
    "write-1m-qd8": "1M sequential write, depth 8, 1 job",
}
BOOT_TITLES = {"main": "all devices", "scaling": "queue scaling"}


def load(paths):
    recs = []
    for p in paths:
        if not os.path.exists(p):
            continue
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line:
                    recs.append(json.loads(line))
    return recs


def ordered(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def summarize(recs):
    """{boot: {job: {device: {metric: {median, min, max, n, ratio}}}}}"""
    runs = [r for r in recs if r.get("type") == "run"]
    out = {}
    for boot in ordered(r["boot"] for r in runs):
        out[boot] = {}
        br = [r for r in runs if r["boot"] == boot]
        for job in ordered(r["job"] for r in br):
            out[boot][job] = {}
            jr = [r for r in br if r["job"] == job]
            for dev in ordered(r["device"] for r in jr):
                dr = [r for r in jr if r["device"] == dev]
                m = {}
                for k in METRICS:
                    vals = [r[k] for r in dr if r.get(k) is not None]
                    if vals:
                        m[k] = {"median": statistics.median(vals), "min": min(vals),
                                "max": max(vals), "n": len(vals)}
                out[boot][job][dev] = m
            ref = out[boot][job].get("brd", {})
            for dev, m in out[boot][job].items():
                for k, v in m.items():
                    r = ref.get(k, {}).get("median")
                    v["ratio_to_brd"] = v["median"] / r if r else None
    return out


def si(x):
    if x is None:
        return "–"
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div * 10:
            return f"{x / div:.0f}{suf}"
        if abs(x) >= div:
            return f"{x / div:.1f}{suf}"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def cell(m, k, spread=True, fmt=si):
    v = m.get(k)
    if not v:
        return "–"
    s = fmt(v["median"])
    if spread and v["n"] > 1:
        s += f" ({si(v['min'])}–{si(v['max'])})"
    return s


def ratio(m, k):
    v = m.get(k)
    if not v or v.get("ratio_to_brd") is None:
        return "–"
    return f"{v['ratio_to_brd']:.2f}"


def rust_vs_c(summary, metas):
    """The Rust binding's RAM disk beside the C mem engine (both copy through
    the module), per job of each VM run that measured both: IOPS and the ratio."""
    lines = []
    for boot, jobs in summary.items():
        rows = [(job, devs["azbuse-rust-ram"], devs["azbuse-mem"]) for job, devs in jobs.items()
                if "iops" in devs.get("azbuse-rust-ram", {}) and "iops" in devs.get("azbuse-mem", {})]
        if not rows:
            continue
        vc = metas.get(boot, {}).get("vcpus", "?")
        lines += [f"## The Rust binding beside C ({vc} vCPUs, {BOOT_TITLES.get(boot, boot)})", "",
                  "azbuse-rust-ram (bindings/rust/examples/ramdisk.rs) and azbuse-mem (the C "
                  "mem engine): the same RAM disk, served through the same ring.", "",
                  "| job | Rust IOPS | C mem IOPS | Rust ÷ C |", "|---|---:|---:|---:|"]
        for job, rust, c in rows:
            lines.append(f"| {job} | {cell(rust, 'iops')} | {cell(c, 'iops')} "
                         f"| {rust['iops']['median'] / c['iops']['median']:.2f} |")
        lines.append("")
    return lines


def markdown(recs, summary, host, statuses):
    metas = {r["boot"]: r for r in recs if r.get("type") == "meta"}
    lines = ["# azbuse benchmark", ""]
    if host:
        words = []
        for k, v in host.items():
            if k.startswith("load_"):
                words.append(f"1-minute load average during VM run `{k[5:]}` {v}")
            else:
                words.append(f"{k} {v}")
        lines.append("Host: " + "; ".join(words) + ".")
    for boot, m in metas.items():
        lines.append(
            f"VM run `{boot}`: {m['vcpus']} vCPUs (QEMU TCG), {m['mem_kib'] // 1024} MiB, "
            f"kernel {m['kernel']}, {m['fio']}, {m['runtime_s']} s per fio run, "
            f"{m['repeats']} repeat(s), devices of {m['size_mb']} MiB, started {m['started']}.")
    lines += [
        "",
        "Each figure: the median of the repeats, (min–max) when there were several; "
        "×brd: the median over brd's median in the same VM run (for latency and CPU, "
        "lower is better). fio with io_uring, O_DIRECT, time-based; p50/p99 are fio's "
        "total latency (submission and completion); CPU µs/req: busy guest CPU time (user+nice+system+irq+softirq, "
        "all vCPUs, from /proc/stat over the I/O of the run) per request; "
        "req/syscall, wake-ups/req, ring wait and sync ends/req (requests ended by their "
        "submitter in queue_rq): azbuse's ring counters (`azbusectl info --json`) "
        "over the run. The guest is emulated and the host shared: compare ratios "
        "within one VM run, not absolute figures across runs.",
        ""]
    for boot, jobs in summary.items():
        vc = metas.get(boot, {}).get("vcpus", "?")
        devs_all = ordered(d for devs in jobs.values() for d in devs)
        if len(jobs) > 1:
            lines += [f"## Overview ({vc} vCPUs, {BOOT_TITLES.get(boot, boot)}): IOPS as a ratio to brd", "",
                      "| device | " + " | ".join(jobs) + " |",
                      "|---|" + "---:|" * len(jobs)]
            for dev in devs_all:
                lines.append(f"| {dev} | " + " | ".join(ratio(jobs[j].get(dev, {}), "iops")
                                                       for j in jobs) + " |")
            lines.append("")
        for job, devs in jobs.items():
            lines += [f"## {job}: {JOB_TITLES.get(job, job)} ({vc} vCPUs, {BOOT_TITLES.get(boot, boot)})", ""]
            lines.append("| device | IOPS | ×brd | MB/s | p50 µs | ×brd | p99 µs | ×brd "
                         "| CPU µs/req | ×brd | req/syscall | wake-ups/req | ring wait µs | sync ends/req |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for dev, m in devs.items():
                lines.append(
                    f"| {dev} | {cell(m, 'iops')} | {ratio(m, 'iops')} | {cell(m, 'mb_s', False)} "
                    f"| {cell(m, 'lat_p50_us')} | {ratio(m, 'lat_p50_us')} "
                    f"| {cell(m, 'lat_p99_us')} | {ratio(m, 'lat_p99_us')} "
                    f"| {cell(m, 'cpu_us_per_req')} | {ratio(m, 'cpu_us_per_req')} "
                    f"| {cell(m, 'requests_per_syscall', False, lambda x: f'{x:.1f}')} "
                    f"| {cell(m, 'wakeups_per_request', False, lambda x: f'{x:.3f}')} "
                    f"| {cell(m, 'ring_wait_us_per_request', False, lambda x: f'{x:.0f}')} "
                    f"| {cell(m, 'sync_ends_per_request', False, lambda x: f'{x:.2f}')} |")
            lines.append("")
    lines += rust_vs_c(summary, metas)
    notes = [s for s in statuses if s["status"] != "ok"]
    if notes:
        lines += ["## Not measured", ""]
        for s in notes:
            lines.append(f"- {s['device']} ({s['boot']}): {s['status']}: {s['message']}")
        lines.append("")
    return "\n".join(lines)


def chart(boot, jobs, path):
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot not found: no chart"
    devs = ordered(d for devs in jobs.values() for d in devs if d != "brd")
    if not devs:
        return None
    dat = path[:-4] + ".dat"
    top = 1.0
    with open(dat, "w") as f:
        f.write("job " + " ".join(devs) + "\n")
        for job, m in jobs.items():
            vals = []
            for d in devs:
                r = m.get(d, {}).get("iops", {}).get("ratio_to_brd")
                vals.append(f"{r:.4f}" if r is not None else "NaN")
                top = max(top, r or 0)
            f.write(job + " " + " ".join(vals) + "\n")
    width = max(900, 60 + len(jobs) * (len(devs) * 14 + 30))
    script = f"""
set terminal pngcairo size {width},560 noenhanced font ",10"
set output "{path}"
set title "IOPS / brd IOPS, same VM run ({boot}); median of the repeats"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 2
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics rotate by -30 nomirror
set grid ytics
set yrange [0:{top * 1.1:.2f}]
set ylabel "ratio to brd"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 front
plot for [i=2:{len(devs) + 1}] "{dat}" using i:xtic(1) title columnheader(i)
"""
    r = subprocess.run([gp], input=script, text=True, capture_output=True)
    os.unlink(dat)
    if r.returncode:
        return f"gnuplot failed: {r.stderr.strip()}"
    return None


def main(argv):
    out, vm_rc, host, paths = None, {}, {}, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--out":
            out = argv[i + 1]
            i += 2
        elif a in ("--vm-rc", "--host"):
            k, _, v = argv[i + 1].partition("=")
            (vm_rc if a == "--vm-rc" else host)[k] = v
            i += 2
        else:
            paths.append(a)
            i += 1
    if not out:
        print(__doc__, file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    recs = load(paths)
    summary = summarize(recs)
    statuses = [r for r in recs if r.get("type") == "status"]

    # devices a VM run meant to measure but never reported: failed
    for meta in (r for r in recs if r.get("type") == "meta"):
        have = {s["device"] for s in statuses if s["boot"] == meta["boot"]}
        for d in meta["devices"]:
            if d not in have:
                statuses.append({"type": "status", "boot": meta["boot"], "device": d,
                                 "status": "fail", "message": "no result (the VM run ended early)"})
    for boot, rc in vm_rc.items():
        if rc != "0" and not any(s["boot"] == boot and s["status"] == "fail" for s in statuses):
            statuses.append({"type": "status", "boot": boot, "device": "(VM run)",
                             "status": "fail", "message": f"tests/vm/vm-run.sh exited {rc}"})

    with open(os.path.join(out, "results.json"), "w") as f:
        # one raw record per line, the summary indented
        f.write("{\n")
        for k, v in (("host", host), ("vm_rc", vm_rc), ("status", statuses), ("records", recs)):
            if isinstance(v, list):
                f.write(f' "{k}": [\n  ' + ",\n  ".join(json.dumps(r, sort_keys=True) for r in v)
                        + "\n ],\n")
            else:
                f.write(f' "{k}": {json.dumps(v, sort_keys=True)},\n')
        f.write(' "summary": ' + json.dumps(summary, indent=1, sort_keys=True) + "\n}\n")
    md = markdown(recs, summary, host, statuses)
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    for boot, jobs in summary.items():
        note = chart(boot, jobs, os.path.join(out, f"bench-{boot}.png"))
        if note:
            print(f"bench-report: {note}", file=sys.stderr)

    n = {"ok": 0, "fail": 0, "skip": 0}
    for s in statuses:
        n[s["status"]] = n.get(s["status"], 0) + 1
        if s["status"] != "ok":
            print(f"{s['status'].upper()} {s['device']} ({s['boot']}): {s['message']}")
    print(f"{n['ok']} passed, {n['fail']} failed, {n['skip']} skipped")
    return 1 if n["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
