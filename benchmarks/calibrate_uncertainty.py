"""Calibration of the per-measurement intervals on synthetic test-retest pairs (issue 16, point 3).

Each pair is one synthetic truth (:mod:`synthetic.test_retest`: anatomy, contrast, protocol and a
real expert lesion mask of ``open_ms_masks_mni``) scanned twice with a new head pose, slice plan,
bias field and noise, the second time with the continuous lesion volume changed by a known
fraction (default 0, +5, +10 and +25 %), plus lesion-free pairs. Every pair is written as a
two-session NIfTI case in a temporary folder and analysed in-process with
``followup.analyze.analyze_case`` at the chosen ``--uncertainty`` level; the intervals are scored
against the truth:

* coverage of the 95 % volume intervals over (pair, session) and of the change intervals over
  pairs (target 90-98 %), with a Wilson 95 % interval of each coverage;
* the beyond-noise label: "increase" on every +25 % pair (target 100 %), "increase" or "decrease"
  (a false change) on at most 5 % of the 0 % pairs (lesional and lesion-free); the detection rate
  of +5 % and +10 %;
* per lesion (a truth lesion matched to a tracked FLAIR lesion of the first session by centroid
  within ``MATCH_MM`` in the first session's world): the same coverages and the false change rate;
* the median interval half-width (% of the volume), the median volume error, wall time per pair.

The truth volume (``--truth``) is by default the binary one: the voxels of the 1 mm render grid
(patient space, pose-independent) whose lesion fraction is at least 0.5, the definition of every
other volume figure of README (an expert marks a voxel as lesion when it is mostly lesion).
``--truth continuous`` scores against the sum of the lesion fraction instead (lesion tissue
volume: it holds the partial volume of lesions smaller than a voxel, which no voxel-wise method
counts).

Sets (disjoint masks and seeds):

* ``dev`` (what the intervals are tuned on): the 15 masks neither in ``flair_cohort.COHORT`` nor
  the validation patient (the FLAIR voxel classifier was trained on these masks, with other
  seeds), truth seeds 20000 + i, lesion-free truths 20900 + j;
* ``report`` (what README reports): the 12 masks of ``flair_cohort.COHORT`` (never used to train
  the classifier; the FLAIR cohort benchmark renders them with seeds 100-112), truth seeds
  30000 + i, lesion-free truths 30900 + j.

patient07 (the real validation case) is in neither. The shipped lesion-frequency prior was built
from all masks but patient07, so both sets have their lesions in the prior.

With ``--dwi`` every session also gets a diffusion series (b = 0 and trace or the trace alone, and
the scanner's ADC; :mod:`synthetic.test_retest_dwi`) and the DWI lesion volume, rADC and
FLAIR-lesion rADC are scored too (:mod:`calibrate_dwi`; results in ``..._dwi.md``), and per
DWI lesion the same as per FLAIR lesion, against each truth lesion's restricted volume
(:func:`synthetic.test_retest_dwi.lesion_dwi_volume_ml`). Cases kept by a run made before that
truth existed get it with ``--dwi-lesion-truth`` (their truths built again from mask and seed,
checked against what the run recorded).

Usage: ``python benchmarks/calibrate_uncertainty.py [--set dev|report] [--truths N]
[--controls N] [--changes 0,5,10,25] [--first I] [--pairs N] [--uncertainty LEVEL] [--workers N]
[--dwi] [--keep DIR] [--reanalyse DIR | --rescore DIR] [--dwi-lesion-truth] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from flair_cohort import COHORT, VALIDATION, realdata_root  # noqa: E402

from synthetic.test_retest import (  # noqa: E402
    RetestTruth,
    changed_fraction,
    lesion_owner,
    make_pair,
    make_truth,
    write_pair,
)
from synthetic.test_retest_dwi import add_lesion_dwi_truth, true_dwi, write_dwi  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
#: A truth lesion and a tracked lesion are the same when their centroids are this close (mm).
MATCH_MM = 5.0
#: A tracked lesion claimed by several truth lesions is ambiguous when another than the nearest
#: holds at least this share of the nearest's volume.
AMBIGUOUS_SHARE = 0.1
#: Seeds of each set: (lesional truths, lesion-free truths).
SEEDS = {"dev": (20000, 20900), "report": (30000, 30900)}
CHANGES_PERCENT = (0, 5, 10, 25)
CHANGE_LABELS = ("increase", "decrease")


@dataclass(frozen=True)
class PairPlan:
    """One pair to build: which mask, which seeds, which change."""

    name: str
    mask: str | None
    truth_seed: int
    change: float
    scan_seeds: tuple[int, int]


@dataclass
class TruthTask:
    """The pairs of one truth (built in one worker: the truth is drawn once)."""

    mask: str | None
    truth_seed: int
    pairs: list[PairPlan] = field(default_factory=list)


def mask_names(set_name: str, masks_folder: Path) -> list[str]:
    """The expert masks of a set, in the order they are used (see the module docstring)."""
    if set_name == "report":
        return list(COHORT)
    present = sorted(p.name.split("_")[0] for p in masks_folder.glob("patient*_lesions_mni.nii.gz"))
    return [n for n in present if n not in COHORT and n != VALIDATION]


def plan(
    set_name: str,
    masks: list[str],
    *,
    truths: int,
    controls: int,
    changes_percent: Iterable[float],
    seed_offset: int = 0,
) -> list[TruthTask]:
    """The truths of a set and their pairs, deterministic.

    ``seed_offset`` renders the set again as new truths (seeds ``base + seed_offset + i``, the
    lesion-free ones ``free_base + seed_offset + j``: another deformation, contrast, noise and
    scans; pair names ``dev11s100c25``, ``devfree00s100``)."""
    base, free_base = SEEDS[set_name]
    changes = list(changes_percent)
    tag = f"s{seed_offset}" if seed_offset else ""
    tasks = []
    for i, mask in enumerate(masks[:truths]):
        seed = base + seed_offset + i
        task = TruthTask(mask, seed)
        for c_index, percent in enumerate(changes):
            sign = "m" if percent < 0 else ""
            task.pairs.append(
                PairPlan(
                    name=f"{set_name}{i:02d}{tag}c{sign}{abs(percent):g}".replace(".", "p"),
                    mask=mask,
                    truth_seed=seed,
                    change=percent / 100.0,
                    scan_seeds=(seed * 100 + 10 * c_index + 1, seed * 100 + 10 * c_index + 2),
                )
            )
        tasks.append(task)
    for j in range(controls):
        seed = free_base + seed_offset + j
        task = TruthTask(None, seed)
        task.pairs.append(
            PairPlan(
                f"{set_name}free{j:02d}{tag}", None, seed, 0.0, (seed * 100 + 1, seed * 100 + 2)
            )
        )
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------------- the analysis
def uncertainty_ready() -> str | None:
    """None when the analysis takes ``PipelineParams(uncertainty=...)``; else what is missing."""
    try:
        from imaging.pipeline import PipelineParams
        from imaging.uncertainty import UncertaintyParams
    except ImportError as error:
        return f"imaging.uncertainty is not available yet ({error})"
    try:
        PipelineParams(uncertainty=UncertaintyParams.level("standard"))
    except TypeError as error:
        return f"PipelineParams does not take uncertainty= yet ({error})"
    return None


def analyse(
    case_dir: Path, out_dir: Path, level: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``analyze_case`` at ``level``: (sessions rows, lesions rows)."""
    from followup.analyze import analyze_case
    from imaging.pipeline import PipelineParams
    from imaging.uncertainty import UncertaintyParams

    params = PipelineParams(uncertainty=UncertaintyParams.level(level))
    result = analyze_case(case_dir, out_dir, params=params)
    return result.sessions, result.lesions


