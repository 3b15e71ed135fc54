"""The learned FLAIR engine (``voxel-classifier``): its features, the shipped model, and its answers on
a phantom, on a synthetic FLAIR around a real lesion shape it never trained on, and on patient07."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from imaging.engines import FlairInputs, flair_engine
from imaging.engines.base import file_sha256
from imaging.errors import GeometryError
from imaging.image import MRImage
from imaging.lesion_classifier import (
    CLASSIFIER_META,
    CLASSIFIER_MODEL,
    classifier_settings,
    segment_flair_classifier,
)
from imaging.lesion_features import FEATURE_NAMES, flair_features
from imaging.metrics import dice
from imaging.normalize import NormalizationError
from tests.phantoms import LEVELS, SHAPE, SPACING, brain_phantom


def _column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_features_are_ratios_to_the_images_own_tissue_levels() -> None:
    """Scaling the FLAIR changes no feature; the levels and the fixed columns are the phantom's."""
    flair, brain, wm, gm, prior, fraction = brain_phantom(lesion=True)
    first = flair_features(flair, brain, wm, gm, prior)
    scaled = flair.with_data(np.asarray(flair.data) * 7.25)
    second = flair_features(scaled, brain, wm, gm, prior)
    np.testing.assert_allclose(first.values, second.values, rtol=1e-4, atol=1e-4)
    assert second.wm_level == pytest.approx(7.25 * first.wm_level, rel=1e-5)
    # one row per brain voxel, in FEATURE_NAMES order
    assert first.values.shape == (int(np.count_nonzero(brain.data)), len(FEATURE_NAMES))
    assert first.wm_level == pytest.approx(LEVELS["wm"], abs=1.0)
    assert first.gm_level == pytest.approx(LEVELS["gm"], abs=2.0)
    values = first.values
    assert np.all(values[:, _column("slice_mm")] == pytest.approx(max(SPACING)))
    assert np.all(
        values[:, _column("gm_over_wm")] == pytest.approx(first.gm_level / first.wm_level)
    )
    # the lesion core reads about lesion / WM = 1.4, normal WM about 1
    core = first.to_volume(values[:, _column("ratio_wm")], SHAPE)[fraction >= 0.99]
    assert np.median(core) == pytest.approx(LEVELS["lesion"] / LEVELS["wm"], abs=0.05)
    # depth in mm on the anisotropic grid: the deepest brain voxel is about the phantom's
    # smallest semi-axis (28 mm) deep, never more than the 40 mm cap
    edge = values[:, _column("edge_mm")]
    assert 24.0 <= edge.max() <= 30.0
    assert edge.min() > 0.0


def test_asymmetry_compares_each_voxel_with_its_mirror_across_the_template_midline() -> None:
    """The phantom's right half made 30 % brighter: right white matter reads +30 units of WM level
    against its mirror, left -30; with the midline placed elsewhere (to_mni) the answer changes."""
    flair, brain, wm, gm, prior, _ = brain_phantom(lesion=False)
    data = np.asarray(flair.data, dtype=np.float32).copy()
    centre_i = (SHAPE[0] - 1) / 2.0
    right = np.arange(SHAPE[0]) > centre_i
    data[right] *= 1.3
    halves = flair.with_data(data)
    to_mni = np.eye(4)
    to_mni[0, 3] = -centre_i * SPACING[0]  # the phantom's centre plane is MNI x = 0
    features = flair_features(halves, brain, wm, gm, prior, to_mni)
    asym = features.to_volume(features.values[:, _column("asymmetry_wm")], SHAPE, np.nan)
    core = (np.asarray(wm.data) > 0.95) & (np.asarray(brain.data) > 0)
    ii = np.indices(SHAPE)[0] * SPACING[0] - centre_i * SPACING[0]
    expected = 0.3 * LEVELS["wm"] / features.wm_level
    assert np.nanmedian(asym[core & (ii > 8)]) == pytest.approx(expected, abs=0.03)
    assert np.nanmedian(asym[core & (ii < -8)]) == pytest.approx(-expected, abs=0.03)
    # an unbrightened phantom is symmetric: no asymmetry in its core
    plain = flair_features(flair, brain, wm, gm, prior, to_mni)
    plain_asym = plain.to_volume(plain.values[:, _column("asymmetry_wm")], SHAPE, np.nan)
    assert abs(np.nanmedian(plain_asym[core])) < 0.01


def test_features_refuse_masks_without_tissue_or_off_the_grid() -> None:
    flair, brain, wm, gm, prior, _ = brain_phantom(lesion=False)
    with pytest.raises(NormalizationError, match="brain mask is empty"):
        flair_features(flair, brain.with_data(np.zeros(SHAPE, np.uint8)), wm, gm, prior)
    with pytest.raises(NormalizationError, match="white-matter voxels"):
        flair_features(flair, brain, wm.with_data(np.zeros(SHAPE, np.float32)), gm, prior)
    shifted = MRImage(np.asarray(gm.data), gm.affine @ np.diag([1, 1, 2.0, 1]))
    with pytest.raises(GeometryError, match="not on the grid"):
        flair_features(flair, brain, wm, shifted, prior)


