"""DWI part of the uncertainty calibration (issue 16, point 3): scores and tables.

``python benchmarks/calibrate_uncertainty.py --dwi`` writes a diffusion series (b = 0 and trace, or
the trace alone, and the scanner's ADC; :mod:`synthetic.test_retest_dwi`) into every session of
every test-retest pair; this module scores what ``analyze`` measured on them against the truth:

* the DWI lesion volume (truth: the restricted lesion volume, the 1 mm voxels mostly lesion whose
  apparent ADC is below 0.75 of white matter's; :func:`synthetic.test_retest_dwi.true_dwi`) and
  its change;
* rADC (the DWI lesion's ADC over normal white matter's; truth: the mean apparent ADC of those
  voxels over the true white-matter ADC) and its change;
* the FLAIR-lesion rADC (truth: the same over every 1 mm voxel mostly lesion) and its change.

Each gets the coverage of its 95 % intervals, and each change its false "beyond noise" label on
the 0 % pairs and its "increase" on the +25 % pairs (volumes).
"""

from __future__ import annotations

import math
from typing import Any

from calibrate_uncertainty import (
    CHANGE_LABELS,
    _fmt,
    covered,
    median_or_none,
    number,
    rate,
)

from followup.intervals import SESSION_CHANGES

#: (key, sessions.tsv column) of each scored DWI measure; its change and label columns are
#: ``followup.intervals.SESSION_CHANGES[column]``.
MEASURES = (
    ("volume", "dwi_lesion_volume_ml"),
    ("radc", "radc"),
    ("flair_radc", "flair_lesion_radc"),
)


def _truths(record: dict[str, Any], key: str) -> list[float]:
    names = {"volume": "volume_ml", "radc": "radc", "flair_radc": "flair_radc"}
    return [float(v) for v in record["dwi"][names[key]]]