def number(value: Any) -> float | None:
    """A table cell as a float; None when empty or not a number."""
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def covered(truth: float, low: float | None, high: float | None, tol: float = 1e-9) -> bool | None:
    """Whether ``truth`` lies in ``[low, high]`` (None when there is no interval)."""
    if low is None or high is None:
        return None
    return low - tol <= truth <= high + tol


def match_lesions(
    truth_lesions: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    *,
    source: str = "flair",
    volume_key: str = "volume_ml",
) -> tuple[dict[int, tuple[str, float]], set[int]]:
    """Match truth lesions to tracked first-session lesions of ``source`` by centroid
    (first-session world); a truth lesion's size is its ``volume_key`` in the first scan, and a
    truth lesion without any there (a DWI truth lesion with no restricted tissue) claims nothing.

    Each truth lesion claims its nearest tracked lesion within ``MATCH_MM``. A tracked lesion
    claimed by one truth lesion, or by several of which all but the nearest hold less than
    ``AMBIGUOUS_SHARE`` of its volume, is matched to the nearest; otherwise its claimants are
    ambiguous (one tracked lesion, several true ones: its volume is not one truth lesion's).

    Returns
    -------
    matches : dict
        Truth lesion number -> (tracked lesion id, centroid distance in mm).
    ambiguous : set of int
        Truth lesion numbers left out as ambiguous.
    """
    first = [
        r
        for r in rows
        if r.get("session_id") == "ses-01"
        and r.get("source", "flair") == source
        and (number(r.get("volume_ml")) or 0.0) > 0
    ]
    if not first:
        return {}, set()
    centres = np.array(
        [[number(r.get(f"centroid_{a}_mm")) or np.nan for a in "xyz"] for r in first]
    )
    claims: dict[str, list[tuple[float, int, float]]] = {}
    for lesion in truth_lesions:
        distance = np.linalg.norm(centres - np.asarray(lesion["centroid_ses01_mm"]), axis=1)
        if not np.isfinite(distance).any() or not float(lesion[volume_key][0]) > 0:
            continue
        best = int(np.nanargmin(distance))
        if distance[best] <= MATCH_MM:
            claim = (float(distance[best]), int(lesion["lesion"]), float(lesion[volume_key][0]))
            claims.setdefault(str(first[best]["lesion_id"]), []).append(claim)
    matches: dict[int, tuple[str, float]] = {}
    ambiguous: set[int] = set()
    for lesion_id, found in claims.items():
        found.sort()
        distance, k, volume = found[0]
        if any(other[2] >= AMBIGUOUS_SHARE * volume for other in found[1:]):
            ambiguous.update(c[1] for c in found)
        else:
            matches[k] = (lesion_id, distance)
    return matches, ambiguous


#: Which truth the intervals are scored against (``--truth``): "binary" or "continuous".
TRUTH = {"kind": "binary"}


