"""Generate the sample cases under ``sample_scans/``: the synthetic index case (DICOM export, truth and
clinical files) and the clinical-only CNS myeloma case.

Usage::

    python scripts/make_sample_scans.py [--out sample_scans] [--seed N] [--png DIR] [--references]

The bundled sample is written without ``--references`` and ``--png`` (which needs the references), so
that it stays small; both add exact per-series pixel references under ``truth/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthetic import DEFAULT_SEED, make_case
from synthetic.clinical import CLINICAL_CASES, write_clinical


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sample_scans"), help="output root")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="case seed")
    parser.add_argument("--case-id", default="indexcase", help="case folder name")
    parser.add_argument("--no-lesions", action="store_true", help="lesion-free control")
    parser.add_argument("--png", type=Path, default=None, help="also write PNG contact sheets here")
    parser.add_argument(
        "--references", action="store_true", help="write exact pixel references (implied by --png)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    case_dir = make_case(
        args.out / args.case_id,
        seed=args.seed,
        lesions=not args.no_lesions,
        case_id=args.case_id,
        references=args.references or args.png is not None,
    )
    if args.case_id in CLINICAL_CASES and not args.no_lesions:
        write_clinical(case_dir, args.case_id)
    if args.case_id == "indexcase":  # the clinical-only case comes with the default sample
        for path in write_clinical(args.out / "cnsmyeloma", "cnsmyeloma"):
            print(f"wrote {path}")
    elapsed = time.perf_counter() - start
    size = sum(p.stat().st_size for p in case_dir.rglob("*") if p.is_file())
    print(f"wrote {case_dir} ({size / 1e6:.1f} MB) in {elapsed:.1f} s")
    if args.png is not None:
        from synthetic.render import render_case

        for path in render_case(case_dir, args.png, overlay=True):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