def score_dwi(record: dict[str, Any], sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The DWI measures of one pair beside its truth (``record`` is the truth.json with ``dwi``)."""
    by_session = {str(r.get("session_id")): r for r in sessions}
    rows = [by_session.get("ses-01", {}), by_session.get("ses-02", {})]
    dwi = record["dwi"]
    out: dict[str, Any] = {
        "input_kind": dwi["input_kind"],
        "dwi_slice_mm": dwi["slice_mm"],
        "lesion_radc": dwi["lesion_radc"],
        "noise_sd": dwi["noise_sd"],
    }
    for key, column in MEASURES:
        change_column, label_column = SESSION_CHANGES[column]
        truth = _truths(record, key)
        entries = []
        for row, value_true in zip(rows, truth, strict=True):
            low, high = number(row.get(f"{column}_ci_low")), number(row.get(f"{column}_ci_high"))
            known = math.isfinite(value_true)
            entries.append(
                {
                    "true": value_true if known else None,
                    "value": number(row.get(column)),
                    "ci_low": low,
                    "ci_high": high,
                    "covered": covered(value_true, low, high) if known else None,
                }
            )
        true_change = truth[1] - truth[0] if all(math.isfinite(t) for t in truth) else None
        second = rows[1]
        low = number(second.get(f"{change_column}_ci_low"))
        high = number(second.get(f"{change_column}_ci_high"))
        out[key] = {
            "sessions": entries,
            "true_change": true_change,
            "change": number(second.get(change_column)),
            "change_ci_low": low,
            "change_ci_high": high,
            "change_covered": None if true_change is None else covered(true_change, low, high),
            "label": str(second.get(label_column, "")),
        }
    return out


def _of_change(records: list[dict[str, Any]], percent: float) -> list[dict[str, Any]]:
    return [r for r in records if round(100 * r["change"], 6) == percent]


def dwi_summary(records: list[dict[str, Any]]) -> list[str]:
    """The DWI scores of the module docstring, as markdown lines (empty without DWI records)."""
    ok = [r for r in records if "error" not in r and "dwi" in r]
    if not ok:
        return []
    names = {
        "volume": "DWI lesion volume",
        "radc": "rADC (DWI lesion)",
        "flair_radc": "FLAIR-lesion rADC",
    }
    lines = [
        "## DWI (the same pairs, with a diffusion series)",
        "",
        "| measure | result | target |",
        "|---|---|---|",
    ]
    no_change = _of_change(ok, 0.0)
    for key, _ in MEASURES:
        flags = [s["covered"] for r in ok for s in r["dwi"][key]["sessions"]]
        lines.append(f"| {names[key]}: interval contains the truth | {rate(flags)} | 90-98 % |")
        for kind in sorted({r["dwi"]["input_kind"] for r in ok}):
            kind_flags = [
                s["covered"]
                for r in ok
                if r["dwi"]["input_kind"] == kind
                for s in r["dwi"][key]["sessions"]
            ]
            lines.append(f"| ... `{kind}` | {rate(kind_flags)} | |")
        lines.append(
            f"| {names[key]} change: interval contains the true change | "
            f"{rate([r['dwi'][key]['change_covered'] for r in ok])} | 90-98 % |"
        )
        lines.append(
            f"| {names[key]} change: false 'beyond noise' on 0 % pairs | "
            f"{rate([r['dwi'][key]['label'] in CHANGE_LABELS for r in no_change])} | <= 5 % |"
        )
        if key == "volume":
            for percent in sorted({round(100 * r["change"], 6) for r in ok if r["change"] > 0}):
                target = "100 %" if percent >= 25 else "(reported)"
                flags = [r["dwi"][key]["label"] == "increase" for r in _of_change(ok, percent)]
                lines.append(
                    f"| DWI lesion volume: 'increase' on true change {percent:+g} % | "
                    f"{rate(flags)} | {target} |"
                )
    volume_err = [
        100 * (s["value"] - s["true"]) / s["true"]
        for r in ok
        for s in r["dwi"]["volume"]["sessions"]
        if s["value"] is not None and (s["true"] or 0) > 0
    ]
    radc_err = [
        s["value"] - s["true"]
        for r in ok
        for s in r["dwi"]["radc"]["sessions"]
        if s["value"] is not None and s["true"] is not None
    ]
    half = [
        (s["ci_high"] - s["ci_low"]) / 2
        for r in ok
        for s in r["dwi"]["radc"]["sessions"]
        if s["ci_low"] is not None and s["ci_high"] is not None
    ]
    lines += [
        "",
        f"Median signed DWI volume error {_fmt(median_or_none(volume_err), 1)} % of the truth; "
        f"median signed rADC error {_fmt(median_or_none(radc_err), 3)}, median rADC interval "
        f"half-width {_fmt(median_or_none(half), 3)}. {len(ok)} pairs with DWI.",
        "",
    ]
    return lines


def dwi_table(records: list[dict[str, Any]]) -> list[str]:
    """One row per pair: DWI volumes, rADC, and their changes."""
    ok = [r for r in records if "error" not in r and "dwi" in r]
    if not ok:
        return []

    def cell(entry: dict[str, Any], digits: int) -> str:
        return (
            f"{_fmt(entry['value'], digits)} [{_fmt(entry['ci_low'], digits)}, "
            f"{_fmt(entry['ci_high'], digits)}]"
        )

    lines = [
        "## DWI pairs",
        "",
        "| pair | input | slice mm | change % | true mL (1 -> 2) | DWI ses-01 | DWI ses-02 | "
        "DWI change [95 %] | label | true rADC | rADC ses-01 | rADC ses-02 | rADC change | "
        "label | covered |",
        "|" + "---|" * 15,
    ]
    for r in ok:
        d = r["dwi"]
        v, a = d["volume"], d["radc"]
        true_radc = [s["true"] for s in a["sessions"]]
        flags = [
            *(s["covered"] for s in v["sessions"]),
            v["change_covered"],
            *(s["covered"] for s in a["sessions"]),
            a["change_covered"],
        ]
        marks = "".join("?" if f is None else ("y" if f else "N") for f in flags)
        lines.append(
            f"| {r['pair']} | {d['input_kind']} | {d['dwi_slice_mm']:g} | {100 * r['change']:+g} | "
            f"{v['sessions'][0]['true'] or 0:.2f} -> {v['sessions'][1]['true'] or 0:.2f} | "
            f"{cell(v['sessions'][0], 2)} | {cell(v['sessions'][1], 2)} | "
            f"{_fmt(v['change'])} [{_fmt(v['change_ci_low'])}, {_fmt(v['change_ci_high'])}] | "
            f"{v['label'] or '-'} | {_fmt(true_radc[0], 3)} -> {_fmt(true_radc[1], 3)} | "
            f"{cell(a['sessions'][0], 3)} | {cell(a['sessions'][1], 3)} | "
            f"{_fmt(a['change'], 3)} [{_fmt(a['change_ci_low'], 3)}, "
            f"{_fmt(a['change_ci_high'], 3)}] | {a['label'] or '-'} | {marks} |"
        )
    lines += [
        "",
        "covered: DWI volume ses-01, ses-02, change; rADC ses-01, ses-02, change (y yes, N no, "
        "? no truth or no interval).",
        "",
    ]
    return lines