def true_volumes(record: dict[str, Any]) -> list[float]:
    """The two scans' true volumes (mL) of a truth.json record or of one of its lesions."""
    if TRUTH["kind"] == "binary" and "binary_volume_ml" in record:
        return [float(v) for v in record["binary_volume_ml"]]
    return [float(v) for v in record["volume_ml"]]


def per_lesion_scores(
    truth_lesions: list[dict[str, Any]], lesions: list[dict[str, Any]], *, source: str
) -> list[dict[str, Any]]:
    """Each truth lesion beside the tracked lesion of ``source`` it matches (lesions.tsv rows).

    The truth of a FLAIR lesion is its volume (:func:`true_volumes`), of a DWI lesion its
    restricted volume (``dwi_volume_ml``, :func:`synthetic.test_retest_dwi.lesion_dwi_volume_ml`).
    """
    rows = [r for r in lesions if r.get("source", "flair") == source]
    volume_key = "dwi_volume_ml" if source == "dwi" else "volume_ml"
    matches, ambiguous = match_lesions(truth_lesions, rows, source=source, volume_key=volume_key)
    by_id: dict[tuple[str, str], dict[str, Any]] = {
        (str(r.get("lesion_id")), str(r.get("session_id"))): r for r in rows
    }
    per_lesion = []
    for lesion in truth_lesions:
        k = int(lesion["lesion"])
        true = [float(v) for v in lesion[volume_key]] if source == "dwi" else true_volumes(lesion)
        entry: dict[str, Any] = {
            "lesion": k,
            "true_ml": true,
            "true_change_ml": true[1] - true[0],
            "merged_in_ses02": lesion["merged_in_ses02"],
            "matched": k in matches,
            "ambiguous": k in ambiguous,
        }
        if k in matches:
            lesion_id, distance = matches[k]
            entry["lesion_id"], entry["distance_mm"] = lesion_id, distance
            for s, session in enumerate(("ses-01", "ses-02")):
                row = by_id.get((lesion_id, session), {})
                volume = number(row.get("volume_ml"))
                lo, hi = number(row.get("volume_ml_ci_low")), number(row.get("volume_ml_ci_high"))
                entry[f"ses0{s + 1}"] = {
                    "volume_ml": volume,
                    "ci_low": lo,
                    "ci_high": hi,
                    "covered": covered(true[s], lo, hi),
                }
            row = by_id.get((lesion_id, "ses-02"), {})
            lo = number(row.get("volume_change_ml_ci_low"))
            hi = number(row.get("volume_change_ml_ci_high"))
            entry.update(
                {
                    "change_ml": number(row.get("volume_change_ml")),
                    "change_ci_low": lo,
                    "change_ci_high": hi,
                    "change_covered": covered(true[1] - true[0], lo, hi),
                    "label": str(row.get("change_beyond_noise", "")),
                    "change": str(row.get("change", "")),
                }
            )
        per_lesion.append(entry)
    return per_lesion


