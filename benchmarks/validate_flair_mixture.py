"""Validate the Gaussian-mixture FLAIR lesion method (imaging.lesion_mixture) on real and synthetic data.

Prints one Markdown report:

1. **Real MS patient** (``../shared/realdata/open_ms_patient07`` or ``$LEUKOTRACK_REALDATA``), for
   validation only (no parameter is tuned on it): FLAIR (1 mm MNI, skull-stripped, N4) against the
   expert mask. Brain = FLAIR > 0 (holes filled); WM and GM priors = the nilearn MNI152 2009a maps
   (``imaging.template.mni_template``, 2 mm) resampled onto its grid (both grids are MNI); lesion
   prior = the packaged lesion-frequency map (patient07 left out). Dice, lesion recall, precision and
   F1 (MICCAI definitions, ``imaging.metrics.evaluate_segmentation``), volumes, CPU seconds.
2. **Synthetic cohort** (``synthetic.ms_flair.make_ms_flair``): one case per expert mask of
   ``open_ms_masks_mni`` (patient07 excluded), seed = patient number, randomised contrast,
   resolution (1 mm 3D or 3-4 mm 2D), texture, bias, noise and quantisation. Priors through the
   case's true affine pose; the lesion prior is rebuilt per case WITHOUT that case's own mask
   (leave-one-out, ``imaging.lesion_prior.build_lesion_frequency``) so that the prior never holds
   the lesions being scored. No N4 (the method corrects the residual non-uniformity itself).
   Median Dice, median volume error, CPU seconds.
3. **Lesion-free control**: ``make_ms_flair(None, ...)`` with the same set-up (packaged prior);
   target < 0.5 mL.
4. Optionally (``--raw``) the native clinical FLAIRs with skull of ``open_ms_raw_flair`` (no expert
   masks: robustness only) through the pipeline's front end: N4 (``imaging.bias.correct_bias`` in
   the head mask), brain estimate, affine template fit, brain / WM / GM / lesion priors warped by
   the fit; brain and lesion volumes.

CPU seconds are ``time.process_time()`` of the segmentation call alone (priors resampled before).

Usage: ``python benchmarks/validate_flair_mixture.py [--cases N] [--control-seed S] [--skip-real]
[--skip-synthetic] [--raw] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flair_cohort import load_masks as _load_masks  # noqa: E402
from flair_cohort import realdata_root  # noqa: E402  (the sibling benchmark)
from validate_flair_engines import load_nifti  # noqa: E402

from imaging.image import MRImage  # noqa: E402
from imaging.lesion_mixture import MixtureLesionResult, segment_flair_mixture  # noqa: E402
from imaging.lesion_prior import (  # noqa: E402
    build_lesion_frequency,
    lesion_prior_on,
    mni_map_on,
)
from imaging.metrics import evaluate_segmentation  # noqa: E402
from imaging.template import mni_template  # noqa: E402
from synthetic.ms_flair import make_ms_flair  # noqa: E402


def run(
    flair: MRImage,
    brain: MRImage,
    to_mni: np.ndarray | None,
    lesion_prior: MRImage,
) -> tuple[MixtureLesionResult, float]:
    template = mni_template()
    wm = mni_map_on(template.wm, flair, to_mni)
    gm = mni_map_on(template.gm, flair, to_mni)
    start = time.process_time()
    result = segment_flair_mixture(flair, brain, wm, gm, lesion_prior)
    return result, time.process_time() - start


def real_section(out: list[str]) -> None:
    folder = realdata_root() / "open_ms_patient07"
    out.append("## 1. Real MS patient (open_ms_data patient07, expert mask; validation only)\n")
    if not (folder / "FLAIR.nii.gz").is_file():
        out.append(f"skipped: {folder} not found (set LEUKOTRACK_REALDATA)\n")
        return
    flair = load_nifti(folder / "FLAIR.nii.gz")
    expert = load_nifti(folder / "lesion_mask.nii.gz")
    brain = flair.with_data(ndimage.binary_fill_holes(flair.data > 0).astype(np.uint8))
    result, cpu = run(flair, brain, None, lesion_prior_on(flair))
    m = evaluate_segmentation(expert.with_data(expert.data > 0), result.lesion_mask)
    out.append(
        "| Dice | lesion recall | lesion precision | lesion F1 | HD95 mm | expert mL (lesions) | "
        "predicted mL (lesions) | CPU s |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    out.append(
        f"| {m.dice:.3f} | {m.lesion_recall:.2f} | {m.lesion_precision:.2f} | {m.lesion_f1:.2f} | "
        f"{m.hd95_mm:.1f} | {m.volume_ref_ml:.2f} ({m.n_ref_lesions}) | "
        f"{m.volume_pred_ml:.2f} ({m.n_pred_lesions}) | {cpu:.1f} |\n"
    )
    out.append(
        f"Fitted means (x brain median): {fmt_dict(result.means)}; SDs {fmt_dict(result.sds)}\n"
    )


def fmt_dict(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def load_masks() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 27 real expert masks (patient07 left out), as the cohort benchmark reads them."""
    return _load_masks(realdata_root() / "open_ms_masks_mni")


