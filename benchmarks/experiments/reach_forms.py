"""Other forms of a change's whole reach, scored on kept calibration folders (issue 16).

A change's interval reaches whole over what its draws cannot reproduce (``change_estimate(reach=...)``):
the FLAIR-lesion rADC's change over its readings on both sessions' lesion footprints, the DWI volume's
change over the restricted tissue one session's ADC reads where only the other found a lesion. This
script rebuilds, for each pair of a kept ``calibrate_uncertainty.py`` folder, the interval without
the reach (from the draws, bands and SDs of ``provenance.json``), takes the reach as the difference to
the written interval, and scores three forms against the truth:

* ``whole``: the written interval (the reach added whole; what leukotrack does);
* ``sd``: the reach's range as a uniform ambiguity, SD ``(down + up) / sqrt(12)``, in quadrature with
  the draws' SD, about the value;
* ``shift``: the interval moved by the reach (``up - down``), as a correction of the value rather than
  a widening;
* ``none``: no reach.

Usage::

    python benchmarks/experiments/reach_forms.py --measure flair_lesion_radc KEPT_DEV [KEPT_DEV25 ...]
    python benchmarks/experiments/reach_forms.py --measure dwi_lesion_volume_ml KEPT_DEV ...
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imaging.uncertainty import change_estimate

CHANGE = {
    "flair_lesion_radc": "flair_lesion_radc_change",
    "dwi_lesion_volume_ml": "dwi_lesion_volume_change_ml",
}


def _finite(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _true_change(truth: dict, measure: str) -> float:
    series = truth["dwi"]["flair_radc" if measure == "flair_lesion_radc" else "volume_ml"]
    return float(series[1] - series[0])


def score(folders: list[Path], measure: str) -> dict[str, list[int]]:
    """Per form: [pairs, covered, no-change pairs, false changes, increases on +25 %, +25 % pairs]."""
    change = CHANGE[measure]
    totals = {form: [0, 0, 0, 0, 0, 0] for form in ("whole", "sd", "shift", "none")}
    for out in sorted(p for folder in folders for p in folder.glob("truth*/out/sub-*")):
        record = json.loads((out / "provenance.json").read_text())["uncertainty"]
        params, first, second = (
            record["params"],
            record["sessions"]["ses-01"][measure],
            record["sessions"]["ses-02"][measure],
        )
        rows = list(csv.DictReader((out / "sessions.tsv").open(), delimiter="\t"))
        try:
            before, after = float(rows[0][measure]), float(rows[1][measure])
            low, high = float(rows[1][f"{change}_ci_low"]), float(rows[1][f"{change}_ci_high"])
        except ValueError:
            continue  # no value or no interval
        relative = (
            params["change_relative_sd"] * (before + after) / 2 if measure.endswith("_ml") else 0
        )
        plain = change_estimate(
            before,
            after,
            _finite(first["draws"]),
            _finite(second["draws"]),
            band_before=tuple(first["band"]) if first["band"] else None,
            band_after=tuple(second["band"]) if second["band"] else None,
            band_weight=params["band_weight"],
            other_sd=math.hypot(first["other_sd"], second["other_sd"], relative),
            z=params["z"],
        )
        if not math.isfinite(plain.low):
            continue
        down, up = max(plain.low - low, 0.0), max(high - plain.high, 0.0)
        value = after - before
        sd = math.hypot(plain.sd, (down + up) / math.sqrt(12.0))
        forms = {
            "whole": (low, high),
            "sd": (value - params["z"] * sd, value + params["z"] * sd),
            "shift": (plain.low - down + up, plain.high - down + up),
            "none": (plain.low, plain.high),
        }
        truth = json.loads((out.parent.parent / "cases" / out.name[4:] / "truth.json").read_text())
        true = _true_change(truth, measure)
        for form, (a, b) in forms.items():
            t = totals[form]
            t[0] += 1
            t[1] += a <= true <= b
            if truth["change"] == 0:
                t[2] += 1
                t[3] += a > 0 or b < 0
            if truth["change"] >= 0.25:
                t[5] += 1
                t[4] += a > 0
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", choices=sorted(CHANGE), required=True)
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    for form, (n, covered, controls, false, calls, growths) in score(
        args.folders, args.measure
    ).items():
        calls_text = (
            f", increase on +25 % {calls}/{growths}" if args.measure.endswith("_ml") else ""
        )
        print(f"{form:6s} coverage {covered}/{n}, false changes {false}/{controls}{calls_text}")


if __name__ == "__main__":
    main()
