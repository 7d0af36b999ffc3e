"""``make bench``: every benchmark in one run, then one summary table.

Runs each benchmark module in turn, in a process of its own (each starts, measures and cleans up
its own services), keeps its full output in ``var/bench/``, and collects the ``BENCH_ROW`` lines
each prints: the figure, the baseline measured in the same run, their ratio, the goal from the
issue and whether it is met. Prints the table in Markdown with the code fingerprint, so it can
go into the README as it is.

    python -m bench.summary [--campaign-count 100000] [--memory-count 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.support import ROOT, code_fingerprint, say

PATHS_IN_ORDER = [
    "transactional delivery, queue -> SMTP",
    "POST /v1/notifications throughput",
    "POST /v1/notifications p99 at a fixed rate",
    "security alert, POST -> SMTP, steady",
    "security alert, POST -> SMTP, during a campaign",
    "campaign",
    "one-click POST /u/<token> throughput",
    "one-click POST /u/<token> p99 at a fixed rate",
    "campaign worker memory",
]


def plan(args: argparse.Namespace) -> list[list[str]]:
    """The benchmark commands, in the order they run."""
    campaign = ["--count", str(args.campaign_count)]
    if args.quick:
        return [
            ["bench.delivery", "--count", "2000", "--rounds", "1"],
            ["bench.api", "--duration", "5"],
            ["bench.latency", "--duration", "10", "--campaign-count", "20000"],
            ["bench.campaign", "--count", "20000", "--naive-count", "2000"],
            ["bench.unsubscribe", "--duration", "5"],
            ["bench.campaign", "--memory", "--memory-count", "50000"],
        ]
    return [
        ["bench.delivery"],
        ["bench.api"],
        ["bench.latency", "--campaign-count", str(args.campaign_count)],
        ["bench.campaign", *campaign],
        ["bench.unsubscribe"],
        ["bench.campaign", "--memory", "--memory-count", str(args.memory_count)],
    ]


def run(command: list[str], folder: Path) -> list[dict[str, object]]:
    """Run one benchmark module; its rows (none if it failed, with a line saying so)."""
    log = folder / f"{command[0].removeprefix('bench.')}-{int(time.time())}.txt"
    say(f"running python -m {' '.join(command)} (output in {log.relative_to(ROOT)})")
    started = time.monotonic()
    with log.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-m", *command], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
    rows = rows_of(log)
    minutes = (time.monotonic() - started) / 60
    say(f"  exit {done.returncode} after {minutes:.1f} min, {len(rows)} row(s)")
    if done.returncode != 0:
        say(f"  FAILED: see {log}")
    return rows


def rows_of(log: Path) -> list[dict[str, object]]:
    """The ``BENCH_ROW`` lines of one benchmark's output."""
    return [
        json.loads(line.removeprefix("BENCH_ROW "))
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("BENCH_ROW ")
    ]


def order(row: dict[str, object]) -> int:
    """The row's place in :data:`PATHS_IN_ORDER`: the longest entry its path starts with."""
    path = str(row["path"])
    matches = [index for index, start in enumerate(PATHS_IN_ORDER) if path.startswith(start)]
    return max(matches, key=lambda index: len(PATHS_IN_ORDER[index]), default=len(PATHS_IN_ORDER))


def table(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| path | figure | baseline (same run) | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=order):
        ratio = "" if row["ratio"] is None else f"{row['ratio']}x"
        met = "yes" if row["met"] else "**no**"
        lines.append(
            f"| {row['path']} | {row['figure']} | {row['baseline']} | {ratio} | {row['goal']} "
            f"| {met} |"
        )
    measured = {order(row) for row in rows}
    for index, path in enumerate(PATHS_IN_ORDER):
        if index not in measured:
            lines.append(f"| {path} | not measured (its benchmark failed) | | | | **no** |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument("--campaign-count", type=int, default=100_000)
    parser.add_argument("--memory-count", type=int, default=1_000_000)
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts and shorter runs (a smoke run)"
    )
    parser.add_argument(
        "--tabulate-only", action="store_true",
        help="run nothing: rebuild the table from the outputs already in var/bench/",
    )  # fmt: skip
    args = parser.parse_args(argv)
    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = code_fingerprint()
    started = datetime.now(UTC)
    say(f"bench.summary  {started:%Y-%m-%d %H:%M} UTC  code {fingerprint}")
    rows: list[dict[str, object]] = []
    if args.tabulate_only:
        rows = [row for log in sorted(folder.glob("*.txt")) for row in rows_of(log)]
        fingerprint = str(rows[0]["code"]) if rows else fingerprint
    else:
        for command in plan(args):
            rows.extend(run(command, folder))
    stale = {str(row["code"]) for row in rows} - {fingerprint}
    say()
    say(f"Summary ({started:%Y-%m-%d}, code {fingerprint}, {'quick' if args.quick else 'full'} "
        f"run; each ratio is against a baseline measured in the same benchmark run):")  # fmt: skip
    say()
    for line in table(rows):
        say(line)
    if stale:
        say(f"\n(the code changed while this ran: rows also carry {', '.join(sorted(stale))})")
    summary = folder / "summary.md"
    summary.write_text("\n".join(table(rows)) + "\n")
    say(f"\ntable written to {summary.relative_to(ROOT)}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