def synthetic_section(out: list[str], n_cases: int, control_seed: int) -> None:
    out.append("## 2. Synthetic MS FLAIR cohort (real lesion shapes, leave-one-out lesion prior)\n")
    if not (realdata_root() / "open_ms_masks_mni").is_dir():
        out.append("skipped: open_ms_masks_mni not found\n")
        return
    masks, affine = load_masks()
    names = [n for n in sorted(masks) if masks[n].any()][:n_cases]
    out.append(
        "| case | slice mm | coarse | GM/WM | lesion/tissue | true mL | pred mL | vol err % | Dice | "
        "lesion recall | lesion F1 | CPU s |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    dices, errors, cpus = [], [], []
    for name in names:
        case = make_ms_flair(masks[name], affine, seed=int(name[7:]))
        others = [m for other, m in masks.items() if other != name]
        prior_mni = build_lesion_frequency(others, affine)
        prior = mni_map_on(prior_mni, case.flair, case.to_mni)
        result, cpu = run(case.flair, case.brain, case.to_mni, prior)
        m = evaluate_segmentation(case.truth, result.lesion_mask)
        error = 100.0 * (m.volume_pred_ml - m.volume_ref_ml) / max(m.volume_ref_ml, 1e-9)
        dices.append(m.dice)
        errors.append(error)
        cpus.append(cpu)
        c = case.contrast
        out.append(
            f"| {name} | {c['slice_mm']:g} | {'yes' if c['coarse'] else 'no'} | "
            f"{c['gm_over_wm']:.2f} | {c['lesion_over_tissue']:.2f} | {m.volume_ref_ml:.2f} | "
            f"{m.volume_pred_ml:.2f} | {error:+.1f} | {m.dice:.3f} | {m.lesion_recall:.2f} | "
            f"{m.lesion_f1:.2f} | {cpu:.1f} |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")
    if dices:
        out.append(
            f"Median Dice {statistics.median(dices):.3f} (min {min(dices):.3f}); median volume "
            f"error {statistics.median(errors):+.1f} % (median |error| "
            f"{statistics.median(abs(e) for e in errors):.1f} %); median CPU "
            f"{statistics.median(cpus):.1f} s (max {max(cpus):.1f} s) over {len(dices)} cases.\n"
        )
    out.append("## 3. Lesion-free control\n")
    control = make_ms_flair(None, affine, seed=control_seed)
    prior = lesion_prior_on(control.flair, control.to_mni)
    result, cpu = run(control.flair, control.brain, control.to_mni, prior)
    out.append(
        f"Control seed {control_seed} (slice {control.contrast['slice_mm']:g} mm, GM/WM "
        f"{control.contrast['gm_over_wm']:.2f}): {result.volume_ml:.3f} mL in "
        f"{result.n_lesions} lesions (target < 0.5 mL), CPU {cpu:.1f} s.\n"
    )


def raw_section(out: list[str]) -> None:
    from imaging.bias import correct_bias
    from imaging.brain import estimate_brain, head_mask
    from imaging.template import fit_template

    out.append("## 4. Native clinical FLAIRs with skull (open_ms_raw_flair; robustness only)\n")
    folder = realdata_root() / "open_ms_raw_flair"
    paths = sorted(folder.glob("*_FLAIR.nii.gz"))
    if not paths:
        out.append(f"skipped: no FLAIR in {folder}\n")
        return
    out.append("| FLAIR | grid | brain mL | lesion mL (lesions) | CPU s (segmentation) | outcome |")
    out.append("|---|---|---|---|---|---|")
    for path in paths:
        name = path.name.replace("_FLAIR.nii.gz", "")
        try:
            nifti = nib.load(path)
            assert isinstance(nifti, nib.Nifti1Image)
            flair = MRImage.from_nifti(nifti)
            flair = flair.with_data(np.asarray(flair.data, dtype=np.float32))
            corrected, _ = correct_bias(flair, head_mask(flair))
            fit = fit_template(corrected, estimate_brain(corrected))
            brain = fit.prior(corrected, "brain")
            wm, gm = fit.prior(corrected, "wm"), fit.prior(corrected, "gm")
            prior = lesion_prior_on(corrected, fit.registration.matrix)
            start = time.process_time()
            result = segment_flair_mixture(corrected, brain, wm, gm, prior)
            cpu = time.process_time() - start
            brain_ml = float(np.count_nonzero(brain.data)) * corrected.voxel_volume_mm3 / 1000
            spacing = "x".join(f"{s:.2f}" for s in corrected.spacing_mm)
            out.append(
                f"| {name} | {spacing} mm | {brain_ml:.0f} | {result.volume_ml:.2f} "
                f"({result.n_lesions}) | {cpu:.1f} | ok |"
            )
        except Exception as error:  # robustness run: report the failure, go on
            out.append(f"| {name} | | | | | {type(error).__name__}: {error} |")
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=27, help="synthetic cases (at most 27)")
    parser.add_argument("--control-seed", type=int, default=1000)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--raw", action="store_true", help="also the native FLAIRs with skull")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = ["# Gaussian-mixture FLAIR lesion method: validation\n"]
    if not args.skip_real:
        real_section(out)
    if not args.skip_synthetic:
        synthetic_section(out, args.cases, args.control_seed)
    if args.raw:
        raw_section(out)
    command = "python benchmarks/validate_flair_mixture.py " + " ".join(argv or sys.argv[1:])
    out.append(f"Command: `{command.strip()}`\n")
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
