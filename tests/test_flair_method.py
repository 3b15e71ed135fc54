"""The FLAIR lesion method's parts that issue 13 changed: quantised images, the partial-volume
boundary (truth: lesion fraction >= 0.5), the lesion-frequency prior and its provenance.

Phantoms on anisotropic, non-cubic grids with known answers; the prior's provenance is checked
against the real expert masks (skipped without ../shared/realdata).
"""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from imaging.image import MRImage
from imaging.lesion_prior import (
    build_lesion_frequency,
    lesion_frequency_mni,
    lesion_prior_on,
    lesion_prior_sha256,
)
from imaging.normalize import NormalizationError, normalize_to_nawm, robust_location_scale
from imaging.segment import segment_flair_lesions


def _grid(shape, spacing):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) * s / 2 for n, s in zip(shape, spacing, strict=True)]
    return affine


def _xyz(shape, affine):
    ijk = np.indices(shape, dtype=np.float64)
    return [affine[a, a] * ijk[a] + affine[a, 3] for a in range(3)]


# ------------------------------------------------------------------------------ quantisation
def test_coarsely_quantised_white_matter_has_a_spread_not_mad_zero():
    """60 % of the NAWM voxels on one level: the MAD is 0, the mean absolute deviation is not."""
    rng = np.random.default_rng(5)
    continuous = rng.normal(100.0, 4.0, 50_000)
    quantised = np.round(continuous / 12.0) * 12.0  # 3 SD steps: ~80 % of values at 96
    assert np.median(np.abs(quantised - np.median(quantised))) == 0.0
    median, sigma, kept = robust_location_scale(quantised)
    assert median == 96.0
    # sqrt(pi/2) x mean |x - median| over the kept (trimmed) levels 84, 96, 108
    off = np.mean(quantised[kept] != 96.0)
    assert sigma == pytest.approx(1.2533 * 12.0 * off, rel=1e-6)
    assert 2.0 < sigma < 8.0


def test_quantised_flair_normalises_and_a_constant_one_is_refused():
    shape, spacing = (40, 44, 12), (0.9, 0.9, 3.3)
    affine = _grid(shape, spacing)
    rng = np.random.default_rng(2)
    image = np.round(rng.normal(300.0, 10.0, shape) / 40.0) * 40.0  # about 4 distinct levels
    brain = np.ones(shape, np.uint8)
    prior = np.ones(shape, np.float32)
    norm = normalize_to_nawm(
        MRImage(image.astype(np.float32), affine),
        MRImage(brain, affine),
        MRImage(prior, affine),
    )
    assert norm.median == 320.0 or norm.median == 280.0
    assert norm.sigma > 0
    with pytest.raises(NormalizationError, match="no intensity spread"):
        normalize_to_nawm(
            MRImage(np.full(shape, 7.0, np.float32), affine),
            MRImage(brain, affine),
            MRImage(prior, affine),
        )


