"""Fit the uncertainty's two calibrated settings on a kept development run (never on the reported set).

Reads what ``benchmarks/calibrate_uncertainty.py --set dev --keep DIR`` left: each pair's truth.json
and the analysis' provenance.json (``uncertainty``: every draw's FLAIR lesion volume and the
partial-volume band's two cuts), recomputes the FLAIR volume and change intervals for a grid of
``band_weight`` and ``change_relative_sd`` values exactly as ``followup/analyze.py`` combines them,
and prints, per setting, the coverage of the volume and change intervals, the false changes on the
0 % pairs and the detections of the +25 % pairs. The defaults of
:class:`imaging.uncertainty.UncertaintyParams` are the smallest values that bring both coverages
into 90-98 % here.

Usage: ``python benchmarks/fit_uncertainty.py DIR [--truth binary|continuous]``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.uncertainty import change_estimate, estimate  # noqa: E402

MEASURE = "flair_lesion_volume_ml"


def load(folder: Path, truth_kind: str) -> list[dict[str, Any]]:
    """Per pair: its change, true volumes and, per session, the value, draws and band cuts."""
    pairs = []
    for provenance in sorted(folder.glob("*/out/sub-*/provenance.json")):
        name = provenance.parent.name.removeprefix("sub-")
        truth = json.loads(next(folder.glob(f"*/cases/{name}/truth.json")).read_text())
        spread = json.loads(provenance.read_text())["uncertainty"]["sessions"]
        with (provenance.parent / "sessions.tsv").open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        sessions = []
        for row in rows:
            entry = spread.get(row["session_id"], {}).get(MEASURE) or {}
            value = float(row[MEASURE] or 0.0)
            sessions.append(
                (value, [float(d) for d in entry.get("draws", [])], entry.get("band") or None)
            )
        key = "binary_volume_ml" if truth_kind == "binary" else "volume_ml"
        pairs.append({"name": name, "change": truth["change"], "true": truth[key], "s": sessions})
    return pairs


def evaluate(pairs: list[dict[str, Any]], band_weight: float, change_sd: float) -> dict[str, Any]:
    """Coverages, false changes and detections of one setting."""
    covered, change_covered, false, zero, detected, large = [], [], 0, 0, 0, 0
    for pair in pairs:
        for (value, draws, band), true in zip(pair["s"], pair["true"], strict=True):
            found = estimate(value, draws, band=band, band_weight=band_weight)
            covered.append(found.low <= true <= found.high)
        (v1, d1, b1), (v2, d2, b2) = pair["s"]
        found = change_estimate(
            v1,
            v2,
            d1,
            d2,
            band_before=b1,
            band_after=b2,
            band_weight=band_weight,
            other_sd=change_sd * (v1 + v2) / 2,
        )
        true_change = pair["true"][1] - pair["true"][0]
        change_covered.append(
            found.low <= true_change <= found.high if math.isfinite(found.low) else true_change == 0
        )
        if pair["change"] == 0:
            zero += 1
            false += found.label in ("increase", "decrease")
        if pair["change"] >= 0.25:
            large += 1
            detected += found.label == "increase"
    return {
        "volume": float(np.mean(covered)),
        "change": float(np.mean(change_covered)),
        "false": f"{false}/{zero}",
        "detected_25": f"{detected}/{large}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the --keep folder of a dev calibration run")
    parser.add_argument("--truth", choices=("binary", "continuous"), default="binary")
    args = parser.parse_args(argv)
    pairs = load(args.folder, args.truth)
    if not pairs:
        print(
            f"no kept calibration pairs under {args.folder} (run calibrate_uncertainty.py --keep)"
        )
        return 2
    print(f"{len(pairs)} pairs, {args.truth} truth")
    print(
        "| band_weight | change_relative_sd | volume coverage | change coverage | false | +25 % |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for band_weight in (0.0, 0.5, 1.0):
        for change_sd in (0.0, 0.01, 0.02, 0.025, 0.03, 0.04):
            r = evaluate(pairs, band_weight, change_sd)
            print(
                f"| {band_weight:g} | {change_sd:g} | {100 * r['volume']:.0f} % | "
                f"{100 * r['change']:.0f} % | {r['false']} | {r['detected_25']} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
