"""Score the pipeline on a synthetic case against its ground truth (``truth/``).

Per session: brain-mask Dice on the FLAIR and DWI grids, registration residuals against the true head
poses (mean displacement over the true brain, mm), and the MICCAI WMH 2017 metrics of the FLAIR and DWI
lesion masks, plus the false lesion volume in lesion-free white matter.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.image import MRImage
from imaging.metrics import SegmentationMetrics, dice, evaluate_segmentation
from imaging.pipeline import CaseImages
from imaging.register import displacement_mm
from imaging.units import mm3_to_ml

__all__ = ["SessionScore", "false_lesion_ml", "oracle_wm_prior", "score_case"]

#: Prediction more than this far (mm) from any true lesion counts as false lesion.
FALSE_LESION_MARGIN_MM = 3.0


@dataclass(frozen=True)
class SessionScore:
    """How one session of a synthetic case was measured against its truth."""

    session_id: str
    day: int
    brain_dice_flair: float
    brain_dice_dwi: float
    to_baseline_error_mm: float
    dwi_to_flair_error_mm: float
    flair: SegmentationMetrics | None
    dwi: SegmentationMetrics | None
    false_flair_ml: float
    false_dwi_ml: float

    def flat(self) -> dict[str, Any]:
        """One flat row for a table."""
        row = {k: v for k, v in asdict(self).items() if k not in ("flair", "dwi")}
        for name in ("flair", "dwi"):
            metrics = getattr(self, name)
            for key, value in (asdict(metrics) if metrics is not None else {}).items():
                row[f"{name}_{key}"] = value
        return row


def _load(case_dir: Path, relative: str) -> MRImage:
    nifti = nib.load(case_dir / relative)
    assert isinstance(nifti, nib.Nifti1Image)
    return MRImage(np.asarray(nifti.dataobj), nifti.affine)


def false_lesion_ml(truth: MRImage, prediction: MRImage, wm_prior: MRImage | None) -> float:
    """Predicted lesion (mL) more than :data:`FALSE_LESION_MARGIN_MM` from any true lesion, counted
    where the white-matter prior is above 0.5 (everywhere when ``wm_prior`` is None)."""
    true = np.asarray(truth.data) > 0
    if true.any():
        far = ndi.distance_transform_edt(~true, sampling=truth.spacing_mm) > FALSE_LESION_MARGIN_MM
    else:
        far = np.ones(true.shape, bool)
    false = (np.asarray(prediction.data) > 0) & far
    if wm_prior is not None:
        false &= np.asarray(wm_prior.data) > 0.5
    return mm3_to_ml(float(false.sum()) * prediction.voxel_volume_mm3)


@lru_cache(maxsize=1)
def _mni_wm_1mm() -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The nilearn MNI152 2009a white-matter map at 1 mm (0..1) and its affine."""
    import nilearn

    path = Path(nilearn.__file__).parent / "datasets" / "data"
    nifti = nib.load(path / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    assert isinstance(nifti, nib.Nifti1Image)
    return np.asarray(nifti.dataobj, dtype=np.float32) / 255.0, np.asarray(nifti.affine)


def oracle_wm_prior(like: MRImage, scan_from_mni: NDArray[np.float64]) -> MRImage:
    """The 1 mm MNI white-matter map on ``like``'s grid through a known (true) pose,
    ``scanner_RAS = scan_from_mni @ MNI_RAS`` (linear interpolation): the prior a perfect template
    registration would give, for testing segmentation apart from registration."""
    wm, wm_affine = _mni_wm_1mm()
    ijk = np.indices(like.spatial_shape, dtype=np.float64).reshape(3, -1)
    scanner = like.affine[:3, :3] @ ijk + like.affine[:3, 3:4]
    to_template = np.linalg.inv(wm_affine) @ np.linalg.inv(scan_from_mni)
    source = to_template[:3, :3] @ scanner + to_template[:3, 3:4]
    values = ndi.map_coordinates(wm, source, order=1, cval=0.0)
    return MRImage(values.reshape(like.spatial_shape).astype(np.float32), like.affine)


def _brain_points(mask: MRImage) -> NDArray[np.float64]:
    return mask.voxel_to_world_mm(np.argwhere(np.asarray(mask.data) > 0)[::25])


def score_case(case_dir: Path, result: CaseImages) -> list[SessionScore]:
    """Score every session of ``result`` (from :func:`imaging.pipeline.process_case`)."""
    case_dir = Path(case_dir)
    truth = json.loads((case_dir / "truth" / "truth.json").read_text())
    by_label = {s["session_id"]: s for s in truth["sessions"]}
    base = by_label[result.baseline.label]
    scores = []
    for images in result.sessions:
        t = by_label[images.label]
        files = t["truth_files"]
        brain_flair = _load(case_dir, files["brain_mask_flair"])
        brain_dwi = _load(case_dir, files["brain_mask_dwi"])
        pose_f, pose_d = np.array(t["pose_flair"]), np.array(t["pose_dwi"])
        true_to_baseline = np.array(base["pose_flair"]) @ np.linalg.inv(pose_f)
        true_dwi_to_flair = pose_f @ np.linalg.inv(pose_d)
        flair_metrics = dwi_metrics = None
        false_flair = false_dwi = math.nan
        if images.flair_result is not None:
            reference = _load(case_dir, files["flair_lesion"])
            flair_metrics = evaluate_segmentation(reference, images.flair_result.lesion_mask)
            false_flair = false_lesion_ml(
                reference, images.flair_result.lesion_mask, images.flair_wm_prior
            )
        if images.dwi_result is not None:
            reference = _load(case_dir, files["dwi_lesion"])
            dwi_metrics = evaluate_segmentation(reference, images.dwi_result.lesion_mask)
            false_dwi = false_lesion_ml(
                reference, images.dwi_result.lesion_mask, images.dwi_wm_prior
            )
        scores.append(
            SessionScore(
                session_id=images.label,
                day=int(t["day"]),
                brain_dice_flair=dice(brain_flair.data, images.flair_brain.data)
                if images.flair_brain is not None
                else math.nan,
                brain_dice_dwi=dice(brain_dwi.data, images.dwi_brain.data)
                if images.dwi_brain is not None
                else math.nan,
                to_baseline_error_mm=float(
                    displacement_mm(
                        images.to_baseline, true_to_baseline, _brain_points(brain_flair)
                    ).mean()
                ),
                dwi_to_flair_error_mm=float(
                    displacement_mm(
                        images.dwi_to_reference, true_dwi_to_flair, _brain_points(brain_dwi)
                    ).mean()
                ),
                flair=flair_metrics,
                dwi=dwi_metrics,
                false_flair_ml=false_flair,
                false_dwi_ml=false_dwi,
            )
        )
    return scores
