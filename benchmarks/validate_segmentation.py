"""Validate the FLAIR and DWI lesion segmentation (imaging.segment) against every target, in one run.

Prints one Markdown report with the figures and the command that reproduced them:

1. **Real MS patient** (``../shared/realdata/open_ms_patient07`` or ``$LEUKOTRACK_REALDATA``): FLAIR
   (1 mm, MNI, skull-stripped, bias-corrected) against the expert mask. Brain mask = FLAIR > 0 with
   holes filled; WM and GM priors = the nilearn MNI152 2009a maps, lesion prior = the packaged
   lesion frequency (27 other patients, patient07 left out), all resampled through the two affines
   (both grids are MNI coordinates). Validation only: nothing was fitted or tuned on this patient.
   Targets: Dice >= 0.60 (issue 13) and 0.65 (LST-AI on MSSEG-1).
2. **Sample case** (``sample_scans/indexcase``) with an ORACLE registration: the true brain masks and
   the WM map warped with the generator's true head pose, FLAIR corrected with the pipeline's N4
   (``imaging.bias.correct_bias``). Targets: median FLAIR Dice >= 0.85 and median DWI Dice >= 0.85
   (sessions with an empty DWI truth excluded, their prediction < 0.3 mL), no session with > 1 mL
   of lesion below Dice 0.7, volume error <= 10 %, false lesion < 0.3 mL (prediction more than 3 mm
   from the true lesion, where the WM prior > 0.5).
3. **Lesion-free control**: ``synthetic.make_case(seed=--control-seed, lesions=False)`` in a
   temporary folder (about 40 s), same oracle set-up. Target: FLAIR + DWI lesion < 0.5 mL in total.
4. Optionally (``--cohort``) the synthetic MS FLAIR cohort of ``benchmarks/flair_cohort.py`` (lesions
   shaped from the real expert masks, randomised contrast; about 30 s per case).
5. Optionally (``--pipeline``) the same sample case through the whole pipeline
   (``imaging.pipeline.process_case``: estimated brain masks, N4, registration to the template),
   scored by ``synthetic.evaluate.score_case``.

Run times are CPU seconds (MS patient, cohort) or wall-clock seconds (sample) of the
segmentation call alone (NAWM normalisation included; N4, loading and the prior warp excluded).

Usage: ``python benchmarks/validate_segmentation.py [--skip-control] [--control-seed N]
[--cohort] [--pipeline] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.bias import correct_bias  # noqa: E402
from imaging.case import Session, scan_case  # noqa: E402
from imaging.image import MRImage  # noqa: E402
from imaging.lesion_prior import lesion_prior_on, mni_map_on  # noqa: E402
from imaging.metrics import SegmentationMetrics, evaluate_segmentation  # noqa: E402
from imaging.segment import (  # noqa: E402
    DwiLesionParams,
    FlairLesionParams,
    segment_dwi_lesions,
    segment_flair_lesions,
)
from imaging.sequence import SequenceClass  # noqa: E402
from imaging.template import mni_template  # noqa: E402
from synthetic.evaluate import false_lesion_ml, oracle_wm_prior  # noqa: E402


# ---------------------------------------------------------------------------------- helpers
def realdata_root() -> Path:
    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


def load_nifti(path: Path) -> nib.Nifti1Image:
    image = nib.load(path)
    if not isinstance(image, nib.Nifti1Image):
        raise TypeError(f"{path} is not a NIfTI-1 image")
    return image


def load_series(session: Session, sequence: SequenceClass) -> MRImage:
    entry = session.pick(sequence)
    if entry is None:
        raise LookupError(f"{session.label} has no {sequence.value} series")
    return entry.load()


def load_mask(case_dir: Path, relative: str) -> MRImage:
    image = load_nifti(case_dir / relative)
    return MRImage(np.asarray(image.dataobj), image.affine)


def fmt(value: float | None, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


@dataclass
class SessionRow:
    session: str
    day: int
    flair: SegmentationMetrics
    dwi: SegmentationMetrics
    false_flair_ml: float
    false_dwi_ml: float
    flair_s: float
    dwi_s: float


def segment_case(case_dir: Path) -> list[SessionRow]:
    """Oracle-registration segmentation of every session of a generated case."""
    truth = json.loads((case_dir / "truth" / "truth.json").read_text())
    case = scan_case(case_dir)
    rows = []
    for session, expected in zip(case.sessions, truth["sessions"], strict=True):
        files = expected["truth_files"]
        flair = load_series(session, SequenceClass.FLAIR)
        dwi = load_series(session, SequenceClass.DWI)
        adc = load_series(session, SequenceClass.ADC)
        assert dwi.bvals_s_mm2 is not None
        b1000 = dwi.volume(list(dwi.bvals_s_mm2).index(1000.0))
        brain_flair = load_mask(case_dir, files["brain_mask_flair"])
        brain_dwi = load_mask(case_dir, files["brain_mask_dwi"])
        prior_flair = oracle_wm_prior(flair, np.array(expected["pose_flair"]))
        prior_dwi = oracle_wm_prior(b1000, np.array(expected["pose_dwi"]))
        corrected, _ = correct_bias(flair, brain_flair)
        start = time.perf_counter()
        flair_result = segment_flair_lesions(corrected, brain_flair, prior_flair)
        flair_s = time.perf_counter() - start
        start = time.perf_counter()
        dwi_result = segment_dwi_lesions(b1000, adc, brain_dwi, prior_dwi)
        dwi_s = time.perf_counter() - start
        flair_truth = load_mask(case_dir, files["flair_lesion"])
        dwi_truth = load_mask(case_dir, files["dwi_lesion"])
        rows.append(
            SessionRow(
                session=session.label,
                day=int(expected["day"]),
                flair=evaluate_segmentation(flair_truth, flair_result.lesion_mask),
                dwi=evaluate_segmentation(dwi_truth, dwi_result.lesion_mask),
                false_flair_ml=false_lesion_ml(flair_truth, flair_result.lesion_mask, prior_flair),
                false_dwi_ml=false_lesion_ml(dwi_truth, dwi_result.lesion_mask, prior_dwi),
                flair_s=flair_s,
                dwi_s=dwi_s,
            )
        )
    return rows


# ---------------------------------------------------------------------------------- sections
def save_overlay(flair: MRImage, expert: MRImage, predicted: MRImage, path: Path) -> None:
    """Six axial slices through the expert lesions: expert green, predicted red, both yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.asarray(flair.data, dtype=np.float32)
    truth = np.asarray(expert.data) > 0
    pred = np.asarray(predicted.data) > 0
    per_slice = (truth | pred).sum(axis=(0, 1))
    slices = np.argsort(per_slice)[::-1][:6]
    slices.sort()
    top = float(np.percentile(image[image > 0], 99.5))
    fig, axes = plt.subplots(1, len(slices), figsize=(3 * len(slices), 3.6))
    for ax, k in zip(np.atleast_1d(axes), slices, strict=True):
        rgb = np.repeat(np.clip(image[:, :, k] / top, 0, 1)[..., None], 3, axis=2)
        rgb[truth[:, :, k] & ~pred[:, :, k]] = (0.0, 0.9, 0.0)
        rgb[pred[:, :, k] & ~truth[:, :, k]] = (1.0, 0.1, 0.1)
        rgb[pred[:, :, k] & truth[:, :, k]] = (1.0, 0.9, 0.0)
        ax.imshow(np.flipud(rgb.transpose(1, 0, 2)))
        ax.set_title(f"z = {k}", fontsize=9)
        ax.axis("off")
    fig.suptitle("patient07 FLAIR: expert green, leukotrack red, both yellow", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)
    from PIL import Image  # a matplotlib dependency: 64 colours keep the committed PNG small

    with Image.open(path) as rendered:
        small = rendered.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


