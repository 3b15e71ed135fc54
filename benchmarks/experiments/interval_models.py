"""Score kept calibration cases again under other interval models, without analysing them again.

``calibrate_uncertainty.py --keep DIR`` leaves every pair's ``sessions.tsv`` and ``provenance.json``
(each session's draws and partial-volume band cuts); its JSON holds the truths. This script
rebuilds every session's and change's 95 % interval from those under each model and scores them
as the calibration does (interval holds the truth; false "beyond noise" on the 0 % pairs;
"increase" on the +25 % pairs). A change's reach (lesions seen on one scan only, the FLAIR-lesion
rADC's footprints) is not in the provenance: it is read back from the run's own interval as what
lies beyond the interval its model gives from the draws and band, and added unchanged.

The models differ for the two lesion volumes only (the rADC keeps the SD in all):

* ``sd``: the partial-volume band as an SD about the value (width / sqrt(12)) in quadrature with
  the draws; the DWI session volume's interval also about the band's midpoint (the code before
  ``band_range``);
* ``range``: the band as a range the truth lies in: the central 95 % of a uniform band plus the
  draws' normal noise (:func:`band_range_interval`);
* ``range_hull``: ``range`` widened to hold ``value +- z`` times the draws' noise (what
  ``band_range.patch`` of this folder makes ``imaging.uncertainty.estimate(band_range=True)`` do).

``sd`` is the shipped model (``imaging.uncertainty.estimate``); the patch was measured and not
adopted (README.md of this folder).

Usage::

    python benchmarks/experiments/interval_models.py KEPT_DIR RUN.json [--run-model sd] [--reach whole]

``--run-model`` is the model the kept cases were analysed with (their reach is read back against
it): ``sd`` for the shipped code, ``range_hull`` with ``band_range.patch`` applied.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy.optimize import brentq
from scipy.special import ndtr

from imaging.uncertainty import UncertaintyParams, estimate

MODELS = ("sd", "range", "range_hull")
MEASURES = {
    "flair_lesion_volume_ml": "flair_lesion_volume_change_ml",
    "dwi_lesion_volume_ml": "dwi_lesion_volume_change_ml",
    "radc": "radc_change",
    "flair_lesion_radc": "flair_lesion_radc_change",
}
#: The shipped settings: the intervals' quantile and the change-response term.
Z = UncertaintyParams().z
CHANGE_RELATIVE_SD = UncertaintyParams().change_relative_sd


def number(cell: Any) -> float:
    """A table cell as a float (nan when empty)."""
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


def band_range_interval(band: tuple[float, float], sd: float) -> tuple[float, float]:
    """The central 95 % (``z = Z``) of ``U(a, b) + N(0, sd^2)``: its distribution function is
    ``(G(x - a) - G(x - b)) / (b - a)`` with ``G(t) = t Phi(t / sd) + sd phi(t / sd)``."""
    a, b = min(band), max(band)
    width, tail = b - a, float(ndtr(-Z))
    if width <= 1e-12 * max(1.0, abs(a), abs(b)):
        return a - Z * sd, b + Z * sd
    if sd <= 1e-12 * width:
        return a + tail * width, b - tail * width

    def g(t: float) -> float:
        u = t / sd
        return t * float(ndtr(u)) + sd * math.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)

    def below(x: float) -> float:
        return (g(x - a) - g(x - b)) / width

    ends = (a - 10.0 * sd - width, b + 10.0 * sd + width)
    low = brentq(lambda x: below(x) - tail, *ends, xtol=1e-9 * (width + sd))
    high = brentq(lambda x: below(x) - (1.0 - tail), *ends, xtol=1e-9 * (width + sd))
    return float(low), float(high)


def interval(
    model: str,
    value: float,
    draws: Sequence[float],
    band: Sequence[float] | None,
    other_sd: float,
    *,
    volume: bool,
    session_dwi: bool = False,
    clip: bool = True,
) -> tuple[float, float]:
    """One 95 % interval under ``model`` (see the module docstring)."""
    pair = (float(band[0]), float(band[1])) if band is not None else None
    found = estimate(
        value,
        draws,
        band=pair,
        other_sd=other_sd,
        z=Z,
        non_negative=False,
        band_centred=model == "sd" and session_dwi,
    )
    low, high = found.low, found.high
    if volume and pair is not None and model != "sd" and math.isfinite(found.sd):
        noise = estimate(value, draws, other_sd=other_sd, z=Z, non_negative=False).sd
        low, high = band_range_interval(pair, noise)
        if model == "range_hull":
            low, high = min(low, value - Z * noise), max(high, value + Z * noise)
    if clip and volume:
        low, high = max(low, 0.0), max(high, 0.0)
    return low, high


def truths(pair: dict[str, Any]) -> dict[str, list[float]]:
    """The true value of each measure in both sessions."""
    out = {"flair_lesion_volume_ml": [s["true_ml"] for s in pair["sessions"]]}
    dwi = pair.get("dwi")
    if dwi:
        out["dwi_lesion_volume_ml"] = [s["true"] for s in dwi["volume"]["sessions"]]
        out["radc"] = [number(s["true"]) for s in dwi["radc"]["sessions"]]
        out["flair_lesion_radc"] = [number(s["true"]) for s in dwi["flair_radc"]["sessions"]]
    return out


def reached(
    value: float, low: float, high: float, reach: tuple[float, float], mode: str
) -> tuple[float, float]:
    """The interval with the change's reach (``(down, up)``) added as ``mode`` says: ``whole``
    (the shipped rule), ``none``, ``half``, ``quadrature`` (with each half-width), or ``capN``
    (whole, at most N mL)."""
    if mode == "whole":
        return low - reach[0], high + reach[1]
    if mode == "half":
        return low - reach[0] / 2, high + reach[1] / 2
    if mode == "quadrature":
        return value - math.hypot(value - low, reach[0]), value + math.hypot(high - value, reach[1])
    if mode.startswith("cap"):
        cap = float(mode[3:])
        return low - min(reach[0], cap), high + min(reach[1], cap)
    return low, high


def score(
    kept: Path, run: Path, run_model: str, reach_mode: str = "whole"
) -> dict[str, dict[str, list[int]]]:
    """Per model, ``{"measure kind": [hits, count]}``."""
    pairs = {p["pair"]: p for p in json.loads(run.read_text())["pairs"]}
    stats: dict[str, dict[str, list[int]]] = {m: {} for m in MODELS}

    def add(model: str, key: str, hit: bool) -> None:
        cell = stats[model].setdefault(key, [0, 0])
        cell[0] += int(hit)
        cell[1] += 1

    for table in sorted(kept.glob("truth*/out/sub-*/sessions.tsv")):
        name = table.parent.name.removeprefix("sub-")
        if name not in pairs:
            continue
        rows = list(csv.DictReader(table.open(), delimiter="\t"))
        spreads = json.loads((table.parent / "provenance.json").read_text())["uncertainty"]
        truth = truths(pairs[name])
        for measure, change in MEASURES.items():
            if measure not in truth or len(rows) != 2:
                continue
            volume = measure.endswith("_ml")
            values = [number(r[measure]) for r in rows]
            found = [spreads["sessions"][r["session_id"]].get(measure) for r in rows]
            for model in MODELS:
                for value, spread, true in zip(values, found, truth[measure], strict=True):
                    if spread is None or not (math.isfinite(value) and math.isfinite(true)):
                        continue
                    low, high = interval(
                        model,
                        value,
                        [number(d) for d in spread["draws"]],
                        spread["session_band"] or spread["band"],
                        spread["other_sd"],
                        volume=volume,
                        session_dwi=measure == "dwi_lesion_volume_ml",
                    )
                    if math.isfinite(low):
                        add(model, f"{measure} session", low <= true <= high)
            run_low, run_high = (
                number(rows[1][f"{change}_ci_low"]),
                number(rows[1][f"{change}_ci_high"]),
            )
            if None in found or not math.isfinite(run_low) or not all(map(math.isfinite, values)):
                continue
            before, after = found
            paired = [
                number(b) - number(a) for a, b in zip(before["draws"], after["draws"], strict=False)
            ]
            band = None
            if before["band"] and after["band"]:
                band = [after["band"][k] - before["band"][k] for k in (0, 1)]
            other = math.hypot(
                before["other_sd"],
                after["other_sd"],
                CHANGE_RELATIVE_SD * sum(values) / 2 if volume else 0.0,
            )
            value = values[1] - values[0]
            own = interval(run_model, value, paired, band, other, volume=volume, clip=False)
            reach = (max(own[0] - run_low, 0.0), max(run_high - own[1], 0.0))
            true_change = truth[measure][1] - truth[measure][0]
            if not math.isfinite(true_change):
                continue
            for model in MODELS:
                low, high = interval(model, value, paired, band, other, volume=volume, clip=False)
                low, high = reached(value, low, high, reach, reach_mode)
                add(model, f"{measure} change", low <= true_change <= high)
                label = "increase" if low > 0 else "decrease" if high < 0 else "within noise"
                if pairs[name]["change"] == 0:
                    add(model, f"{measure} false", label != "within noise")
                elif pairs[name]["change"] >= 0.25 and volume:
                    add(model, f"{measure} +25 % called", label == "increase")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--run-model", choices=MODELS, default="sd")
    parser.add_argument(
        "--reach",
        default="whole",
        help="how a change's reach joins its interval: whole (shipped), none, half, quadrature, "
        "capN (whole, at most N mL)",
    )
    args = parser.parse_args(argv)
    if not args.run.is_file() or not args.kept.is_dir():
        parser.error(
            f"{args.run} must be the JSON a calibrate_uncertainty.py run wrote and {args.kept} "
            "the folder its --keep left"
        )
    stats = score(args.kept, args.run, args.run_model, args.reach)
    keys = sorted({k for s in stats.values() for k in s})
    print("| measure | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for key in keys:
        cells = [stats[m].get(key, [0, 0]) for m in MODELS]
        print(f"| {key} | " + " | ".join(f"{h}/{n}" for h, n in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
