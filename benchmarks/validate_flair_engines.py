"""Validate FLAIR lesion engines side by side, through the engine seam, on real and synthetic data.

Every engine gets the same :class:`imaging.engines.base.FlairInputs` and is scored the same way:

1. **Real MS patient** ``open_ms_patient07`` (validation only: nothing was fitted or tuned on it):
   FLAIR (1 mm MNI, skull-stripped, N4) against the consensus expert mask; brain = FLAIR > 0 (holes
   filled), WM / GM priors = the MNI152 2009a maps (both grids are MNI), lesion prior = the packaged
   frequency map (27 other patients). The T1 is handed over too (for engines that read it).
2. **Synthetic cohort**: ``synthetic.ms_flair.make_ms_flair`` around the 12 expert masks of
   ``benchmarks/flair_cohort.COHORT`` (shapes the ``voxel-classifier`` never trained on), seeds
   100 + i as in that benchmark; priors through the case's true affine pose; lesion prior rebuilt
   without the case's own mask (leave-one-out). Plus the lesion-free control (seed 100 + 12).
   With ``--decoys`` every case also gets 0-4 pairs of symmetric FLAIR-bright decoys and 0-10 %
   more noise (``synthetic.ms_flair.with_symmetric_decoys``, ``with_extra_noise``): normal bright
   white matter as real FLAIRs have it, which the plain generator lacks.
3. Optionally (``--raw``) the native clinical FLAIRs with skull of ``open_ms_raw_flair`` through the
   pipeline's front end (N4, brain estimate, template fit): brain and lesion volumes (no masks).

CPU seconds are those of ``engine.segment`` alone, its subprocesses included (SAMSEG).

Usage: ``python benchmarks/validate_flair_engines.py [--engine NAME ...] [--cases N] [--decoys]
[--graded-rim-mm MM] [--raw] [--skip-real] [--skip-synthetic] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flair_cohort import COHORT, load_masks, realdata_root  # noqa: E402

from imaging.engines.base import FlairInputs  # noqa: E402
from imaging.engines.registry import flair_engine  # noqa: E402
from imaging.image import MRImage  # noqa: E402
from imaging.lesion_prior import build_lesion_frequency, lesion_prior_on, mni_map_on  # noqa: E402
from imaging.metrics import SegmentationMetrics, evaluate_segmentation  # noqa: E402
from imaging.template import mni_template  # noqa: E402
from synthetic.fields import rng_for  # noqa: E402
from synthetic.ms_flair import make_ms_flair, with_extra_noise, with_symmetric_decoys  # noqa: E402

DEFAULT_ENGINES = ("local-contrast", "tissue-mixture", "voxel-classifier")


def load_nifti(path: Path) -> MRImage:
    image = nib.load(path)
    if not isinstance(image, nib.Nifti1Image):
        raise TypeError(f"{path} is not a NIfTI-1 image")
    return MRImage(image.get_fdata(dtype=np.float32), image.affine)


def inputs_for(
    flair: MRImage,
    brain: MRImage,
    to_mni: np.ndarray | None,
    prior: MRImage,
    t1: MRImage | None = None,
) -> FlairInputs:
    template = mni_template()
    return FlairInputs(
        flair=flair,
        brain_mask=brain,
        wm_prior=mni_map_on(template.wm, flair, to_mni),
        gm_prior=mni_map_on(template.gm, flair, to_mni),
        lesion_prior=prior,
        t1=t1,
        to_mni=to_mni,
    )


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (an engine run as a subprocess,
    such as SAMSEG, spends its time there)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def segment(name: str, inputs: FlairInputs) -> tuple[MRImage, float]:
    engine = flair_engine(name)
    start = _cpu_s()
    result = engine.segment(inputs)
    return result.lesion_mask, _cpu_s() - start


def row(name: str, m: SegmentationMetrics, cpu: float) -> str:
    error = (
        "n/a"
        if m.volume_ref_ml == 0
        else f"{100 * (m.volume_pred_ml - m.volume_ref_ml) / m.volume_ref_ml:+.1f}"
    )
    return (
        f"| {name} | {m.dice:.3f} | {m.lesion_recall:.2f} | {m.lesion_precision:.2f} | "
        f"{m.volume_ref_ml:.2f} | {m.volume_pred_ml:.2f} | {error} | {cpu:.1f} |"
    )


HEADER = [
    "| engine | Dice | lesion recall | lesion precision | true mL | predicted mL | vol err % | CPU s |",
    "|---|---|---|---|---|---|---|---|",
]


def real_section(out: list[str], engines: list[str]) -> None:
    folder = realdata_root() / "open_ms_patient07"
    out.append("## 1. Real MS patient (open_ms_data patient07, expert mask; validation only)\n")
    if not (folder / "FLAIR.nii.gz").is_file():
        out.append(f"skipped: {folder} not found (set LEUKOTRACK_REALDATA)\n")
        return
    flair = load_nifti(folder / "FLAIR.nii.gz")
    expert = load_nifti(folder / "lesion_mask.nii.gz")
    t1 = load_nifti(folder / "T1.nii.gz") if (folder / "T1.nii.gz").is_file() else None
    brain = flair.with_data(ndimage.binary_fill_holes(flair.data > 0).astype(np.uint8))
    inputs = inputs_for(flair, brain, None, lesion_prior_on(flair), t1)
    out += HEADER
    for name in engines:
        mask, cpu = segment(name, inputs)
        out.append(row(name, evaluate_segmentation(expert.with_data(expert.data > 0), mask), cpu))
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")


def synthetic_section(
    out: list[str], engines: list[str], n_cases: int, decoys: bool, graded_rim_mm: float = 0.0
) -> None:
    title = "## 2. Synthetic MS FLAIR cohort (held-out real lesion shapes, leave-one-out prior)"
    if graded_rim_mm > 0:
        title += f", graded lesions (contrast half at the edge, full {graded_rim_mm:g} mm deep)"
    out.append(title + (", with symmetric decoys and extra noise\n" if decoys else "\n"))
    folder = realdata_root() / "open_ms_masks_mni"
    if not folder.is_dir():
        out.append("skipped: open_ms_masks_mni not found\n")
        return
    masks, affine = load_masks(folder)
    names: list[str | None] = [*COHORT[:n_cases], None]
    scores: dict[str, list[tuple[SegmentationMetrics, float]]] = {e: [] for e in engines}
    out.append(
        "| case | slice mm | GM/WM | lesion/tissue | true mL | "
        + " | ".join(f"{e} Dice | {e} mL" for e in engines)
        + " |"
    )
    out.append("|---" * (5 + 2 * len(engines)) + "|")
    for i, name in enumerate(names):
        mask = None if name is None else masks[name]
        case = make_ms_flair(mask, affine, seed=100 + i, graded_rim_mm=graded_rim_mm)
        flair = case.flair
        if decoys:
            rng = rng_for(100 + i, "decoy_cohort")
            flair = with_symmetric_decoys(flair, case.brain, case.to_mni, rng)
            flair = with_extra_noise(flair, case.brain, case.contrast, rng)
        others = [m for k, m in masks.items() if k != name]
        prior = mni_map_on(build_lesion_frequency(others, affine), flair, case.to_mni)
        inputs = inputs_for(flair, case.brain, case.to_mni, prior)
        cells = []
        for engine in engines:
            predicted, cpu = segment(engine, inputs)
            m = evaluate_segmentation(case.truth, predicted)
            scores[engine].append((m, cpu))
            cells.append(f"{m.dice:.3f} | {m.volume_pred_ml:.2f}")
        c = case.contrast
        true_ml = scores[engines[0]][-1][0].volume_ref_ml
        out.append(
            f"| {name or 'control'} | {c['slice_mm']:g} | {c['gm_over_wm']:.2f} | "
            f"{c['lesion_over_tissue']:.2f} | {true_ml:.2f} | " + " | ".join(cells) + " |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")
    out.append(
        "| engine | median Dice | min Dice | median vol err % | median abs vol err % | "
        "control mL | max CPU s |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for engine, rows in scores.items():
        lesional = [(m, c) for m, c in rows if m.volume_ref_ml > 0]
        control = [m.volume_pred_ml for m, _ in rows if m.volume_ref_ml == 0]
        errors = [100 * (m.volume_pred_ml - m.volume_ref_ml) / m.volume_ref_ml for m, _ in lesional]
        out.append(
            f"| {engine} | {statistics.median(m.dice for m, _ in lesional):.3f} | "
            f"{min(m.dice for m, _ in lesional):.3f} | {statistics.median(errors):+.1f} | "
            f"{statistics.median(abs(e) for e in errors):.1f} | "
            f"{', '.join(f'{v:.2f}' for v in control)} | {max(c for _, c in rows):.1f} |"
        )
    out.append("")


def raw_section(out: list[str], engines: list[str]) -> None:
    from imaging.bias import correct_bias
    from imaging.brain import estimate_brain, head_mask
    from imaging.template import fit_template

    out.append("## 3. Native clinical FLAIRs with skull (open_ms_raw_flair; no masks)\n")
    paths = sorted((realdata_root() / "open_ms_raw_flair").glob("*_FLAIR.nii.gz"))
    if not paths:
        out.append("skipped: open_ms_raw_flair not found\n")
        return
    out.append("| FLAIR | brain mL | " + " | ".join(f"{e} mL (CPU s)" for e in engines) + " |")
    out.append("|---" * (2 + len(engines)) + "|")
    for path in paths:
        nifti = nib.load(path)
        assert isinstance(nifti, nib.Nifti1Image)
        flair = MRImage.from_nifti(nifti)
        flair = flair.with_data(np.asarray(flair.data, dtype=np.float32))
        corrected, _ = correct_bias(flair, head_mask(flair))
        fit = fit_template(corrected, estimate_brain(corrected))
        brain = fit.prior(corrected, "brain")
        inputs = FlairInputs(
            flair=corrected,
            brain_mask=brain,
            wm_prior=fit.prior(corrected, "wm"),
            gm_prior=fit.prior(corrected, "gm"),
            lesion_prior=lesion_prior_on(corrected, fit.registration.matrix),
            to_mni=fit.registration.matrix,
        )
        brain_ml = float(np.count_nonzero(brain.data)) * corrected.voxel_volume_mm3 / 1000
        cells = []
        for engine in engines:
            mask, cpu = segment(engine, inputs)
            ml = float(np.count_nonzero(mask.data)) * corrected.voxel_volume_mm3 / 1000
            cells.append(f"{ml:.2f} ({cpu:.1f})")
        out.append(
            f"| {path.name.replace('_FLAIR.nii.gz', '')} | {brain_ml:.0f} | "
            + " | ".join(cells)
            + " |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", help="engine name (repeatable)")
    parser.add_argument("--cases", type=int, default=len(COHORT))
    parser.add_argument("--raw", action="store_true", help="also the native FLAIRs with skull")
    parser.add_argument("--decoys", action="store_true", help="symmetric bright decoys, more noise")
    parser.add_argument(
        "--graded-rim-mm",
        type=float,
        default=0.0,
        help="graded lesions (contrast half at the edge)",
    )
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    engines = args.engine or list(DEFAULT_ENGINES)
    out = ["# FLAIR lesion engines: validation\n"]
    if not args.skip_real:
        real_section(out, engines)
    if not args.skip_synthetic:
        synthetic_section(out, engines, args.cases, args.decoys, args.graded_rim_mm)
    if args.raw:
        raw_section(out, engines)
    command = "python benchmarks/validate_flair_engines.py " + " ".join(argv or sys.argv[1:])
    out.append(f"Command: `{command.strip()}`\n")
    text = "\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
