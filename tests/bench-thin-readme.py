#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-thin-readme.py: puts the thin-beside-dm-thin table of a
tests/vm/bench-thin.sh run into the README, so that its figures come from
the run kept in docs/bench/, never by hand.

    bench-thin-readme.py THIN_LOG README.md

THIN_LOG is the run's output (tests/bench-thin.sh keeps it as
docs/bench/thin.log): its "RATIO what=..." lines and the header lines
bench-thin-run.sh wrote first ("# commit ...", "# vCPUs ..."). Replaces what
lies between "<!-- thin-bench: begin -->" and "<!-- thin-bench: end -->" in
README.md. Exit status 1 if the markers or the ratios are missing.
"""
import sys

BEGIN = "<!-- thin-bench: begin -->"
END = "<!-- thin-bench: end -->"

LABELS = {
    "firstwrite": "first write, IOPS (dm-thin zeroing blocks)",
    "firstwrite_skip_zeroing": "first write, IOPS (dm-thin `skip_block_zeroing`)",
    "overwrite": "overwrite, IOPS",
    "randread": "random read, IOPS",
    "cowwrite": "write after a snapshot (CoW), IOPS",
    "snapshot": "snapshot of a written volume, ms",
    "fill": "fill the volume sequentially, ms",
}


def parse(path):
    ratios, header = {}, []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line.startswith("# "):
            header.append(line[2:])
        if not line.startswith("RATIO "):
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        ratios[fields.get("what")] = fields
    return header, ratios


def table(header, ratios):
    out = []
    if header:
        out.append("Run: " + "; ".join(header) + ".")
        out.append("")
    out.append("| measurement | dm-thin | azbuse thin | ratio | target | |")
    out.append("|---|---|---|---|---|---|")
    for key, label in LABELS.items():
        r = ratios.get(key)
        if not r:
            continue
        target = r.get("target", "-")
        out.append(
            f"| {label} | {r.get('dm_thin', '-')} | {r.get('azbuse', '-')} | "
            f"{r.get('azbuse_vs_dm_thin', '-')} | {target if target != '-' else ''} | "
            f"{r.get('verdict', '-') if r.get('verdict') != '-' else ''} |"
        )
    mem = ratios.get("memory")
    if mem:
        out.append("")
        out.append(
            f"Daemon memory (VmRSS of the supervisor and workers, 1 TiB volume): "
            f"{mem.get('rss0_kb')} KiB with nothing mapped, {mem.get('rss_kb')} KiB with "
            f"{mem.get('mapped_gb')} GiB mapped; growth {mem.get('growth_kb')} KiB against "
            f"the metadata bound of {mem.get('bound_kb')} KiB ({mem.get('verdict')})."
        )
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    header, ratios = parse(sys.argv[1])
    if not ratios:
        print(f"bench-thin-readme: no RATIO lines in {sys.argv[1]}", file=sys.stderr)
        return 1
    text = open(sys.argv[2], encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        print(f"bench-thin-readme: no {BEGIN} ... {END} in {sys.argv[2]}", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(head + BEGIN + "\n" + table(header, ratios) + "\n" + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
