"""FLAIR lesions by a learned voxel classifier: gradient-boosted trees (LightGBM) on contrast and
position features, trained on synthetic FLAIRs built around real lesion shapes.

The model (``imaging/data/flair_voxel_classifier.txt``, LightGBM's own text format: no pickle, no
code runs when it loads) and its settings (``flair_voxel_classifier.json``: the feature list, the
probability threshold, the training record) ship in the package and are made by
``scripts/train_flair_classifier.py``. The features are :func:`imaging.lesion_features.flair_features`.
A voxel is lesion when its probability reaches the calibrated threshold; lesions smaller than
``min_lesion_mm3`` are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.errors import ImagingError
from imaging.filters import masked_smooth
from imaging.image import MRImage
from imaging.lesion_features import FEATURE_NAMES, FlairFeatures, flair_features
from imaging.morphology import remove_small_components

__all__ = [
    "CLASSIFIER_META",
    "CLASSIFIER_MODEL",
    "ClassifierResult",
    "classifier_settings",
    "segment_flair_classifier",
]

#: The shipped model (LightGBM text format) and its settings.
CLASSIFIER_MODEL = Path(__file__).parent / "data" / "flair_voxel_classifier.txt"
CLASSIFIER_META = Path(__file__).parent / "data" / "flair_voxel_classifier.json"


@lru_cache(maxsize=1)
def classifier_settings() -> dict[str, Any]:
    """The shipped model's settings (features, threshold, training record)."""
    if not CLASSIFIER_META.is_file() or not CLASSIFIER_MODEL.is_file():
        raise ImagingError(
            f"the FLAIR classifier model is missing ({CLASSIFIER_MODEL.name}): reinstall leukotrack "
            "or rebuild it with scripts/train_flair_classifier.py"
        )
    settings: dict[str, Any] = json.loads(CLASSIFIER_META.read_text())
    if tuple(settings["features"]) != FEATURE_NAMES:
        raise ImagingError(
            "the FLAIR classifier model was trained on other features than this version computes: "
            "rebuild it with scripts/train_flair_classifier.py"
        )
    return settings


@lru_cache(maxsize=1)
def _booster() -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_file=str(CLASSIFIER_MODEL))


@dataclass(frozen=True)
class ClassifierResult:
    """Lesions found by the classifier.

    Attributes
    ----------
    lesion_mask : MRImage
        uint8 mask on the FLAIR grid.
    probability : MRImage
        float32 lesion probability (0 outside the brain).
    threshold : float
        The probability at which a voxel is called lesion.
    wm_level, gm_level : float
        The tissue levels the features are scaled by (FLAIR units).
    """

    lesion_mask: MRImage
    probability: MRImage
    threshold: float
    wm_level: float
    gm_level: float


def lesions_from_probability(
    features: FlairFeatures,
    probability: NDArray[np.float32],
    flair: MRImage,
    threshold: float,
    smooth_mm: float,
    candidate_min: float,
    min_lesion_mm3: float,
) -> NDArray[np.bool_]:
    """The lesion mask (full grid) from per-row probabilities: smoothed inside the brain by
    ``smooth_mm``, cut at ``threshold``, limited to candidates, small components dropped.

    Parameters
    ----------
    features : FlairFeatures
        The rows' positions.
    probability : ndarray of float32, shape (n_rows,)
        Lesion probability per row (0 for rows that are not candidates).
    flair : MRImage
        The FLAIR (grid and spacing).
    threshold, smooth_mm, candidate_min, min_lesion_mm3 : float
        The decision's settings (see ``flair_voxel_classifier.json``).
    """
    box_probability = features.to_volume(probability, flair.spatial_shape, 0.0)[features.box]
    if smooth_mm > 0:
        box_probability = masked_smooth(
            box_probability, features.inside, smooth_mm, flair.spacing_mm
        )
    candidate = features.values[:, FEATURE_NAMES.index("smooth1_wm")] >= candidate_min
    inside = np.zeros(features.inside.shape, dtype=bool)
    inside[features.inside] = candidate
    mask = np.zeros(flair.spatial_shape, dtype=bool)
    mask[features.box] = inside & (box_probability >= threshold)
    return remove_small_components(mask, flair.voxel_volume_mm3, min_lesion_mm3)


def segment_flair_classifier(
    flair: MRImage,
    brain: MRImage,
    wm_prior: MRImage,
    gm_prior: MRImage,
    lesion_prior: MRImage | None,
    *,
    to_mni: NDArray[np.float64] | None = None,
    threshold: float | None = None,
    n_threads: int = 0,
) -> ClassifierResult:
    """FLAIR lesions by the shipped voxel classifier.

    Parameters
    ----------
    flair : MRImage
        3-D FLAIR, bias-corrected, shape (I, J, K).
    brain, wm_prior, gm_prior, lesion_prior : MRImage
        Brain mask and priors on the FLAIR grid (see :func:`imaging.lesion_features.flair_features`).
    to_mni : ndarray, shape (4, 4), optional
        FLAIR world -> MNI world (the template fit); None when the FLAIR is in MNI space.
    threshold : float, optional
        Probability threshold; the calibrated one by default.
    n_threads : int
        LightGBM threads (0: its default, all cores).

    Returns
    -------
    ClassifierResult
    """
    settings = classifier_settings()
    cut = float(settings["threshold"] if threshold is None else threshold)
    features = flair_features(flair, brain, wm_prior, gm_prior, lesion_prior, to_mni)
    candidate_min = float(settings["candidate_min_smooth1_wm"])
    candidates = features.values[:, FEATURE_NAMES.index("smooth1_wm")] >= candidate_min
    probability = np.zeros(len(features.values), dtype=np.float32)
    if candidates.any():
        probability[candidates] = _booster().predict(
            features.values[candidates], num_threads=n_threads
        )
    mask = lesions_from_probability(
        features,
        probability,
        flair,
        cut,
        float(settings["smooth_mm"]),
        candidate_min,
        float(settings["min_lesion_mm3"]),
    )
    shape = flair.spatial_shape
    return ClassifierResult(
        lesion_mask=MRImage(mask.astype(np.uint8), flair.affine),
        probability=MRImage(features.to_volume(probability, shape, 0.0), flair.affine),
        threshold=cut,
        wm_level=features.wm_level,
        gm_level=features.gm_level,
    )
