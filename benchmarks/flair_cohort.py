"""Synthetic MS FLAIR cohort: lesions shaped from real expert masks, randomised contrast (FLAIR method).

Builds ``--cases`` FLAIRs with :func:`synthetic.ms_flair.make_ms_flair` around the expert lesion
masks of ``open_ms_masks_mni`` (never patient07, the validation case) plus one lesion-free control,
segments each with :func:`imaging.segment.segment_flair_lesions` (brain mask = the generator's brain;
WM and GM priors = the MNI maps through the case's affine ``to_mni``, as a perfect affine template
fit would give them; lesion prior = the frequency of the OTHER masks, leave-one-out, so that no case
is scored with its own lesions in the prior), and scores Dice, volume error (truth: lesion fraction
>= 0.5) and lesion recall / precision. Nothing is written to the repository; about 30 s per case.

Usage: ``python benchmarks/flair_cohort.py [--cases N] [--seed S] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.lesion_prior import build_lesion_frequency, mni_map_on  # noqa: E402
from imaging.metrics import SegmentationMetrics, evaluate_segmentation  # noqa: E402
from imaging.segment import segment_flair_lesions  # noqa: E402
from imaging.template import mni_template  # noqa: E402
from synthetic.evaluate import oracle_wm_prior  # noqa: E402
from synthetic.ms_flair import make_ms_flair  # noqa: E402

#: Lesion masks of these patients, in this order, shape the cohort (small to large loads, varied).
COHORT = (
    "patient02",
    "patient03",
    "patient08",
    "patient10",
    "patient11",
    "patient17",
    "patient20",
    "patient22",
    "patient27",
    "patient28",
    "patient04",
    "patient18",
)
VALIDATION = "patient07"


@dataclass
class CohortRow:
    name: str
    slice_mm: float
    contrast: dict[str, object]
    metrics: SegmentationMetrics
    cpu_s: float

    @property
    def volume_error_percent(self) -> float:
        m = self.metrics
        return 100.0 * (m.volume_pred_ml - m.volume_ref_ml) / m.volume_ref_ml


def realdata_root() -> Path:
    import os

    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


def load_masks(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    affine = np.eye(4)
    for path in sorted(folder.glob("patient*_lesions_mni.nii.gz")):
        match = re.match(r"(patient\d+)_", path.name)
        if match is None or match.group(1) == VALIDATION:
            continue
        image = nib.load(path)
        assert isinstance(image, nib.Nifti1Image)
        masks[match.group(1)] = np.asarray(image.dataobj) > 0
        affine = np.asarray(image.affine)
    return masks, affine


def run_case(
    name: str, mask: np.ndarray | None, others: list[np.ndarray], affine: np.ndarray, seed: int
) -> CohortRow:
    case = make_ms_flair(mask, affine, seed=seed)
    to_mni = case.to_mni
    wm = oracle_wm_prior(case.flair, np.asarray(np.linalg.inv(to_mni), dtype=np.float64))
    gm = mni_map_on(mni_template().gm, case.flair, to_mni)
    prior = mni_map_on(build_lesion_frequency(others, affine), case.flair, to_mni)
    start = time.process_time()
    result = segment_flair_lesions(case.flair, case.brain, wm, lesion_prior=prior, gm_prior=gm)
    cpu_s = time.process_time() - start
    metrics = evaluate_segmentation(case.truth, result.lesion_mask)
    return CohortRow(name, float(case.contrast["slice_mm"]), case.contrast, metrics, cpu_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=len(COHORT))
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    folder = realdata_root() / "open_ms_masks_mni"
    if not folder.is_dir():
        print(f"skipped: {folder} not found (set LEUKOTRACK_REALDATA)")
        return 0
    masks, affine = load_masks(folder)
    rows = []
    names = [*COHORT[: args.cases], "control"]
    for i, name in enumerate(names):
        others = [m for k, m in masks.items() if k != name]
        rows.append(run_case(name, masks.get(name), others, affine, args.seed + i))
        print(f"{name}: done", file=sys.stderr, flush=True)
    out = report(rows, argv)
    print(out)
    if args.out:
        args.out.write_text(out + "\n")
    return 0


def report(rows: list[CohortRow], argv: list[str] | None) -> str:
    command = "python benchmarks/flair_cohort.py " + " ".join(argv or sys.argv[1:])
    lines = [
        f"Reproduce: `{command.strip()}`",
        "",
        "| lesions from | slices mm | GM/WM | lesion/tissue | texture SD | noise SD | coarse | "
        "Dice | true mL | pred mL | vol err % | lesion recall | lesion precision | CPU s |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        c, m = r.contrast, r.metrics
        err = "n/a" if m.volume_ref_ml == 0 else f"{r.volume_error_percent:+.1f}"
        lines.append(
            f"| {r.name} | {r.slice_mm:g} | {c['gm_over_wm']:.2f} | {c['lesion_over_tissue']:.2f} | "
            f"{c['texture_sd']:.3f} | {c['noise_sd']:.3f} | {'yes' if c['coarse'] else 'no'} | "
            f"{m.dice:.3f} | {m.volume_ref_ml:.2f} | {m.volume_pred_ml:.2f} | {err} | "
            f"{m.lesion_recall:.2f} | {m.lesion_precision:.2f} | {r.cpu_s:.1f} |"
        )
    lesional = [r for r in rows if r.metrics.volume_ref_ml > 0]
    control = [r for r in rows if r.metrics.volume_ref_ml == 0]
    dice = statistics.median(r.metrics.dice for r in lesional)
    abs_err = statistics.median(abs(r.volume_error_percent) for r in lesional)
    signed = statistics.median(r.volume_error_percent for r in lesional)
    lines += [
        "",
        f"Median Dice {dice:.3f} (target >= 0.85); median |volume error| {abs_err:.1f} % "
        f"(target <= 10 %), median signed {signed:+.1f} %; lesion-free control "
        f"{', '.join(f'{r.metrics.volume_pred_ml:.3f} mL' for r in control)} (target < 0.5 mL); "
        f"slowest {max(r.cpu_s for r in rows):.1f} s CPU.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