def ms_section(out: list[str], args_png: Path | None = None) -> None:
    folder = realdata_root() / "open_ms_patient07"
    out.append("## 1. Real MS patient (open_ms_data patient07, expert consensus mask)\n")
    if not (folder / "FLAIR.nii.gz").is_file():
        out.append(f"skipped: {folder} not found (set LEUKOTRACK_REALDATA)\n")
        return
    flair_nifti = load_nifti(folder / "FLAIR.nii.gz")
    flair = MRImage(flair_nifti.get_fdata(dtype=np.float32), flair_nifti.affine)
    mask_nifti = load_nifti(folder / "lesion_mask.nii.gz")
    expert = MRImage(np.asarray(mask_nifti.dataobj), mask_nifti.affine)
    brain = flair.with_data(ndimage.binary_fill_holes(flair.data > 0).astype(np.uint8))
    prior = oracle_wm_prior(flair, np.eye(4))
    lesion_prior = lesion_prior_on(flair)
    gm_prior = mni_map_on(mni_template().gm, flair)
    start = time.process_time()
    result = segment_flair_lesions(
        flair, brain, prior, lesion_prior=lesion_prior, gm_prior=gm_prior
    )
    seconds = time.process_time() - start
    m = evaluate_segmentation(expert, result.lesion_mask)
    out.append(
        "| Dice | HD95 mm | AVD % | lesion recall | lesion precision | lesion F1 | "
        "expert mL (lesions) | predicted mL (lesions) | CPU s |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    out.append(
        f"| {fmt(m.dice)} | {fmt(m.hd95_mm, 1)} | {fmt(m.avd_percent, 1)} | "
        f"{fmt(m.lesion_recall, 2)} | {fmt(m.lesion_precision, 2)} | {fmt(m.lesion_f1, 2)} | "
        f"{m.volume_ref_ml:.2f} ({m.n_ref_lesions}) | {m.volume_pred_ml:.2f} ({m.n_pred_lesions}) | "
        f"{seconds:.2f} |\n"
    )
    out.append(
        f"Target Dice >= 0.60: {verdict(m.dice >= 0.60)}; >= 0.65: {verdict(m.dice >= 0.65)}. "
        f"CPU < 20 s: {verdict(seconds < 20)}. (NAWM median {result.nawm_median:.1f}, SD "
        f"{result.nawm_sigma:.1f}; grey-matter level z {result.gm_ceiling_z:.2f}; seed contrast "
        f"c {result.seed_z_used:.2f} where the lesion prior is at its reference.)\n"
    )
    if args_png is not None:
        save_overlay(flair, expert, result.lesion_mask, args_png)
        out.append(f"Overlay (expert green, predicted red, both yellow): `{args_png}`\n")


