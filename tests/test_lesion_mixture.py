"""The Gaussian-mixture FLAIR lesion method (imaging.lesion_mixture) on phantoms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.errors import GeometryError, ImagingError
from imaging.image import MRImage
from imaging.lesion_mixture import (
    MixtureError,
    MixtureLesionParams,
    segment_flair_mixture,
)
from tests.phantoms import LEVELS, SHAPE, SPACING
from tests.phantoms import brain_phantom as _phantom


def test_lesion_box_volume_and_location_on_anisotropic_grid() -> None:
    flair, brain, wm, gm, prior, fraction = _phantom(lesion=True)
    truth = fraction >= 0.5
    voxel_mm3 = float(np.prod(SPACING))
    true_ml = truth.sum() * voxel_mm3 / 1000.0
    # the box has partial-volume faces on every axis: fractions < 0.5 and >= 0.5
    assert ((fraction > 0.05) & (fraction < 0.5)).any() and (
        (fraction >= 0.5) & (fraction < 1)
    ).any()

    result = segment_flair_mixture(flair, brain, wm, gm, prior)

    mask = np.asarray(result.lesion_mask.data) > 0
    assert result.lesion_mask.data.dtype == np.uint8
    assert result.probability.data.dtype == np.float32
    assert result.lesion_mask.same_grid(flair) and result.probability.same_grid(flair)
    assert result.n_lesions == 1
    assert result.volume_ml == pytest.approx(true_ml, rel=0.05)
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.9
    # the learned contrast: class means near the phantom's levels (units of the brain median)
    scale = result.means["wm"] / LEVELS["wm"]
    assert result.means["gm"] / scale == pytest.approx(LEVELS["gm"], rel=0.03)
    # CSF: a dark class (its mean is pulled up by partial volume at the CSF and brain edges)
    assert result.means["csf"] < 0.6 * result.means["wm"]
    probability = np.asarray(result.probability.data)
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert probability[fraction >= 0.99].min() > 0.9
    assert probability[np.asarray(brain.data) == 0].max() == 0.0


def test_lesion_free_phantom_has_no_lesion() -> None:
    flair, brain, wm, gm, prior, _ = _phantom(lesion=False)
    result = segment_flair_mixture(flair, brain, wm, gm, prior)
    assert result.volume_ml == 0.0
    assert result.n_lesions == 0


def test_without_lesion_prior_the_lesion_is_still_found() -> None:
    flair, brain, wm, gm, _, fraction = _phantom(lesion=True)
    result = segment_flair_mixture(flair, brain, wm, gm, None)
    truth = fraction >= 0.5
    mask = np.asarray(result.lesion_mask.data) > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.85


def test_deterministic() -> None:
    flair, brain, wm, gm, prior, _ = _phantom(lesion=True)
    params = MixtureLesionParams(sample_voxels=5000)
    first = segment_flair_mixture(flair, brain, wm, gm, prior, params=params)
    second = segment_flair_mixture(flair, brain, wm, gm, prior, params=params)
    assert np.array_equal(first.probability.data, second.probability.data)
    assert first.means == second.means


def test_bad_inputs_raise_named_errors() -> None:
    flair, brain, wm, gm, prior, _ = _phantom(lesion=False)
    shifted = MRImage(np.asarray(wm.data), wm.affine @ np.diag([1, 1, 2.0, 1]))
    with pytest.raises(GeometryError, match="not on the grid"):
        segment_flair_mixture(flair, brain, shifted, gm, prior)
    empty = brain.with_data(np.zeros(SHAPE, np.uint8))
    with pytest.raises(MixtureError, match="brain mask is empty"):
        segment_flair_mixture(flair, empty, wm, gm, prior)
    dark = flair.with_data(np.zeros(SHAPE, np.float32))
    with pytest.raises(MixtureError, match="no positive signal"):
        segment_flair_mixture(dark, brain, wm, gm, prior)
    assert issubclass(MixtureError, ImagingError)


def test_the_mixture_is_a_flair_engine_behind_the_seam() -> None:
    """Chosen by name, it returns the same mask as the function, with its posterior, and records
    its parameters and the lesion prior's sha256."""
    from imaging.engines import FlairInputs, flair_engine
    from imaging.lesion_prior import LESION_PRIOR_FILE, lesion_prior_sha256

    flair, brain, wm, gm, prior, _ = _phantom(lesion=True)
    engine = flair_engine("tissue-mixture")
    answer = engine.segment(FlairInputs(flair, brain, wm, gm_prior=gm, lesion_prior=prior))
    direct = segment_flair_mixture(flair, brain, wm, gm, prior)
    np.testing.assert_array_equal(answer.lesion_mask.data, direct.lesion_mask.data)
    assert answer.probability is not None and answer.checked(flair, "tissue-mixture")
    info = engine.info
    assert info.parameters == direct.params.to_dict()
    assert info.model_sha256 == {LESION_PRIOR_FILE.name: lesion_prior_sha256()}
