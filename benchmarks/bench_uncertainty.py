"""Benchmark of the uncertainty levels: ``leukotrack analyze --uncertainty LEVEL`` against ``off``.

Runs the command as a user does (a fresh process, loading and writing included) under GNU time, the
levels interleaved in each round (the machine's load drifts), ``--rounds`` times, and reports each
level's median wall time, its ratio to ``off`` measured within the same rounds, and the peak memory.
Target (issue 16): the default level at most 2x the time of a plain analysis.

Usage: ``python benchmarks/bench_uncertainty.py [--case DIR] [--rounds 3] [--levels off,fast,standard,full]
[--out benchmarks/results/uncertainty_cost.md]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_analyze import _timed  # noqa: E402

from imaging.case import scan_case  # noqa: E402
from imaging.uncertainty import LEVELS, UncertaintyParams  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=REPO / "sample_scans" / "indexcase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "uncertainty_cost.md"
    )
    args = parser.parse_args(argv)
    levels = [level.strip() for level in args.levels.split(",")]
    if "off" not in levels:
        levels.insert(0, "off")
    exe = str(Path(sys.executable).parent / "leukotrack")
    n_sessions = len(scan_case(args.case).sessions)
    walls: dict[str, list[float]] = {level: [] for level in levels}
    peaks: dict[str, list[float]] = {level: [] for level in levels}
    ratios: dict[str, list[float]] = {level: [] for level in levels}
    for round_ in range(args.rounds):
        this_round = {}
        for level in levels:
            with tempfile.TemporaryDirectory() as out:
                command = [exe, "analyze", str(args.case), "--out", out, "--uncertainty", level]
                wall, rss = _timed(command)
            this_round[level] = wall
            walls[level].append(wall)
            peaks[level].append(rss)
            print(f"round {round_ + 1} {level}: {wall:.1f} s, {rss:.0f} MB", flush=True)
        for level in levels:
            ratios[level].append(this_round[level] / this_round["off"])
    lines = [
        f"`leukotrack analyze --uncertainty LEVEL` on {args.case.name} ({n_sessions} sessions), "
        f"{args.rounds} rounds with the levels interleaved, median; "
        f"{datetime.now(UTC):%Y-%m-%d}, `python benchmarks/bench_uncertainty.py "
        f"--rounds {args.rounds}`.",
        "",
        "| level | draws per session | wall time | ratio to off (same round) | peak memory |",
        "|---|---:|---:|---:|---:|",
    ]
    for level in levels:
        lines.append(
            f"| {level} | {UncertaintyParams.level(level).draws} | "
            f"{statistics.median(walls[level]):.1f} s | {statistics.median(ratios[level]):.2f}x | "
            f"{statistics.median(peaks[level]):.0f} MB |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
