#!/usr/bin/env python3
"""bench-record.py: turns one fio run of bench-matrix.sh into one JSON line.

    bench-record.py --fio FIO.json --pre PRE --post POST --stat0 STAT0 --stat1 STAT1
                    --elapsed S [--az0 INFO0.json --az1 INFO1.json] --out RAW.jsonl
                    KEY=VALUE...

FIO.json is fio's --output-format=json. PRE and POST hold lines "SECONDS cpu
..." (a timestamp and /proc/stat's cpu line) that fio's exec_prerun and
exec_postrun wrote, one per fio job, just before its I/O started and just
after it ended. STAT0/STAT1 are copies of /proc/stat from just before fio
started and just after it exited (S seconds apart). INFO0/INFO1 are
`azbusectl info ID --json` before and after (azbuse devices only). KEY=VALUE pairs (device, job, repeat, ...)
go into the record as they are (numbers as numbers). Appends the record to
RAW.jsonl and prints a one-line summary; exits 1 if fio reported an error.

CPU cost: user+nice+system+irq+softirq of the "cpu" line (all CPUs), in
seconds, divided by the requests fio completed: cpu_us_per_req (equal to CPU
seconds per million requests), over the I/O window (the first job's prerun
to the last job's postrun). fio's own start-up and report take seconds of
CPU under emulation, which would swamp a short run: the same figure over
the whole fio process is kept as cpu_us_per_req_whole_fio.

Ring counters: every numeric per-queue field of `azbusectl info --json` is
summed over the queues and its change over the run recorded in "ring" (the
fields are taken as they come, so new counters show up without a change
here), except identities and gauges (queue, worker_pid, inflight) and ratios
(names with "_per_"). Derived: requests_per_syscall, wakeups_per_request,
waits_per_request, where those counters exist.
"""
import json
import os
import sys

BUSY = ("user", "nice", "system", "irq", "softirq")
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
RING_SKIP = {"queue", "worker_pid", "inflight"}


def cpu_line(path):
    with open(path) as f:
        for line in f:
            if line.startswith("cpu "):
                vals = [int(v) for v in line.split()[1:]]
                return dict(zip(STAT_FIELDS, vals))
    raise SystemExit(f"bench-record: no cpu line in {path}")


def window(pre, post):
    """(seconds, cpu fields) at the first prerun and at the last postrun"""
    def lines(path):
        out = []
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) > 2 and w[1] == "cpu":
                    out.append((float(w[0]), dict(zip(STAT_FIELDS, map(int, w[2:])))))
        if not out:
            raise SystemExit(f"bench-record: no samples in {path}")
        return sorted(out, key=lambda x: x[0])
    return lines(pre)[0], lines(post)[-1]


def busy_delta(s0, s1, hz):
    delta = {k: (s1[k] - s0[k]) / hz for k in s0}
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


def value(s):
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def main(argv):
    opts, meta = {}, {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            opts[a[2:]] = argv[i + 1]
            i += 2
        else:
            k, _, v = a.partition("=")
            meta[k] = value(v)
            i += 1

    with open(opts["fio"]) as f:
        text = f.read()
    # fio may print notes before its JSON
    fio = json.loads(text[text.index("{"):])
    job = fio["jobs"][0]
    if job.get("error"):
        print(f"bench-record: fio error {job['error']} for {meta}", file=sys.stderr)
        return 1
    side = "write" if "write" in str(meta.get("rw", "")) else "read"
    d = job[side]
    pct = d.get("clat_ns", {}).get("percentile", {})
    ios = d.get("total_ios", 0)

    hz = os.sysconf("SC_CLK_TCK")
    (t0, w0), (t1, w1) = window(opts["pre"], opts["post"])
    busy, delta = busy_delta(w0, w1, hz)
    elapsed = t1 - t0
    whole, _ = busy_delta(cpu_line(opts["stat0"]), cpu_line(opts["stat1"]), hz)
    ncpu = os.cpu_count() or 1

    rec = dict(meta)
    rec.update({
        "type": "run",
        "iops": d["iops"],
        "bw_bytes": d["bw_bytes"],
        "mb_s": d["bw_bytes"] / 1e6,
        "ios": ios,
        "fio_runtime_ms": d.get("runtime", 0),
        "lat_mean_us": d.get("clat_ns", {}).get("mean", 0) / 1000,
        "lat_p50_us": pct.get("50.000000", 0) / 1000,
        "lat_p99_us": pct.get("99.000000", 0) / 1000,
        "lat_p999_us": pct.get("99.900000", 0) / 1000,
        "cpu_busy_s": round(busy, 3),
        "cpu_util": round(busy / (elapsed * ncpu), 4) if elapsed > 0 else None,
        "cpu_us_per_req": busy * 1e6 / ios if ios else None,
        "cpu_s": {k: round(v, 3) for k, v in delta.items()},
        "elapsed_s": round(elapsed, 3),
        "cpu_busy_whole_fio_s": round(whole, 3),
        "elapsed_whole_fio_s": float(opts["elapsed"]),
        "cpu_us_per_req_whole_fio": whole * 1e6 / ios if ios else None,
        "vcpus": ncpu,
    })
    if opts.get("az0") and opts.get("az1"):
        r0, r1 = ring_totals(opts["az0"]), ring_totals(opts["az1"])
        ring = {k: r1[k] - r0.get(k, 0) for k in r1}
        rec["ring"] = ring
        req = ring.get("requests", 0)
        if ring.get("syscalls"):
            rec["requests_per_syscall"] = req / ring["syscalls"]
        if req and "wakeups" in ring:
            rec["wakeups_per_request"] = ring["wakeups"] / req
        if req and "waits" in ring:
            rec["waits_per_request"] = ring["waits"] / req

    with open(opts["out"], "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    extra = ""
    if "requests_per_syscall" in rec:
        extra = f" req/syscall {rec['requests_per_syscall']:.2f}"
        if "wakeups_per_request" in rec:
            extra += f" wakeups/req {rec['wakeups_per_request']:.3f}"
    print(f"bench: {meta.get('device')} {meta.get('job')} #{meta.get('repeat')}: "
          f"{rec['iops']:.0f} IOPS {rec['mb_s']:.1f} MB/s p50 {rec['lat_p50_us']:.1f} us "
          f"p99 {rec['lat_p99_us']:.1f} us cpu {rec['cpu_us_per_req'] or 0:.1f} us/req{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