# --------------------------------------------------------------------- partial-volume boundary
def _pv_phantom(lesion_over_wm: float, seed: int = 0):
    """White matter 100 with smooth texture and noise, one lesion rendered from its lesion
    fraction (an ellipsoid blurred by 1 mm), on a 1 x 1 x 2.5 mm grid. Truth = fraction >= 0.5."""
    shape, spacing = (72, 80, 30), (1.0, 1.0, 2.5)
    affine = _grid(shape, spacing)
    xyz = _xyz(shape, affine)
    brain = sum((c / r) ** 2 for c, r in zip(xyz, (34, 38, 36), strict=True)) <= 1.0
    solid = sum(((c - m) / r) ** 2 for c, m, r in zip(xyz, (8, 5, 4), (7, 9, 8), strict=True)) <= 1
    fraction = ndimage.gaussian_filter(solid.astype(np.float64), (1.0, 1.0, 0.4))
    rng = np.random.default_rng(seed)
    wm = 100.0 * (1 + 0.03 * ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5) / 0.1)
    image = (1 - fraction) * wm + fraction * 100.0 * lesion_over_wm + rng.normal(0, 3.0, shape)
    image = np.where(brain, image, 0.0)
    return (
        MRImage(image.astype(np.float32), affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(np.where(brain, 1.0, 0.0).astype(np.float32), affine),
        fraction >= 0.5,
    )


@pytest.mark.parametrize("lesion_over_wm", [1.35, 1.8])
def test_lesion_volume_follows_the_half_fraction_truth_for_faint_and_bright_lesions(
    lesion_over_wm,
):
    flair, brain, prior, truth = _pv_phantom(lesion_over_wm)
    result = segment_flair_lesions(flair, brain, prior)
    mask = np.asarray(result.lesion_mask.data) > 0
    volume_error = (mask.sum() - truth.sum()) / truth.sum()
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert abs(volume_error) <= 0.10, volume_error
    assert dice >= 0.9, dice
    assert result.n_lesions == 1


# -------------------------------------------------------------------------- lesion prior
def test_packaged_lesion_prior_is_a_small_frequency_map_highest_beside_the_ventricles():
    prior = lesion_frequency_mni()
    data = np.asarray(prior.data)
    assert prior.spacing_mm == pytest.approx((2.0, 2.0, 2.0))
    assert data.min() >= 0.0 and 0.1 < data.max() < 0.5
    peak = prior.voxel_to_world_mm(np.argwhere(data == data.max())[:1])[0]
    # the densest lesion area: periventricular white matter, lateral (|x| 10-35 mm), above the
    # thalamus (z 5-35 mm), around the atria / bodies of the lateral ventricles
    assert 10 <= abs(peak[0]) <= 35 and 5 <= peak[2] <= 35, peak
    # far from the ventricles (frontal pole, occipital pole) lesions are rare
    to_voxel = np.linalg.inv(prior.affine)
    poles = [to_voxel[:3, :3] @ p + to_voxel[:3, 3] for p in ([0.0, 60.0, 0.0], [0.0, -95.0, 0.0])]
    values = [data[tuple(np.round(p).astype(int))] for p in poles]
    assert max(values) < 0.1 * data.max()


def test_lesion_prior_has_a_fixed_sha256_for_provenance():
    import hashlib

    from imaging.lesion_prior import LESION_PRIOR_FILE

    digest = lesion_prior_sha256()
    assert len(digest) == 64
    assert digest == hashlib.sha256(LESION_PRIOR_FILE.read_bytes()).hexdigest()


def test_lesion_prior_on_a_grid_is_the_map_resampled_through_the_given_matrix():
    shape, spacing = (30, 36, 20), (2.0, 2.0, 3.0)
    affine = _grid(shape, spacing)
    reference = MRImage(np.zeros(shape, np.float32), affine)
    direct = lesion_prior_on(reference)
    shift = np.eye(4)
    shift[:3, 3] = [0.0, 0.0, 6.0]  # scan world -> MNI: 6 mm up = 2 slices of 3 mm
    moved = lesion_prior_on(reference, shift)
    assert direct.same_grid(reference)
    np.testing.assert_allclose(moved.data[:, :, :-2], direct.data[:, :, 2:], atol=1e-5)


def test_build_lesion_frequency_counts_patients_and_keeps_world_positions():
    shape = (8, 6, 4)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    a[0:2, 0:2, 0:2] = True
    b[0:2, 0:2, 0:2] = True
    b[6:8, 4:6, 2:4] = True
    prior = build_lesion_frequency([a, b], affine, sigma_mm=0.0, block=2)
    assert prior.shape == (4, 3, 2)
    assert prior.data[0, 0, 0] == pytest.approx(1.0)
    assert prior.data[3, 2, 1] == pytest.approx(0.5)
    assert prior.data.sum() == pytest.approx(1.5)
    # block centre (0.5, 0.5, 0.5) of the 1 mm grid
    np.testing.assert_allclose(prior.affine[:3, 3], [0.5, 0.5, 0.5])


@pytest.mark.realdata
def test_packaged_prior_is_built_without_the_validation_patient(realdata):
    folder = realdata / "open_ms_masks_mni"
    if not folder.is_dir():
        pytest.skip(f"{folder} missing")
    masks, held_out, affine = [], None, None
    for path in sorted(folder.glob("patient*_lesions_mni.nii.gz")):
        image = nib.load(path)
        data = np.asarray(image.dataobj) > 0
        affine = image.affine
        if re.match(r"patient07_", path.name):
            held_out = data
        else:
            masks.append(data)
    assert held_out is not None and len(masks) == 27
    packaged = np.asarray(lesion_frequency_mni().data)
    without = np.asarray(build_lesion_frequency(masks, affine).data)
    with_it = np.asarray(build_lesion_frequency([*masks, held_out], affine).data)
    step = packaged.max() / 255.0  # stored as uint8 with a scale factor
    assert np.abs(packaged - without).max() <= step
    assert np.abs(packaged - with_it).max() > 5 * step
