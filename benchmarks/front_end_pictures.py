"""Pictures of the FLAIR front end on real FLAIRs, for looking at (issue 13): the brain mask (red) and
the warped white-matter prior at 0.5 (yellow) over three axial slices and one coronal slice of each
FLAIR; and, for the skull-stripped MNI-grid patient07, the template at identity beside the fitted one.

Usage: ``python benchmarks/front_end_pictures.py [--realdata ../shared/realdata]
[--out docs/validation]`` (writes small PNGs; the scans themselves stay outside the repository).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_front_end import one_session_case  # noqa: E402  (the sibling benchmark)

from imaging.case import scan_case  # noqa: E402
from imaging.image import MRImage  # noqa: E402
from imaging.pipeline import process_case  # noqa: E402
from imaging.register import resample  # noqa: E402
from imaging.template import mni_template  # noqa: E402


def _show(
    axis: Any, image: MRImage, masks: list[tuple[np.ndarray, str]], view: str, k: int
) -> None:
    data = np.asarray(image.data, dtype=np.float32)
    sx, sy, sz = image.spacing_mm
    if view == "axial":
        plane, aspect = data[:, :, k].T, sy / sx
        cut = [m[:, :, k].T for m, _ in masks]
    else:
        plane, aspect = data[:, k, :].T, sz / sx
        cut = [m[:, k, :].T for m, _ in masks]
    high = np.percentile(data[data > 0], 99.5) if (data > 0).any() else 1.0
    axis.imshow(plane[:, ::-1], origin="lower", cmap="gray", vmin=0, vmax=high, aspect=aspect)
    for (_, colour), part in zip(masks, cut, strict=True):
        if part.any() and not part.all():
            axis.contour(part[:, ::-1].astype(float), [0.5], colors=colour, linewidths=0.8)
    axis.set_axis_off()


def picture(flair: Path, title: str, target: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        processed = process_case(scan_case(one_session_case(Path(tmp) / "case", flair)))
    session = processed.sessions[0]
    assert session.flair is not None and session.flair_brain is not None
    assert session.flair_wm_prior is not None
    image = session.flair.reoriented("RAS")
    brain = session.flair_brain.reoriented("RAS")
    wm = session.flair_wm_prior.reoriented("RAS")
    masks = [(np.asarray(brain.data) > 0, "red"), (np.asarray(wm.data) >= 0.5, "yellow")]
    quality = processed.template.quality
    assert quality is not None
    nz = image.spatial_shape[2]
    figure, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    for axis, fraction in zip(axes[:3], (0.35, 0.55, 0.72), strict=True):
        _show(axis, image, masks, "axial", int(nz * fraction))
    _show(axes[3], image, masks, "coronal", int(image.spatial_shape[1] * 0.55))
    brain_ml = np.count_nonzero(brain.data) * image.voxel_volume_mm3 / 1000
    summary = (
        f"{title}: brain {brain_ml:.0f} mL; template fit "
        f"{'ok' if quality.ok else 'FLAGGED'} (Dice {quality.brain_dice:.2f}, scales "
        + ", ".join(f"{s:.2f}" for s in quality.scales)
        + f", start: {quality.initialisation})"
        + ("; skull-stripped input" if processed.template.stripped else "")
    )
    figure.suptitle(summary + "\nred: brain mask; yellow: white-matter prior 0.5", fontsize=9)
    figure.tight_layout()
    figure.savefig(target, dpi=55)
    plt.close(figure)
    return summary


def identity_versus_fit(flair: Path, target: Path) -> None:
    """patient07 (already on the MNI grid): the template brain (red) and white-matter prior
    (yellow) at identity and through the fitted transform."""
    import nibabel as nib

    from imaging.brain import estimate_brain_checked
    from imaging.template import fit_template

    nifti = nib.load(flair)
    assert isinstance(nifti, nib.Nifti1Image)
    image = MRImage(np.asarray(nifti.dataobj, dtype=np.float32), nifti.affine).reoriented("RAS")
    brain, check = estimate_brain_checked(image)
    fit = fit_template(image, brain, stripped=check.stripped)
    template = mni_template()
    figure, axes = plt.subplots(2, 3, figsize=(9, 6.6))
    for row, (label, matrix) in enumerate(
        (("identity", np.eye(4)), ("fitted", fit.registration.matrix))
    ):
        masks = [
            (np.asarray(resample(template.brain, image, matrix).data) >= 0.5, "red"),
            (np.asarray(resample(template.wm, image, matrix).data) >= 0.5, "yellow"),
        ]
        for axis, k in zip(axes[row], (70, 90, 110), strict=True):
            _show(axis, image, masks, "axial", k)
            axis.set_title(f"{label}, z = {k}", fontsize=8)
    scales = ", ".join(f"{s:.2f}" for s in np.linalg.svd(fit.registration.matrix[:3, :3])[1])
    figure.suptitle(
        "patient07 (skull-stripped, 1 mm MNI grid): the template at identity overshoots this brain "
        f"by ~1 cm;\nthe fit (scales {scales}, no rotation) follows its outline and white matter",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(target, dpi=55)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "validation")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.realdata / "open_ms_raw_flair"
    for name in ("patient04_study1", "patient09_study2", "patient20_study2"):
        flair = raw / f"{name}_FLAIR.nii.gz"
        if flair.is_file():
            print(picture(flair, name, args.out / f"front_end_{name}.png"))
    p07 = args.realdata / "open_ms_patient07" / "FLAIR.nii.gz"
    if p07.is_file():
        print(picture(p07, "patient07", args.out / "front_end_patient07.png"))
        identity_versus_fit(p07, args.out / "patient07_fit.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