def score_pair(
    record: dict[str, Any], sessions: list[dict[str, Any]], lesions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The measured numbers of one pair beside its truth (``record`` is the truth.json)."""
    by_session = {str(r.get("session_id")): r for r in sessions}
    rows = [by_session.get("ses-01", {}), by_session.get("ses-02", {})]
    true_volume = true_volumes(record)
    true_change = true_volume[1] - true_volume[0]
    out: dict[str, Any] = {"sessions": []}
    for row, truth in zip(rows, true_volume, strict=True):
        volume = number(row.get("flair_lesion_volume_ml"))
        low = number(row.get("flair_lesion_volume_ml_ci_low"))
        high = number(row.get("flair_lesion_volume_ml_ci_high"))
        out["sessions"].append(
            {
                "true_ml": truth,
                "volume_ml": volume,
                "ci_low": low,
                "ci_high": high,
                "covered": covered(truth, low, high),
            }
        )
    second = rows[1]
    change = number(second.get("flair_lesion_volume_change_ml"))
    if change is None and out["sessions"][0]["volume_ml"] is not None:
        v1, v2 = out["sessions"][0]["volume_ml"], out["sessions"][1]["volume_ml"]
        change = None if v2 is None else v2 - v1
    low = number(second.get("flair_lesion_volume_change_ml_ci_low"))
    high = number(second.get("flair_lesion_volume_change_ml_ci_high"))
    out.update(
        {
            "true_change_ml": true_change,
            "change_ml": change,
            "change_ci_low": low,
            "change_ci_high": high,
            "change_covered": covered(true_change, low, high),
            "label": str(second.get("flair_lesion_volume_change_beyond_noise", "")),
            "uncertainty_level": str(second.get("uncertainty_level", "")),
        }
    )
    out["lesions"] = per_lesion_scores(record["lesions"], lesions, source="flair")
    if record["lesions"] and "dwi_volume_ml" in record["lesions"][0]:
        out["dwi_lesions"] = per_lesion_scores(record["lesions"], lesions, source="dwi")
    # every labelled follow-up row of both sources, matched to a truth lesion or not: a lesion
    # found on one scan only is "new" or "resolved", which the matched rows above leave out
    out["labelled_rows"] = [
        {
            "source": str(r.get("source", "flair")),
            "change": str(r.get("change", "")),
            "label": str(r.get("change_beyond_noise", "")),
        }
        for r in lesions
        if r.get("session_id") == "ses-02" and r.get("change_beyond_noise")
    ]
    return out


def scored(
    truth_record: dict[str, Any],
    sessions: list[dict[str, Any]],
    lesions: list[dict[str, Any]],
    generate_s: float,
    analyse_s: float,
) -> dict[str, Any]:
    """A pair's record: its truth (``truth.json``), what was measured, and the times (s)."""
    from calibrate_dwi import score_dwi  # imports this module: not at the top

    dwi = {"dwi": score_dwi(truth_record, sessions)} if "dwi" in truth_record else {}
    return {
        **dwi,
        "true_volume_ml": truth_record["volume_ml"],
        "true_change_ml": truth_record["change_ml"],
        "binary_volume_ml": truth_record["binary_volume_ml"],
        "offset_mm": truth_record["offset_mm"],
        "brain_in_fov": [s["brain_in_fov"] for s in truth_record["scans"]],
        "truth_lesions": len(truth_record["lesions"]),
        "generate_s": generate_s,
        "analyse_s": analyse_s,
        **score_pair(truth_record, sessions, lesions),
    }


def rescore(folder: Path) -> list[dict[str, Any]]:
    """Score again the pairs kept by an earlier ``--keep folder`` run (no generation, no analysis)."""
    import csv

    records = []
    for truth_path in sorted(folder.glob("truth*/cases/*/truth.json")):
        case = truth_path.parent
        truth_record = json.loads(truth_path.read_text())
        tables = []
        for name in ("sessions.tsv", "lesions.tsv"):
            path = case.parents[1] / "out" / f"sub-{case.name}" / name
            if not path.is_file():
                break
            with path.open(newline="") as handle:
                tables.append(list(csv.DictReader(handle, delimiter="\t")))
        record: dict[str, Any] = {
            "pair": case.name,
            "mask": truth_record.get("mask"),
            "truth_seed": truth_record.get("truth_seed"),
            "change": truth_record["change"],
            "slice_mm": truth_record["truth_settings"]["slice_mm"],
            "coarse": truth_record["truth_settings"]["coarse"],
        }
        if len(tables) < 2:
            record["error"] = "no analysis output kept"
        else:
            timing_path = case / "timing.json"
            timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
            record.update(
                scored(
                    truth_record,
                    tables[0],
                    tables[1],
                    float(timing.get("generate_s", math.nan)),
                    float(timing.get("analyse_s", math.nan)),
                )
            )
        records.append(record)
    return records


def _truth_of(mask_name: str | None, truth_seed: int) -> RetestTruth:
    """The synthetic truth of an expert mask of ``open_ms_masks_mni`` (None: lesion-free)."""
    if mask_name is None:
        mask, affine = None, _mni_affine()
    else:
        path = realdata_root() / "open_ms_masks_mni" / f"{mask_name}_lesions_mni.nii.gz"
        image = nib.load(path)
        assert isinstance(image, nib.Nifti1Image)
        mask, affine = np.asarray(image.dataobj) > 0, np.asarray(image.affine, dtype=np.float64)
    return make_truth(mask, affine, truth_seed=truth_seed)


def add_dwi_lesion_truths(folder: Path) -> int:
    """Give the kept cases of an earlier ``--keep --dwi`` run each lesion's restricted volume
    (``dwi_volume_ml`` in ``truth.json``; :func:`synthetic.test_retest_dwi.add_lesion_dwi_truth`),
    when they lack it: their truths are built again from mask and seed and checked against what
    the run recorded (every lesion's FLAIR volume, the whole DWI truth). Returns the cases given it.

    Raises
    ------
    ValueError
        When a truth built again differs from the recorded one.
    """
    done = 0
    for truth_dir in sorted(p for p in folder.glob("truth*") if (p / "cases").is_dir()):
        paths = sorted(truth_dir.glob("cases/*/truth.json"))
        records = [(path, json.loads(path.read_text())) for path in paths]
        records = [
            (path, r)
            for path, r in records
            if "dwi" in r and r["lesions"] and "dwi_volume_ml" not in r["lesions"][0]
        ]
        if not records:
            continue
        first = records[0][1]
        truth = _truth_of(first.get("mask"), int(first["truth_seed"]))
        _, owner = lesion_owner(truth)
        for path, record in records:
            fraction2, _ = changed_fraction(truth, float(record["change"]))
            fractions = (truth.fraction, fraction2)
            for s, fraction in enumerate(fractions):
                binary = np.bincount(owner[fraction >= 0.5], minlength=len(record["lesions"]) + 1)
                recorded = [lesion["binary_volume_ml"][s] for lesion in record["lesions"]]
                again = true_dwi(truth, fraction, record["dwi"])["volume_ml"]
                if not (
                    np.allclose(binary[1:] * truth.voxel_ml, recorded, rtol=0, atol=1e-9)
                    and math.isclose(again, record["dwi"]["volume_ml"][s], abs_tol=1e-9)
                ):
                    raise ValueError(f"{path}: the truth built again differs from the recorded one")
            add_lesion_dwi_truth(record, truth, fractions, record["dwi"], owner=owner)
            path.write_text(json.dumps(record, indent=1) + "\n")
            done += 1
    return done


def run_task(
    task: TruthTask, work: str, level: str, keep: bool, dwi: bool = False
) -> list[dict[str, Any]]:
    """Build a truth's pairs, analyse and score each; one record per pair (errors recorded).

    With ``dwi`` every session also gets a diffusion series (:mod:`synthetic.test_retest_dwi`).
    """
    root = Path(work)
    results = []
    start = time.perf_counter()
    truth = _truth_of(task.mask, task.truth_seed)
    truth_s = time.perf_counter() - start
    for pair_plan in task.pairs:
        record: dict[str, Any] = {
            "pair": pair_plan.name,
            "mask": pair_plan.mask,
            "truth_seed": pair_plan.truth_seed,
            "change": pair_plan.change,
            "slice_mm": truth.settings["slice_mm"],
            "coarse": truth.settings["coarse"],
        }
        try:
            t0 = time.perf_counter()
            pair = make_pair(truth, pair_plan.change, scan_seeds=pair_plan.scan_seeds)
            case = write_pair(
                pair,
                root / "cases" / pair_plan.name,
                extra={"mask": pair_plan.mask, "truth_seed": pair_plan.truth_seed},
            )
            if dwi:
                write_dwi(pair, case, truth_seed=pair_plan.truth_seed)
            truth_record = json.loads((case / "truth.json").read_text())
            generate_s = time.perf_counter() - t0 + truth_s / len(task.pairs)
            t1 = time.perf_counter()
            sessions, lesions = analyse(case, root / "out", level)
            analyse_s = time.perf_counter() - t1
            record.update(scored(truth_record, sessions, lesions, generate_s, analyse_s))
            if keep:
                timing = {"generate_s": generate_s, "analyse_s": analyse_s}
                (case / "timing.json").write_text(json.dumps(timing) + "\n")
        except Exception as error:  # a failed analysis is a result too
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = traceback.format_exc(limit=6)
        finally:
            if not keep:
                shutil.rmtree(root / "cases" / pair_plan.name, ignore_errors=True)
                shutil.rmtree(root / "out", ignore_errors=True)
        print(f"{pair_plan.name}: {_one_line(record)}", file=sys.stderr, flush=True)
        results.append(record)
    return results


def reanalyse_truth(truth_dir: str, level: str) -> list[str]:
    """Analyse again every pair an earlier ``--keep`` run left in one truth folder (the same scans,
    the same draws: only the code differs); the earlier output is moved to ``out_prev`` (replacing
    an older one). Returns one line per pair."""
    root = Path(truth_dir)
    out = root / "out"
    if out.exists():
        shutil.rmtree(root / "out_prev", ignore_errors=True)
        out.rename(root / "out_prev")
    lines = []
    for case in sorted((root / "cases").iterdir()):
        if not (case / "truth.json").is_file():
            continue
        start = time.perf_counter()
        analyse(case, out, level)
        seconds = time.perf_counter() - start
        timing_path = case / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        timing["analyse_s"] = seconds
        timing_path.write_text(json.dumps(timing) + "\n")
        lines.append(f"{case.name}: analysed again in {seconds:.0f} s")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def _mni_affine() -> np.ndarray:
    """The 1 mm MNI grid of the expert masks (182 x 218 x 182)."""
    return np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]])