def case_table(rows: list[SessionRow], out: list[str]) -> None:
    out.append(
        "| session | day | FLAIR Dice | HD95 mm | vol err % | lesion F1 | true mL | pred mL | "
        "false mL | DWI Dice | HD95 mm | vol err % | lesion F1 | true mL | pred mL | false mL | "
        "seconds |"
    )
    out.append("|" + "---|" * 17)
    for r in rows:
        f, d = r.flair, r.dwi
        out.append(
            f"| {r.session} | {r.day} | {fmt(f.dice)} | {fmt(f.hd95_mm, 1)} | "
            f"{fmt(f.avd_percent, 1)} | {fmt(f.lesion_f1, 2)} | {f.volume_ref_ml:.2f} | "
            f"{f.volume_pred_ml:.2f} | {r.false_flair_ml:.2f} | {fmt(d.dice)} | "
            f"{fmt(d.hd95_mm, 1)} | {fmt(d.avd_percent, 1)} | {fmt(d.lesion_f1, 2)} | "
            f"{d.volume_ref_ml:.2f} | {d.volume_pred_ml:.2f} | {r.false_dwi_ml:.2f} | "
            f"{fmt(r.flair_s + r.dwi_s, 2)} |"
        )
    out.append("")


def sample_section(out: list[str]) -> None:
    case_dir = REPO / "sample_scans" / "indexcase"
    out.append("## 2. Sample case, oracle registration (true brain masks, true-pose WM prior)\n")
    rows = segment_case(case_dir)
    case_table(rows, out)
    flair_dice = [r.flair.dice for r in rows]
    dwi_with = [r.dwi for r in rows if r.dwi.volume_ref_ml > 0]
    dwi_empty = [r.dwi for r in rows if r.dwi.volume_ref_ml == 0]
    big = [(r.session, m) for r in rows for m in (r.flair, r.dwi) if m.volume_ref_ml > 1.0]
    errors = [m.avd_percent for r in rows for m in (r.flair, r.dwi) if m.volume_ref_ml > 0]
    false_max = max(max(r.false_flair_ml, r.false_dwi_ml) for r in rows)
    seconds = max(r.flair_s + r.dwi_s for r in rows)
    checks = [
        (
            "median FLAIR Dice >= 0.85",
            f"{statistics.median(flair_dice):.3f}",
            statistics.median(flair_dice) >= 0.85,
        ),
        (
            "median DWI Dice >= 0.85 (non-empty truth)",
            f"{statistics.median(m.dice for m in dwi_with):.3f}",
            statistics.median(m.dice for m in dwi_with) >= 0.85,
        ),
        (
            "empty-truth DWI sessions predict < 0.3 mL",
            ", ".join(f"{m.volume_pred_ml:.3f} mL" for m in dwi_empty) or "none",
            all(m.volume_pred_ml < 0.3 for m in dwi_empty),
        ),
        (
            "no session with > 1 mL of lesion below Dice 0.7",
            f"lowest {min(m.dice for _, m in big):.3f}",
            all(m.dice >= 0.7 for _, m in big),
        ),
        ("volume error <= 10 %", f"largest {max(errors):.1f} %", max(errors) <= 10.0 + 1e-9),
        ("false lesion < 0.3 mL", f"largest {false_max:.3f} mL", false_max < 0.3),
        ("segmentation < 2 s per session", f"slowest {seconds:.2f} s", seconds < 2.0),
    ]
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    out.extend(f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in checks)
    out.append("")


