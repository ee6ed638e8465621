#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-cache-readme.py: puts the cache benchmark of a tests/vm/bench-cache.sh
run into the README, so that its figures come from the run kept in
docs/bench/cache.log, never by hand.

    bench-cache-readme.py CACHE_LOG README.md

Reads the run's "BENCH dev=... test=..." and "RATIO ..." lines and the
header lines ("# commit ...") and replaces what lies between
"<!-- cache-bench: begin -->" and "<!-- cache-bench: end -->" in README.md.
Exit status 1 if the markers or the measurements are missing.
"""
import sys

BEGIN = "<!-- cache-bench: begin -->"
END = "<!-- cache-bench: end -->"
DEVICES = [
    ("thin", "thin volume, no cache"),
    ("thin+cache", "thin volume, `--cache 256M --cache-mode writeback`"),
    ("dm-cache", "dm-cache (smq, writeback, 256 MiB brd cache)"),
    ("mem", "`mem` engine (RAM disk)"),
]


def parse(path):
    bench, ratios, header = {}, [], []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line.startswith("# "):
            header.append(line[2:])
        elif line.startswith("BENCH "):
            f = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
            bench[(f["dev"], f["test"])] = f
        elif line.startswith("RATIO "):
            ratios.append(line[len("RATIO "):])
    return header, bench, ratios


def table(header, bench, ratios):
    out = []
    if header:
        out.append("Run: " + "; ".join(header) + ".")
        out.append("")
    out.append("| device | random read QD32x2, IOPS | hit ratio | depth-1 read, us | "
               "70/30 QD32x2, IOPS | 70/30: MiB written / to the slow disk / by the cleaner |")
    out.append("|---|---|---|---|---|---|")
    for dev, label in DEVICES:
        r, l, m = (bench.get((dev, t), {}) for t in ("randread", "lat1", "mix7030"))
        cleaner = m.get("cleaner_mib", "-") if dev == "thin+cache" else "-"
        out.append(f"| {label} | {r.get('iops', '-')} | {r.get('hit', '-')} | "
                   f"{l.get('lat_us', '-')} | {m.get('iops', '-')} | "
                   f"{m.get('wrote_mib', '-')} / {m.get('disk_mib', '-')} / {cleaner} |")
    out.append("")
    out.extend(f"- {r}" for r in ratios)
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    header, bench, ratios = parse(sys.argv[1])
    if not bench or not ratios:
        print("bench-cache-readme: no measurements in " + sys.argv[1], file=sys.stderr)
        return 1
    text = open(sys.argv[2], encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        print("bench-cache-readme: no cache-bench markers in " + sys.argv[2], file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(head + BEGIN + "\n" + table(header, bench, ratios) + "\n" + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