def test_shipped_model_matches_its_settings_and_the_features() -> None:
    settings = classifier_settings()
    assert tuple(settings["features"]) == FEATURE_NAMES
    assert 0.0 < settings["threshold"] < 1.0
    # the training record: patient07 and the validation cohort's masks never trained it
    from benchmarks.flair_cohort import COHORT, VALIDATION

    trained = set(settings["training_masks"])
    assert VALIDATION not in trained and not trained & set(COHORT)
    assert CLASSIFIER_MODEL.stat().st_size < 20 * 1024 * 1024  # the limit for weights
    assert json.loads(CLASSIFIER_META.read_text())["features"] == list(FEATURE_NAMES)


def test_the_lesion_box_is_found_and_the_clean_phantom_stays_clean() -> None:
    flair, brain, wm, gm, prior, fraction = brain_phantom(lesion=True)
    result = segment_flair_classifier(flair, brain, wm, gm, prior)
    mask = np.asarray(result.lesion_mask.data) > 0
    truth = fraction >= 0.5
    assert result.lesion_mask.same_grid(flair) and result.lesion_mask.data.dtype == np.uint8
    assert dice(truth, mask) >= 0.8
    probability = np.asarray(result.probability.data)
    assert probability[np.asarray(brain.data) == 0].max() == 0.0
    assert probability[fraction >= 0.99].min() > result.threshold
    clean = segment_flair_classifier(*brain_phantom(lesion=False)[:5])
    clean_ml = np.count_nonzero(clean.lesion_mask.data) * float(np.prod(SPACING)) / 1000.0
    assert clean_ml < 0.2


def test_the_classifier_is_a_flair_engine_that_records_its_model() -> None:
    flair, brain, wm, gm, prior, _ = brain_phantom(lesion=True)
    engine = flair_engine("voxel-classifier")
    answer = engine.segment(FlairInputs(flair, brain, wm, gm_prior=gm, lesion_prior=prior))
    direct = segment_flair_classifier(flair, brain, wm, gm, prior)
    np.testing.assert_array_equal(answer.lesion_mask.data, direct.lesion_mask.data)
    assert answer.checked(flair, "voxel-classifier").probability is not None
    info = engine.info
    assert info.model_sha256[CLASSIFIER_MODEL.name] == file_sha256(CLASSIFIER_MODEL)
    assert info.model_sha256[CLASSIFIER_META.name] == file_sha256(CLASSIFIER_META)
    assert info.parameters["threshold"] == classifier_settings()["threshold"]
    assert info.dicom_family == "ArtificialIntelligence"


def _load(path: Path) -> MRImage:
    import nibabel as nib

    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image)
    return MRImage(image.get_fdata(dtype=np.float32), image.affine)


def _held_out_case(realdata: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D (4 mm) synthetic FLAIR around patient02's expert mask, which the model never saw:
    (truth, classifier mask)."""
    from benchmarks.flair_cohort import load_masks
    from imaging.lesion_prior import build_lesion_frequency, mni_map_on
    from imaging.template import mni_template
    from synthetic.ms_flair import make_ms_flair

    masks, affine = load_masks(realdata / "open_ms_masks_mni")
    case = make_ms_flair(masks["patient02"], affine, seed=4242, slice_mm=4.0, coarse=False)
    others = [m for k, m in masks.items() if k != "patient02"]
    template = mni_template()
    result = segment_flair_classifier(
        case.flair,
        case.brain,
        mni_map_on(template.wm, case.flair, case.to_mni),
        mni_map_on(template.gm, case.flair, case.to_mni),
        mni_map_on(build_lesion_frequency(others, affine), case.flair, case.to_mni),
        to_mni=case.to_mni,
    )
    return np.asarray(case.truth.data) > 0, np.asarray(result.lesion_mask.data) > 0


def test_synthetic_flair_around_a_held_out_real_lesion_shape(realdata: Path) -> None:
    truth, mask = _held_out_case(realdata)
    assert dice(truth, mask) >= 0.7


@pytest.mark.xfail(
    strict=True,
    reason="known limit: the classifier under-calls small lesions on thick slices (117 of 163 "
    "voxels here; synthetic cohort median |volume error| 34 %, README)",
)
def test_held_out_lesion_volume_within_a_quarter(realdata: Path) -> None:
    truth, mask = _held_out_case(realdata)
    assert mask.sum() == pytest.approx(truth.sum(), rel=0.25)


def test_real_ms_flair_patient07(realdata: Path) -> None:
    """Validation only (no parameter was fitted on patient07): the measured Dice must not regress."""
    from imaging.lesion_prior import lesion_prior_on
    from imaging.template import mni_template

    folder = realdata / "open_ms_patient07"
    flair = _load(folder / "FLAIR.nii.gz")
    expert = np.asarray(_load(folder / "lesion_mask.nii.gz").data) > 0
    brain = flair.with_data(ndi.binary_fill_holes(np.asarray(flair.data) > 0).astype(np.uint8))
    template = mni_template()
    from imaging.lesion_prior import mni_map_on

    result = segment_flair_classifier(
        flair,
        brain,
        mni_map_on(template.wm, flair),
        mni_map_on(template.gm, flair),
        lesion_prior_on(flair),
    )
    assert dice(expert, np.asarray(result.lesion_mask.data) > 0) >= PATIENT07_DICE_FLOOR


#: The shipped model measured Dice 0.242 on patient07 (README, *FLAIR lesion method*), minus 0.02.
PATIENT07_DICE_FLOOR = 0.22
