"""Loader benchmark: leukotrack's DICOM loader against dcm2niix on the same series, in one run.

For every real series in ../shared/realdata and every series of sample_scans/, it measures

* dcm2niix: wall time of the whole process (``dcm2niix -z n -b y``, uncompressed NIfTI + JSON), and its
  peak resident memory (``ru_maxrss`` from ``wait4``);
* leukotrack: wall time of ``load_series_folder`` inside a warm Python process (imports done), and the
  peak resident memory of a fresh process that imports leukotrack and loads the series once.

Each timing is the median of 5 runs after 1 warm-up, with both tools run alternately so machine noise
hits them alike. Targets (issue 2): load time at most 2x dcm2niix's wall time per series; peak memory at
most 3x the pixel data plus 150 MB.

Usage: ``python benchmarks/bench_loader.py [--out benchmarks/results/loader.md] [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.dicom import load_series_folder, scan_dicom  # noqa: E402

MB = 1024 * 1024


@dataclass
class Row:
    name: str
    files: int
    shape: str
    pixel_mb: float
    dcm2niix_s: float
    dcm2niix_rss_mb: float
    load_s: float
    load_rss_mb: float

    @property
    def time_ratio(self) -> float:
        return self.load_s / self.dcm2niix_s

    @property
    def memory_budget_mb(self) -> float:
        return 3 * self.pixel_mb + 150

    @property
    def ok(self) -> bool:
        return self.time_ratio <= 2.0 and self.load_rss_mb <= self.memory_budget_mb


def _dcm2niix() -> str:
    found = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(found).exists():
        raise SystemExit("dcm2niix not found: install the dev extra (pip install -e '.[dev]')")
    return found


def _run_measured(command: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one child process, as reported by GNU time.

    The command runs under ``/usr/bin/time`` so that its peak RSS is its own: a child forked straight
    from this (large) Python process would inherit the parent's high-water mark at ``exec``.
    """
    timer = shutil.which("time") or "/usr/bin/time"
    if not Path(timer).exists():
        raise SystemExit("GNU time is needed for memory figures: apt-get install time")
    result = subprocess.run(
        [timer, "-f", "%e %M", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed on {command[-1]}: {result.stderr[-500:]}")
    wall_s, rss_kb = result.stderr.strip().splitlines()[-1].split()
    return float(wall_s), float(rss_kb) / 1024


def _wall(command: list[str]) -> float:
    """Wall time (s) of one child process, measured here with a monotonic clock."""
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _series_folders(realdata: Path, samples: Path) -> list[tuple[str, Path]]:
    folders: list[tuple[str, Path]] = []
    if realdata.is_dir():
        for ref in sorted(realdata.rglob("dcm2niix.nii.gz")):
            folder = ref.parent.with_name(ref.parent.name.removesuffix(".ref"))
            folders.append((f"real {folder.relative_to(realdata)}", folder))
    if samples.is_dir():
        for study in scan_dicom(samples):
            for series in study.series:
                if series.problem or series.sequence.value == "OTHER":
                    continue  # the localizers: not loadable by design
                if any(p.name.endswith(".gz") for p in series.paths):
                    continue  # dcm2niix does not read gzip-compressed DICOM
                folder = series.paths[0].parent
                if all(p.parent == folder for p in series.paths) and len(
                    list(folder.iterdir())
                ) == len(series.paths):
                    label = (
                        f"sample {study.study_date} {series.sequence.value} {series.description}"
                    )
                    folders.append((label, folder))
    return folders


def measure(name: str, folder: Path, runs: int, exe: str) -> Row:
    image = load_series_folder(folder)  # also the in-process warm-up
    dcm_times, load_times = [], []
    with tempfile.TemporaryDirectory() as out:
        command = [exe, "-z", "n", "-b", "y", "-f", "%s_%d", "-o", out, str(folder)]
        _wall(command)  # warm-up
        for _ in range(runs):
            dcm_times.append(_wall(command))
            start = time.perf_counter()
            load_series_folder(folder)
            load_times.append(time.perf_counter() - start)
    probe = [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        "from imaging.dicom import load_series_folder; "
        f"load_series_folder(__import__('pathlib').Path({str(folder)!r}))",
    ]
    with tempfile.TemporaryDirectory() as out:
        command = [exe, "-z", "n", "-b", "y", "-f", "%s_%d", "-o", out, str(folder)]
        dcm_rss = max(_run_measured(command)[1] for _ in range(2))
    load_rss = max(_run_measured(probe)[1] for _ in range(2))
    return Row(
        name=name,
        files=sum(1 for p in folder.iterdir() if p.is_file()),
        shape="x".join(str(n) for n in image.shape),
        pixel_mb=image.data.nbytes / MB,
        dcm2niix_s=statistics.median(dcm_times),
        dcm2niix_rss_mb=dcm_rss,
        load_s=statistics.median(load_times),
        load_rss_mb=load_rss,
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| series | files | shape | pixels MB | dcm2niix s | leukotrack s | time ratio | "
        "dcm2niix RSS MB | leukotrack RSS MB | memory budget MB | within targets |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.files} | {r.shape} | {r.pixel_mb:.1f} | {r.dcm2niix_s:.3f} | "
            f"{r.load_s:.3f} | {r.time_ratio:.2f} | {r.dcm2niix_rss_mb:.0f} | {r.load_rss_mb:.0f} | "
            f"{r.memory_budget_mb:.0f} | {'yes' if r.ok else 'NO'} |"
        )
    total_load = sum(r.load_s for r in rows)
    total_dcm = sum(r.dcm2niix_s for r in rows)
    lines.append(
        f"| **all {len(rows)} series** | {sum(r.files for r in rows)} | | "
        f"{sum(r.pixel_mb for r in rows):.1f} | {total_dcm:.3f} | {total_load:.3f} | "
        f"{total_load / total_dcm:.2f} | | | | {sum(r.ok for r in rows)}/{len(rows)} |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--realdata",
        type=Path,
        default=Path(os.environ.get("LEUKOTRACK_REALDATA", REPO.parent / "shared" / "realdata")),
    )
    parser.add_argument("--samples", type=Path, default=REPO / "sample_scans")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "loader.md")
    args = parser.parse_args()
    exe = _dcm2niix()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name, folder in _series_folders(args.realdata, args.samples):
        row = measure(name, folder, args.runs, exe)
        print(
            f"{row.name}: load {row.load_s:.3f} s vs dcm2niix {row.dcm2niix_s:.3f} s "
            f"(x{row.time_ratio:.2f}); RSS {row.load_rss_mb:.0f} MB",
            flush=True,
        )
        rows.append(row)
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, dcm2niix {version.splitlines()[-1] if version else '?'}; "
        f"median of {args.runs} runs after a warm-up.\n\n"
    )
    text = header + table(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
