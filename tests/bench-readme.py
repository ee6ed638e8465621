#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-readme.py: puts the overview of a tests/bench.sh run into the README,
so that the figures there come from the run in docs/bench/, never by hand.

    bench-readme.py RESULTS.json README.md

Replaces what lies between the lines "<!-- bench-overview: begin -->" and
"<!-- bench-overview: end -->" in README.md with: the run's description
(commit, vCPUs, repeats, host load), the main VM run's IOPS ratios to brd
(one row per device, one column per job), and the scaling run's IOPS per
device with its ratio to brd. tests/bench.sh runs it when it writes
docs/bench/. Exit status 1 if the markers are missing.
"""
import json
import sys

BEGIN = "<!-- bench-overview: begin -->"
END = "<!-- bench-overview: end -->"


def fmt_ratio(x):
    if x is None:
        return "–"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.3f}"


def fmt_iops(x):
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def metas(records):
    return {r["boot"]: r for r in records if r.get("type") == "meta"}


def describe(data):
    host = data.get("host", {})
    meta = metas(data.get("records", []))
    main = meta.get("main", {})
    lines = [
        f"The run in `docs/bench/` (commit {host.get('commit', '?')}, "
        f"{main.get('runtime_s', '?')} s per fio run, median of {main.get('repeats', '?')}; "
        f"host load average {host.get('load_main', '?')}): IOPS as a ratio to brd in the "
        "same VM run. `bench.md` beside it has every figure with its spread, latency, "
        "CPU per request and the ring's counters.",
        "",
    ]
    return lines


def ordered(names, order):
    """names in the order the run's meta record lists them, the rest after."""
    names = list(names)
    return [n for n in order if n in names] + [n for n in names if n not in order]


def overview(jobs, meta):
    devices = []
    for devs in jobs.values():
        for d in devs:
            if d not in devices:
                devices.append(d)
    devices = ordered(devices, meta.get("devices", []))
    job_names = ordered(jobs, meta.get("jobs", []))
    lines = ["| device | " + " | ".join(job_names) + " |", "|---|" + "---:|" * len(job_names)]
    for dev in devices:
        cells = []
        for job in job_names:
            m = jobs[job].get(dev, {}).get("iops")
            cells.append(fmt_ratio(m.get("ratio_to_brd")) if m else "–")
        lines.append(f"| {dev} | " + " | ".join(cells) + " |")
    return lines


def scaling(jobs, meta):
    lines = []
    for job in ordered(jobs, meta.get("jobs", [])):
        devs = jobs[job]
        cells = []
        for dev in ordered(devs, meta.get("devices", [])):
            iops = devs[dev].get("iops")
            if iops:
                cells.append(f"{dev} {fmt_iops(iops['median'])} ({fmt_ratio(iops.get('ratio_to_brd'))})")
        lines.append(f"On the {meta.get('vcpus', '?')}-vCPU boot, {job}: " + ", ".join(cells) + ".")
    return lines


def block(data):
    summary = data.get("summary", {})
    meta = metas(data.get("records", []))
    lines = describe(data)
    if "main" in summary:
        lines += overview(summary["main"], meta.get("main", {})) + [""]
    if "scaling" in summary:
        lines += scaling(summary["scaling"], meta.get("scaling", {})) + [""]
    return lines


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        data = json.load(f)
    with open(argv[1]) as f:
        text = f.read().split("\n")
    try:
        b, e = text.index(BEGIN), text.index(END)
    except ValueError:
        print(f"bench-readme.py: no {BEGIN} ... {END} in {argv[1]}", file=sys.stderr)
        return 1
    if e < b:
        print(f"bench-readme.py: {END} before {BEGIN} in {argv[1]}", file=sys.stderr)
        return 1
    text[b + 1:e] = [""] + block(data)
    with open(argv[1], "w") as f:
        f.write("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
