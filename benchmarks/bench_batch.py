"""Benchmark of ``leukotrack batch``: wall time with 1 and 2 Dask workers, the scheduler's overhead
against a plain in-process loop, and peak memory per worker, on a synthetic cohort.

Usage::

    python benchmarks/bench_batch.py [--cases 6] [--days 0] [--out benchmarks/results/batch.md]

The cohort is made by the sample generator (seeds 101, 102, ...; every third case lesion-free). All
configurations run in one process of this script, one after the other, on fresh output folders, so
that the ratios are measured under the same machine load. Each case runs with one SimpleITK thread
in every configuration (the batch's default when there is one worker per core), so the speed-up
measures the runner, not ITK's own threading; the last line adds one worker using both cores.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from followup.batch import process_case_task, run_batch


def _make(args: tuple[Path, int, bool]) -> Path:
    from synthetic import make_case

    folder, seed, lesions = args
    case = make_case(folder, seed=seed, lesions=lesions, days=(0,), case_id=folder.name)
    shutil.rmtree(case / "truth")
    return case


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/batch.md"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="leukotrack-bench-batch-"))
    root = work / "cohort"
    jobs = [(root / f"case{n:02d}", 101 + n, n % 3 != 2) for n in range(args.cases)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_make, jobs))
    rows = []

    def timed(label: str, run) -> None:  # type: ignore[no-untyped-def]
        out = work / label.replace(" ", "_")
        start = time.perf_counter()
        outcomes = run(out)
        seconds = time.perf_counter() - start
        failed = [o for o in outcomes if o.status != "done"]
        assert not failed, failed
        rss = max(o.worker_peak_rss_mb for o in outcomes)
        rows.append((label, seconds, rss))
        print(f"{label}: {seconds:.1f} s, peak RSS per worker {rss:.0f} MB", flush=True)

    timed("plain loop", lambda out: [process_case_task(str(c), str(out), 1) for c, _, _ in jobs])
    timed("dask 1 worker", lambda out: run_batch(root, out, workers=1, threads=1).outcomes)
    timed("dask 2 workers", lambda out: run_batch(root, out, workers=2, threads=1).outcomes)
    timed(
        "dask 1 worker, 2 threads", lambda out: run_batch(root, out, workers=1, threads=2).outcomes
    )
    plain, one, two, one_threaded = (r[1] for r in rows)
    lines = [
        "# `leukotrack batch` benchmark",
        "",
        f"{args.cases} synthetic cases of one session each (DWI, ADC, FLAIR), "
        f"{platform.machine()}, Python {platform.python_version()}; all runs in one process, "
        "one after the other.",
        "",
        "| configuration | wall time (s) | peak RSS per worker (MB) |",
        "|---|---|---|",
        *(f"| {label} | {seconds:.1f} | {rss:.0f} |" for label, seconds, rss in rows),
        "",
        f"* speed-up 2 workers / 1 worker: **{one / two:.2f}x** (target >= 1.7x)",
        f"* scheduler overhead, dask 1 worker against the plain loop: **{100 * (one / plain - 1):+.1f} %** "
        "(target <= 10 %)",
        f"* 2 workers against 1 worker using both cores for ITK: {one_threaded / two:.2f}x",
        "",
        "Reproduce: `python benchmarks/bench_batch.py`",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
