"""Benchmark of the lesion segmentation alone: seconds per sample session and on the real MS
patient's 1 mm FLAIR.

These budgets used to be asserted in tests/test_segment.py (< 2 s per sample session, < 10 s on the
MS patient), where they failed whenever the machine was loaded; they are measured here instead.
Segmentation only (behind the oracle registration of tests/test_segment.py); loading, N4 and
registration are in bench_analyze.py.

Usage: ``python benchmarks/bench_segment.py [--out benchmarks/results/segment.md]``
(the MS patient is measured when ``../shared/realdata`` or ``$LEUKOTRACK_REALDATA`` holds it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.segment import segment_flair_lesions  # noqa: E402
from tests.conftest import realdata_root  # noqa: E402
from tests.test_segment import _ms_patient, segment_case_with_oracle_registration  # noqa: E402

#: Budgets (issue 3): seconds of segmentation per sample session, and on the MS patient.
SESSION_BUDGET_S = 2.0
MS_PATIENT_BUDGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=REPO / "sample_scans" / "indexcase")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "segment.md")
    args = parser.parse_args()
    rows = segment_case_with_oracle_registration(args.case)
    lines = [
        f"Lesion segmentation (FLAIR + DWI, oracle registration) on {args.case.name}; "
        f"{time.strftime('%Y-%m-%d')}, 2 cores.",
        "",
        "| input | seconds | budget |",
        "|---|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['session']} | {row['seconds']:.2f} | {SESSION_BUDGET_S:g} |")
        print(f"{row['session']}: {row['seconds']:.2f} s", flush=True)
    realdata = realdata_root()
    if (realdata / "open_ms_patient07" / "FLAIR.nii.gz").is_file():
        flair, brain, prior, _ = _ms_patient(realdata)
        start = time.perf_counter()
        segment_flair_lesions(flair, brain, prior)
        seconds = time.perf_counter() - start
        lines.append(f"| MS patient FLAIR, 1 mm | {seconds:.2f} | {MS_PATIENT_BUDGET_S:g} |")
        print(f"MS patient: {seconds:.2f} s", flush=True)
    else:
        lines.append(
            f"| MS patient FLAIR (not found at {realdata}) | - | {MS_PATIENT_BUDGET_S:g} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    over = [r for r in rows if float(r["seconds"]) > SESSION_BUDGET_S]  # type: ignore[arg-type]
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