def _one_line(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"ERROR {record['error']}"
    s1, s2 = record["sessions"]
    return (
        f"true {record['true_volume_ml'][0]:.2f} -> {record['true_volume_ml'][1]:.2f} mL, "
        f"measured {_fmt(s1['volume_ml'])} [{_fmt(s1['ci_low'])}, {_fmt(s1['ci_high'])}] -> "
        f"{_fmt(s2['volume_ml'])} [{_fmt(s2['ci_low'])}, {_fmt(s2['ci_high'])}], change "
        f"{_fmt(record['change_ml'])} [{_fmt(record['change_ci_low'])}, "
        f"{_fmt(record['change_ci_high'])}] (true {record['true_change_ml']:.2f}) "
        f"'{record['label']}', {record['generate_s'] + record['analyse_s']:.0f} s"
    )


# -------------------------------------------------------------------------------- the report
def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (0-1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(flags: list[bool | None]) -> str:
    """``hits/n = p % (Wilson 95 % lo-hi %)`` over the flags that are not None."""
    known = [f for f in flags if f is not None]
    if not known:
        return "n/a (0)"
    hits = sum(known)
    lo, hi = wilson(hits, len(known))
    missing = len(flags) - len(known)
    extra = f", {missing} without interval" if missing else ""
    return (
        f"{hits}/{len(known)} = {100 * hits / len(known):.0f} % "
        f"({100 * lo:.0f}-{100 * hi:.0f} %{extra})"
    )


def median_or_none(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(known) if known else None


def summary(records: list[dict[str, Any]]) -> list[str]:
    """The scores of the module docstring, as markdown lines."""
    ok = [r for r in records if "error" not in r]
    failed = [r for r in records if "error" in r]
    lesional = [r for r in ok if r["true_volume_ml"][0] > 0]
    sessions = [(r, s) for r in ok for s in r["sessions"]]

    def of_change(percent: float) -> list[dict[str, Any]]:
        return [r for r in ok if round(100 * r["change"], 6) == percent]

    no_change = of_change(0.0)
    lines = [
        "## Whole-load volume (FLAIR)",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| volume interval contains the true volume, all (pair, session) | "
        f"{rate([s['covered'] for _, s in sessions])} | 90-98 % |",
        f"| ... lesional pairs only | "
        f"{rate([s['covered'] for r, s in sessions if r['true_volume_ml'][0] > 0])} | 90-98 % |",
        f"| ... 3D 1 mm | {rate([s['covered'] for r, s in sessions if r['slice_mm'] <= 1])} | |",
        f"| ... 2D 3-4 mm | {rate([s['covered'] for r, s in sessions if r['slice_mm'] > 1])} | |",
        f"| change interval contains the true change, all pairs | "
        f"{rate([r['change_covered'] for r in ok])} | 90-98 % |",
    ]
    for percent in sorted({round(100 * r["change"], 6) for r in ok}):
        group = of_change(percent)
        lines.append(
            f"| ... true change {percent:+g} % | {rate([r['change_covered'] for r in group])} | |"
        )
    lines += [
        f"| 'beyond noise' false change ('increase' or 'decrease') on 0 % pairs | "
        f"{rate([r['label'] in CHANGE_LABELS for r in no_change])} | <= 5 % |",
        f"| ... lesion-free pairs | "
        f"{rate([r['label'] in CHANGE_LABELS for r in no_change if r['true_volume_ml'][0] == 0])}"
        " | |",
    ]
    for percent in sorted({round(100 * r["change"], 6) for r in ok if r["change"] != 0}):
        group = of_change(percent)
        word = "increase" if percent > 0 else "decrease"
        target = "100 %" if abs(percent) >= 25 else "(reported)"
        lines.append(
            f"| '{word}' on true change {percent:+g} % | "
            f"{rate([r['label'] == word for r in group])} | {target} |"
        )
    half = [
        100 * (s["ci_high"] - s["ci_low"]) / 2 / s["volume_ml"]
        for _, s in sessions
        if s["ci_low"] is not None and s["ci_high"] is not None and (s["volume_ml"] or 0) > 0
    ]
    abs_err = [
        abs(s["volume_ml"] - s["true_ml"]) for r, s in sessions if s["volume_ml"] is not None
    ]
    rel_err = [
        100 * (s["volume_ml"] - s["true_ml"]) / s["true_ml"]
        for r, s in sessions
        if s["volume_ml"] is not None and s["true_ml"] > 0
    ]
    change_err = [
        abs(r["change_ml"] - r["true_change_ml"]) for r in ok if r["change_ml"] is not None
    ]
    wall = [r["generate_s"] + r["analyse_s"] for r in ok]
    analyse_s = [r["analyse_s"] for r in ok]
    lines += [
        "",
        f"Median interval half-width {_fmt(median_or_none(half), 1)} % of the volume; median "
        f"|volume error| {_fmt(median_or_none(abs_err), 3)} mL (median signed "
        f"{_fmt(median_or_none(rel_err), 1)} % on lesional sessions); median |change error| "
        f"{_fmt(median_or_none(change_err), 3)} mL. Wall time per pair: median "
        f"{_fmt(median_or_none(wall), 0)} s (analysis {_fmt(median_or_none(analyse_s), 0)} s, "
        f"slowest {_fmt(max(wall, default=None), 0)} s). {len(ok)} pairs analysed "
        f"({len(lesional)} lesional), {len(failed)} failed.",
        "",
    ]
    lines += lesion_summary(ok) + lesion_summary(ok, source="dwi")
    lines += labelled_row_summary(ok)
    return lines


def labelled_row_summary(records: list[dict[str, Any]]) -> list[str]:
    """False changes over every labelled follow-up lesion row of the 0 % pairs, by source and class
    (one-to-one, new, resolved): what a reader of ``lesions.tsv`` sees on an unchanged brain."""
    no_change = [r for r in records if r["change"] == 0 and "labelled_rows" in r]
    if not no_change:
        return []
    lines = [
        "## Per lesion, every labelled row of the 0 % pairs",
        "",
        "Every follow-up row of `lesions.tsv` with a noise label, matched to a truth lesion or not "
        "(a lesion found on one scan only is *new* or *resolved*; the per-lesion rows above "
        "hold only lesions matched in the first session and followed one-to-one). Each is a "
        "false change when labelled beyond noise.",
        "",
        "| source | one-to-one | new | resolved | all | target |",
        "|---|---|---|---|---|---|",
    ]
    for source in ("flair", "dwi"):
        rows = [x for r in no_change for x in r["labelled_rows"] if x["source"] == source]
        if not rows:
            continue
        classes = [
            [x for x in rows if x["change"] not in ("new", "resolved")],
            [x for x in rows if x["change"] == "new"],
            [x for x in rows if x["change"] == "resolved"],
            rows,
        ]
        cells = " | ".join(rate([x["label"] in CHANGE_LABELS for x in group]) for group in classes)
        lines.append(f"| {source.upper()} | {cells} | <= 5 % |")
    return [*lines, ""]


def lesion_summary(records: list[dict[str, Any]], *, source: str = "flair") -> list[str]:
    """Per-lesion scores (matched truth lesions; merged-in-ses02 lesions out of the change rows)
    of FLAIR lesions, or of DWI lesions (truth: each lesion's restricted volume)."""
    key = "dwi_lesions" if source == "dwi" else "lesions"
    entries = [(r, e) for r in records for e in r.get(key, [])]
    if not entries:
        return []
    matched = [(r, e) for r, e in entries if e["matched"]]
    volume_flags = [e[f"ses0{s}"]["covered"] for _, e in matched for s in (1, 2)]
    tracked = [
        (r, e)
        for r, e in matched
        if not e["merged_in_ses02"] and e.get("change") not in ("merged", "split", "resolved")
    ]
    no_change = [(r, e) for r, e in tracked if r["change"] == 0]
    big = [(r, e) for r, e in tracked if r["change"] >= 0.25]
    sizes = [e["true_ml"][0] for _, e in matched]
    ambiguous = sum(1 for _, e in entries if e.get("ambiguous"))
    bins = ((0.0, 0.01), (0.01, 0.05), (0.05, 0.2), (0.2, math.inf))
    found = []
    for lo, hi in bins:
        group = [e for _, e in entries if lo <= e["true_ml"][0] < hi and e["true_ml"][0] > 0]
        found.append(
            f"{lo:g}-{hi:g} mL: {sum(e['matched'] for e in group)}/{len(group)}".replace(
                "-inf", "+"
            )
        )
    what = (
        "truth lesions with restricted tissue in the first scan (each lesion's voxels mostly "
        "lesion with apparent rADC below 0.75)"
        if source == "dwi"
        else "truth lesions (components of lesion fraction >= 0.5)"
    )
    counted = [e for _, e in entries if source != "dwi" or e["true_ml"][0] > 0]
    return [
        f"## Per lesion ({'DWI' if source == 'dwi' else 'FLAIR'})",
        "",
        f"{len(matched)} of {len(counted)} {what} "
        f"matched to a tracked lesion within {MATCH_MM:g} mm (median matched size "
        f"{_fmt(median_or_none(sizes), 3)} mL; {ambiguous} left out as ambiguous: several truth "
        f"lesions on one tracked lesion); {len(tracked)} followed to the second session without "
        f"a merge or split. Matched by true size: {'; '.join(found)}.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| volume interval contains the lesion's true volume | {rate(volume_flags)} | 90-98 % |",
        f"| change interval contains the lesion's true change | "
        f"{rate([e.get('change_covered') for _, e in tracked])} | 90-98 % |",
        f"| ... pairs with 0 % change | {rate([e.get('change_covered') for _, e in no_change])} | |",
        f"| false change on 0 % pairs | "
        f"{rate([e.get('label') in CHANGE_LABELS for _, e in no_change])} | <= 5 % |",
        f"| 'increase' on +25 % pairs (each lesion grows by its own share) | "
        f"{rate([e.get('label') == 'increase' for _, e in big])} | (reported) |",
        "",
    ]


def pair_table(records: list[dict[str, Any]]) -> list[str]:
    """One row per pair."""
    lines = [
        "## Pairs",
        "",
        "| pair | mask | slice mm | coarse | change % | true mL (1 -> 2) | measured ses-01 [95 %] | "
        "measured ses-02 [95 %] | true change mL | change [95 %] | label | covered | s |",
        "|" + "---|" * 13,
    ]
    for r in records:
        if "error" in r:
            lines.append(
                f"| {r['pair']} | {r['mask'] or 'none'} | {r['slice_mm']:g} | "
                f"{'yes' if r['coarse'] else 'no'} | {100 * r['change']:+g} | "
                f"ERROR: {r['error'][:120]} |" + " |" * 7
            )
            continue
        s1, s2 = r["sessions"]
        flags = [s1["covered"], s2["covered"], r["change_covered"]]
        marks = "".join("?" if f is None else ("y" if f else "N") for f in flags)
        lines.append(
            f"| {r['pair']} | {r['mask'] or 'none'} | {r['slice_mm']:g} | "
            f"{'yes' if r['coarse'] else 'no'} | {100 * r['change']:+g} | "
            f"{r['true_volume_ml'][0]:.2f} -> {r['true_volume_ml'][1]:.2f} | "
            f"{_fmt(s1['volume_ml'])} [{_fmt(s1['ci_low'])}, {_fmt(s1['ci_high'])}] | "
            f"{_fmt(s2['volume_ml'])} [{_fmt(s2['ci_low'])}, {_fmt(s2['ci_high'])}] | "
            f"{r['true_change_ml']:+.2f} | {_fmt(r['change_ml'])} [{_fmt(r['change_ci_low'])}, "
            f"{_fmt(r['change_ci_high'])}] | {r['label'] or '-'} | {marks} | "
            f"{r['generate_s'] + r['analyse_s']:.0f} |"
        )
    lines += ["", "covered: ses-01 volume, ses-02 volume, change (y yes, N no, ? no interval).", ""]
    return lines


def report(records: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    """The whole results file."""
    level = next((r["uncertainty_level"] for r in records if r.get("uncertainty_level")), "")
    head = [
        f"# Uncertainty calibration on synthetic test-retest pairs ({args.set} set)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Run {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; --uncertainty "
        f"{args.uncertainty} (recorded level: {level or 'none'}); {args.workers} worker(s). "
        + (
            "Truth volume: binary (voxels of the 1 mm render grid with lesion fraction >= 0.5); "
            if TRUTH["kind"] == "binary"
            else "Truth volume: continuous (sum of the lesion fraction over the 1 mm render grid); "
        )
        + "see benchmarks/calibrate_uncertainty.py and synthetic/test_retest.py.",
        "",
    ]
    from calibrate_dwi import dwi_summary, dwi_table  # imports this module: not at the top

    tables = summary(records) + dwi_summary(records) + pair_table(records) + dwi_table(records)
    return "\n".join(head + tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("dev", "report"), default="dev")
    parser.add_argument("--truths", type=int, default=8, help="lesional truths (default 8)")
    parser.add_argument("--controls", type=int, default=2, help="lesion-free pairs (default 2)")
    parser.add_argument(
        "--changes",
        default=",".join(str(c) for c in CHANGES_PERCENT),
        help="true changes in %% per lesional truth, comma-separated (default 0,5,10,25)",
    )
    parser.add_argument("--pairs", type=int, help="stop after this many pairs (quick runs)")
    parser.add_argument(
        "--first",
        type=int,
        default=0,
        help="start at this lesional truth (the truths before it are not run; default 0)",
    )
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="render the set's masks again as new truths with seeds shifted by this (default 0: "
        "the set's own truths)",
    )
    parser.add_argument("--uncertainty", default="standard", help="level (default standard)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--truth",
        choices=("binary", "continuous"),
        default="binary",
        help="truth volume: voxels with lesion fraction >= 0.5 (default) or the fraction's sum",
    )
    parser.add_argument(
        "--dwi",
        action="store_true",
        help="give every session a diffusion series too and score DWI volume and rADC",
    )
    parser.add_argument("--keep", type=Path, help="build and keep the cases here")
    parser.add_argument("--out", type=Path, help="results markdown (JSON beside it)")
    parser.add_argument(
        "--rescore",
        type=Path,
        help="only score again what an earlier --keep run left in this folder",
    )
    parser.add_argument(
        "--dwi-lesion-truth",
        action="store_true",
        help="with --rescore or --reanalyse: first give kept cases that lack it each lesion's "
        "restricted volume (truths built again from mask and seed, checked against the record)",
    )
    parser.add_argument(
        "--reanalyse",
        type=Path,
        help="analyse again (at --uncertainty) what an earlier --keep run left in this folder, "
        "then score it as --rescore does",
    )
    args = parser.parse_args(argv)
    TRUTH["kind"] = args.truth
    command = "python benchmarks/calibrate_uncertainty.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    out = args.out or RESULTS / (
        ("uncertainty_calibration" if args.set == "report" else "uncertainty_calibration_dev")
        + ("_dwi" if args.dwi else "")
        + ".md"
    )
    if args.reanalyse:
        truths = sorted(str(p) for p in args.reanalyse.glob("truth*") if (p / "cases").is_dir())
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            list(pool.map(reanalyse_truth, truths, [args.uncertainty] * len(truths)))
        args.rescore = args.reanalyse
    if args.rescore:
        if args.dwi_lesion_truth:
            given = add_dwi_lesion_truths(args.rescore)
            print(f"{given} kept cases given their DWI lesions' truth", file=sys.stderr)
        kept = rescore(args.rescore)
        if not kept:
            print(
                f"nothing to rescore: {args.rescore} holds no truth*/cases/*/truth.json of a "
                "--keep run; give the folder an earlier run kept",
                file=sys.stderr,
            )
            return 2
        write_results(kept, args, command.strip(), out, [])
        return 0
    missing = uncertainty_ready()
    if missing:
        print(f"cannot calibrate: {missing}", file=sys.stderr)
        return 2
    folder = realdata_root() / "open_ms_masks_mni"
    if not folder.is_dir():
        print(f"skipped: {folder} not found (set LEUKOTRACK_REALDATA)")
        return 0
    changes = [float(c) for c in args.changes.split(",") if c.strip()]
    tasks = plan(
        args.set,
        mask_names(args.set, folder),
        truths=args.truths,
        controls=args.controls,
        changes_percent=changes,
        seed_offset=args.seed_offset,
    )
    first_seed = SEEDS[args.set][0] + args.seed_offset + args.first
    tasks = [t for t in tasks if t.mask is None or t.truth_seed >= first_seed]
    if args.pairs is not None:
        left = args.pairs
        for task in tasks:
            task.pairs = task.pairs[: max(0, left)]
            left -= len(task.pairs)
        tasks = [t for t in tasks if t.pairs]
    with tempfile.TemporaryDirectory(prefix="calibrate_") as tmp:
        records: list[dict[str, Any]] = []
        works = [
            str(args.keep / f"truth{i:02d}") if args.keep else str(Path(tmp) / f"truth{i:02d}")
            for i in range(len(tasks))
        ]
        keep = args.keep is not None
        if args.workers <= 1:
            for task, work in zip(tasks, works, strict=True):
                records += run_task(task, work, args.uncertainty, keep, args.dwi)
        else:
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                futures = [
                    pool.submit(run_task, task, work, args.uncertainty, keep, args.dwi)
                    for task, work in zip(tasks, works, strict=True)
                ]
                for future in futures:
                    records += future.result()
    write_results(records, args, command.strip(), out, [asdict(p) for t in tasks for p in t.pairs])
    return 0


def write_results(
    records: list[dict[str, Any]],
    args: argparse.Namespace,
    command: str,
    out: Path,
    plan_rows: list[dict[str, Any]],
) -> None:
    """Print the report; write it to ``out`` and every pair's numbers to ``out``'s ``.json``."""
    text = report(records, args, command)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    payload = {
        "command": command,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "set": args.set,
        "uncertainty": args.uncertainty,
        "plan": plan_rows,
        "pairs": records,
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"written: {out} and {out.with_suffix('.json').name}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
