"""The FLAIR change error of several ``calibrate_uncertainty.py`` runs on the same pairs, side by side.

Each argument is the JSON a run wrote beside its markdown (``--out FILE.md`` writes ``FILE.json``);
the pairs all runs share are listed with both sessions' volumes, the measured change and its error
against the true (continuous) change, then the root-mean-square change error of each run over all
pairs, over the pairs whose truth is under ``SMALL_ML`` (the smallest lesion loads) and over the
growing pairs (true change above 0). Used for the engine experiments of this folder (README.md).

Usage: ``python benchmarks/experiments/compare_changes.py A.json B.json [...]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

#: Truths whose first-session volume is under this (mL) count as small lesion loads.
SMALL_ML = 3.0


def rms(values: list[float]) -> float:
    """Root mean square (nan for none)."""
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = [{p["pair"]: p for p in json.loads(f.read_text())["pairs"]} for f in args.runs]
    names = sorted(set.intersection(*(set(r) for r in runs)))
    print("| pair | true change mL | " + " | ".join(f.stem for f in args.runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    groups: list[dict[str, list[float]]] = [{"all": [], "small": [], "growing": []} for _ in runs]
    for name in names:
        true_change = runs[0][name]["true_change_ml"]
        cells = []
        for run, group in zip(runs, groups, strict=True):
            pair = run[name]
            volumes = "/".join(f"{s['volume_ml']:.2f}" for s in pair["sessions"])
            error = pair["change_ml"] - pair["true_change_ml"]
            group["all"].append(error)
            if pair["true_volume_ml"][0] < SMALL_ML:
                group["small"].append(error)
            if pair["true_change_ml"] > 0:
                group["growing"].append(error)
            cells.append(f"{volumes}, change {pair['change_ml']:+.2f} (error {error:+.2f})")
        print(f"| {name} | {true_change:+.2f} | " + " | ".join(cells) + " |")
    print()
    for path, group in zip(args.runs, groups, strict=True):
        print(
            f"- {path.stem}: RMS change error {rms(group['all']):.3f} mL over {len(group['all'])} "
            f"pairs; {rms(group['small']):.3f} on loads under {SMALL_ML:g} mL "
            f"({len(group['small'])}); {rms(group['growing']):.3f} on growing pairs "
            f"({len(group['growing'])}); mean error on growing pairs "
            f"{sum(group['growing']) / max(1, len(group['growing'])):+.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