def control_section(out: list[str], seed: int) -> None:
    from synthetic import make_case

    out.append(f"## 3. Lesion-free control (synthetic.make_case seed={seed}, lesions=False)\n")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = make_case(Path(tmp) / "control", seed=seed, lesions=False)
        made_s = time.perf_counter() - start
        rows = segment_case(folder)
    out.append("| session | FLAIR mL | DWI mL |")
    out.append("|---|---|---|")
    out.extend(
        f"| {r.session} | {r.flair.volume_pred_ml:.3f} | {r.dwi.volume_pred_ml:.3f} |" for r in rows
    )
    total = sum(r.flair.volume_pred_ml + r.dwi.volume_pred_ml for r in rows)
    out.append(
        f"\nTotal {total:.3f} mL; target < 0.5 mL: {verdict(total < 0.5)} "
        f"(case generated in {made_s:.0f} s).\n"
    )


def pipeline_section(out: list[str]) -> None:
    out.append("## 5. Sample case through the whole pipeline (estimated masks, registration, N4)\n")
    try:
        from imaging.pipeline import process_case
        from synthetic.evaluate import score_case
    except ImportError as error:  # the pipeline is developed in parallel
        out.append(f"skipped: {error}\n")
        return
    case_dir = REPO / "sample_scans" / "indexcase"
    start = time.perf_counter()
    processed = process_case(scan_case(case_dir))
    seconds = time.perf_counter() - start
    scores = score_case(case_dir, processed)
    rows = [
        SessionRow(
            s.session_id,
            s.day,
            s.flair,
            s.dwi,
            s.false_flair_ml,
            s.false_dwi_ml,
            math.nan,
            math.nan,
        )
        for s in scores
        if s.flair is not None and s.dwi is not None
    ]
    case_table(rows, out)
    out.append(f"(whole pipeline: {seconds:.0f} s for {len(rows)} sessions)\n")


def cohort_section(out: list[str]) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import flair_cohort

    out.append(
        "## 4. Synthetic MS FLAIR cohort (lesions from real expert masks, random contrast)\n"
    )
    folder = flair_cohort.realdata_root() / "open_ms_masks_mni"
    if not folder.is_dir():
        out.append(f"skipped: {folder} not found\n")
        return
    masks, affine = flair_cohort.load_masks(folder)
    rows = []
    for i, name in enumerate([*flair_cohort.COHORT, "control"]):
        others = [m for k, m in masks.items() if k != name]
        rows.append(flair_cohort.run_case(name, masks.get(name), others, affine, 100 + i))
    out.append(flair_cohort.report(rows, ["--seed", "100"]) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-control", action="store_true", help="skip the 40 s control case")
    parser.add_argument("--control-seed", type=int, default=424242)
    parser.add_argument("--pipeline", action="store_true", help="also run the whole pipeline")
    parser.add_argument("--cohort", action="store_true", help="also run the synthetic MS cohort")
    parser.add_argument("--png", type=Path, help="write patient07's overlay PNG here")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    command = "python benchmarks/validate_segmentation.py " + " ".join(argv or sys.argv[1:])
    out = [
        "# Lesion segmentation: validation",
        "",
        f"Reproduce: `{command.strip()}` (from the repository root, with `.venv` active).",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python "
        f"{platform.python_version()}.",
        "",
        f"FLAIR parameters: `{FlairLesionParams().to_dict()}`",
        "",
        f"DWI parameters: `{DwiLesionParams().to_dict()}`",
        "",
    ]
    ms_section(out, args.png)
    sample_section(out)
    if not args.skip_control:
        control_section(out, args.control_seed)
    if args.cohort:
        cohort_section(out)
    if args.pipeline:
        pipeline_section(out)
    report = "\n".join(out)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
