#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-record.py: turns what one VM run of tests/vm/bench-matrix.sh left in
its output directory into records, one JSON object per line, on stdout
(tests/bench.sh runs it on the host: python starts slowly in the emulated
guest).

    bench-record.py VM_OUT_DIR > RAW.jsonl

VM_OUT_DIR holds:
  meta          KEY=VALUE lines about the VM run -> one {"type": "meta"} record
  status        DEVICE<TAB>ok|fail|skip<TAB>MESSAGE -> {"type": "status"} records
  runs/NNNN/    one fio run -> one {"type": "run"} record:
    args        KEY=VALUE lines (device, job, repeat, rw, bs, ..., elapsed_whole_fio_s)
    fio.json    fio --output-format=json
    pre, post   "SECONDS cpu ..." lines (a timestamp and /proc/stat's cpu
                line) that fio's exec_prerun/exec_postrun wrote in each fio
                job just before its I/O started and just after it ended
    stat0, stat1  /proc/stat just before fio started and after it exited
    az0, az1    `azbusectl info ID --json` before and after (azbuse only)

CPU cost: user+nice+system+irq+softirq of the "cpu" line (all vCPUs), in
seconds, over the I/O window (first prerun to last postrun), divided by the
requests fio completed: cpu_us_per_req (equal to CPU seconds per million
requests). fio's own start-up and report take seconds of CPU under
emulation, which would swamp a short run; the figure over the whole fio
process is kept as cpu_us_per_req_whole_fio.

Ring counters: every numeric per-queue field of `azbusectl info --json` is
summed over the queues and its change over the run recorded in "ring" (the
fields are taken as they come, so new counters show up without a change
here), except identities and gauges (queue, worker_pid, inflight) and ratios
(names with "_per_"). Derived: requests_per_syscall, wakeups_per_request,
waits_per_request, where those counters exist.
A run whose fio JSON is missing or reports an error gives a record with
"error" set (bench-matrix.sh has already failed its device).
"""
import json
import os
import sys

USER_HZ = 100  # /proc/stat's unit on x86 Linux
BUSY = ("user", "nice", "system", "irq", "softirq")
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
RING_SKIP = {"queue", "worker_pid", "inflight"}


def value(s):
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                out[k] = value(v)
    return out


def cpu_line(path):
    with open(path) as f:
        for line in f:
            if line.startswith("cpu "):
                return dict(zip(STAT_FIELDS, map(int, line.split()[1:])))
    raise ValueError(f"no cpu line in {path}")


def samples(path):
    out = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) > 2 and w[1] == "cpu":
                out.append((float(w[0]), dict(zip(STAT_FIELDS, map(int, w[2:])))))
    if not out:
        raise ValueError(f"no samples in {path}")
    return sorted(out, key=lambda x: x[0])


def busy_delta(s0, s1):
    delta = {k: (s1[k] - s0[k]) / USER_HZ for k in s0}
    return sum(delta[k] for k in BUSY), delta


def ring_totals(path):
    with open(path) as f:
        info = json.load(f)
    tot = {}
    for q in info.get("queue_info", []):
        for k, v in q.items():
            if k in RING_SKIP or "_per_" in k or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                tot[k] = tot.get(k, 0) + v
    return tot


def run_record(d, boot):
    rec = {"type": "run", "boot": boot}
    rec.update(kv(os.path.join(d, "args")))
    try:
        with open(os.path.join(d, "fio.json")) as f:
            text = f.read()
        fio = json.loads(text[text.index("{"):])  # fio may print notes first
    except (OSError, ValueError) as e:
        rec["error"] = f"no fio result: {e}"
        return rec
    job = fio["jobs"][0]
    if job.get("error"):
        rec["error"] = f"fio error {job['error']}"
        return rec
    side = "write" if "write" in str(rec.get("rw", "")) else "read"
    r = job[side]
    # the whole latency, submission included: a device that completes in
    # the submitting call (brd, null_blk, azbuse's sync ends) shows almost
    # no completion latency (clat), whatever the request took
    lat = r.get("lat_ns", {})
    if not lat.get("percentile"):
        lat = r.get("clat_ns", {})  # fio run without --lat_percentiles
    pct = lat.get("percentile", {})
    ios = r.get("total_ios", 0)
    rec.update({
        "iops": r["iops"],
        "bw_bytes": r["bw_bytes"],
        "mb_s": r["bw_bytes"] / 1e6,
        "ios": ios,
        "fio_runtime_ms": r.get("runtime", 0),
        "lat_mean_us": lat.get("mean", 0) / 1000,
        "lat_p50_us": pct.get("50.000000", 0) / 1000,
        "lat_p99_us": pct.get("99.000000", 0) / 1000,
        "lat_p999_us": pct.get("99.900000", 0) / 1000,
    })
    try:
        (t0, w0), (t1, w1) = samples(os.path.join(d, "pre"))[0], samples(os.path.join(d, "post"))[-1]
        busy, delta = busy_delta(w0, w1)
        whole, _ = busy_delta(cpu_line(os.path.join(d, "stat0")), cpu_line(os.path.join(d, "stat1")))
    except (OSError, ValueError) as e:
        rec["cpu_error"] = str(e)
    else:
        vcpus = rec.get("vcpus") or 1
        rec.update({
            "elapsed_s": round(t1 - t0, 3),
            "cpu_busy_s": round(busy, 3),
            "cpu_util": round(busy / ((t1 - t0) * vcpus), 4) if t1 > t0 else None,
            "cpu_us_per_req": busy * 1e6 / ios if ios else None,
            "cpu_s": {k: round(v, 3) for k, v in delta.items()},
            "cpu_busy_whole_fio_s": round(whole, 3),
            "cpu_us_per_req_whole_fio": whole * 1e6 / ios if ios else None,
        })
    a0, a1 = os.path.join(d, "az0"), os.path.join(d, "az1")
    if os.path.exists(a0) and os.path.exists(a1):
        r0, r1 = ring_totals(a0), ring_totals(a1)
        ring = {k: r1[k] - r0.get(k, 0) for k in r1}
        rec["ring"] = ring
        req = ring.get("requests", 0)
        if ring.get("syscalls"):
            rec["requests_per_syscall"] = req / ring["syscalls"]
        if req and "wakeups" in ring:
            rec["wakeups_per_request"] = ring["wakeups"] / req
        if req and "waits" in ring:
            rec["waits_per_request"] = ring["waits"] / req
        if req and "wait_ns" in ring:
            rec["ring_wait_us_per_request"] = ring["wait_ns"] / 1000 / req
        if req and "poll_hits" in ring:
            rec["poll_hits_per_request"] = ring["poll_hits"] / req
        if req and "sync_ends" in ring:
            rec["sync_ends_per_request"] = ring["sync_ends"] / req
    return rec


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    top = argv[0]
    meta_path = os.path.join(top, "meta")
    if not os.path.exists(meta_path):
        return 0  # the VM run ended before it started measuring
    meta = kv(meta_path)
    boot = str(meta.get("boot"))
    for k in ("devices", "jobs"):
        meta[k] = str(meta.get(k, "")).split()
    print(json.dumps(dict(meta, type="meta"), sort_keys=True))
    runs = os.path.join(top, "runs")
    for name in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
        print(json.dumps(run_record(os.path.join(runs, name), boot), sort_keys=True))
    st = os.path.join(top, "status")
    if os.path.exists(st):
        with open(st) as f:
            for line in f:
                dev, status, msg = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                print(json.dumps({"type": "status", "boot": boot, "device": dev,
                                  "status": status, "message": msg}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
