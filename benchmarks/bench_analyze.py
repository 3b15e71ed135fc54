"""Benchmark of ``leukotrack analyze`` on the sample case: wall time and peak memory.

Runs the command as a user does (a fresh process, loading included) under GNU time, ``--runs`` times
(median reported), and the per-step timings of one in-process run. Targets (issue 3): at most 10 s per
session and 60 s for the five-session case on a 2-core machine, at most 2 GB peak memory.

Usage: ``python benchmarks/bench_analyze.py [--runs 3] [--out benchmarks/results/analyze.md]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.case import scan_case  # noqa: E402
from imaging.pipeline import process_case  # noqa: E402


def _timed(command: list[str]) -> tuple[float, float]:
    timer = shutil.which("time") or "/usr/bin/time"
    if not Path(timer).exists():
        raise SystemExit("GNU time is needed for the memory figure: apt-get install time")
    result = subprocess.run(
        [timer, "-f", "%e %M", *command], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"analyze failed:\n{result.stderr[-2000:]}")
    wall, rss_kb = result.stderr.strip().splitlines()[-1].split()
    return float(wall), float(rss_kb) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=REPO / "sample_scans" / "indexcase")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "analyze.md")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "leukotrack")
    n_sessions = len(scan_case(args.case).sessions)
    walls, peaks = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            wall, rss = _timed([exe, "analyze", str(args.case), "--out", out])
        walls.append(wall)
        peaks.append(rss)
        print(f"run: {wall:.1f} s, {rss:.0f} MB", flush=True)
    steps: dict[str, float] = {}
    clock = {"start": time.perf_counter()}
    current = {"step": ""}

    def record(message: str) -> None:
        now = time.perf_counter()
        if current["step"]:
            kind = current["step"].split(": ", 1)[-1]
            steps[kind] = steps.get(kind, 0.0) + now - clock["start"]
        clock["start"], current["step"] = now, message

    start = time.perf_counter()
    process_case(scan_case(args.case), progress=record)
    record("end")
    total = time.perf_counter() - start
    wall = statistics.median(walls)
    lines = [
        f"`leukotrack analyze` on {args.case.name} ({n_sessions} sessions), {args.runs} runs, "
        f"median; {time.strftime('%Y-%m-%d')}, 2 cores.",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| wall time, whole case (fresh process, loading and writing included) | {wall:.1f} s | 60 s |",
        f"| wall time per session | {wall / n_sessions:.1f} s | 10 s |",
        f"| peak memory (RSS) | {max(peaks):.0f} MB | 2048 MB |",
        "",
        f"In-process steps of one run ({total:.1f} s in all):",
        "",
        "| step | s |",
        "|---|---:|",
        *(
            f"| {name} | {seconds:.1f} |"
            for name, seconds in sorted(steps.items(), key=lambda kv: -kv[1])
        ),
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
