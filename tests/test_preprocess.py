"""Preprocessing building blocks on phantoms with known answers: the SimpleITK bridge, registration
with a known transform, N4 with a known bias field, the template regions, ADC from DWI."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from imaging.bias import correct_bias
from imaging.diffusion import adc_from_dwi
from imaging.image import MRImage
from imaging.regions import Hemisphere, Region, hemisphere_labels, region_labels
from imaging.register import displacement_mm, register, resample
from imaging.sitk_bridge import from_sitk, to_sitk
from imaging.template import mni_template
from tests.dicom_factory import rotation


def _oblique(shape=(40, 44, 36), spacing=(2.0, 2.2, 2.5)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation(5, -4, 10) @ np.diag(spacing)
    affine[:3, 3] = -0.5 * (affine[:3, :3] @ np.array(shape))
    return affine


def _blob_phantom(shape=(40, 44, 36)) -> np.ndarray:
    """A smooth, asymmetric 'head': a few Gaussian blobs of different sizes and intensities."""
    grid = np.indices(shape).astype(float)
    centres = [(20, 22, 18, 9, 100), (14, 30, 20, 4, 60), (27, 15, 14, 5, 140), (22, 22, 27, 3, 80)]
    data = np.zeros(shape)
    for x, y, z, s, a in centres:
        data += a * np.exp(
            -((grid[0] - x) ** 2 + (grid[1] - y) ** 2 + (grid[2] - z) ** 2) / (2 * s**2)
        )
    return data.astype(np.float32)


def test_sitk_round_trip_is_exact_on_an_oblique_grid():
    image = MRImage(_blob_phantom(), _oblique())
    back = from_sitk(to_sitk(image), image)
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-9)


def test_rigid_registration_recovers_a_known_motion():
    fixed = MRImage(_blob_phantom(), _oblique())
    motion = np.eye(4)
    motion[:3, :3] = rotation(3, -2, 4)
    motion[:3, 3] = [2.5, -3.0, 1.5]
    moving = resample(fixed, fixed, np.linalg.inv(motion))  # moving(y) = fixed(M^-1 y)
    fit = register(fixed, moving, initial=np.eye(4))
    points = fixed.voxel_to_world_mm(np.argwhere(np.asarray(fixed.data) > 20)[::7])
    assert displacement_mm(np.eye(4), motion, points).mean() > 4  # the motion is real
    assert displacement_mm(fit.matrix, motion, points).mean() < 0.3
    assert fit.kind == "rigid" and fit.to_dict()["matrix_ras_mm"]


def test_resample_identity_and_nearest_keep_labels():
    labels = np.zeros((40, 44, 36), np.uint8)
    labels[10:20, 12:30, 5:9] = 3
    image = MRImage(labels, _oblique())
    same = resample(image, image, None, interpolation="nearest")
    np.testing.assert_array_equal(same.data, labels)
    assert same.data.dtype == np.uint8


def test_n4_removes_a_known_smooth_bias_field():
    shape = (48, 52, 20)
    rng = np.random.default_rng(3)
    truth = np.where(ndi.gaussian_filter(rng.random(shape), 3) > 0.5, 300.0, 200.0).astype(
        np.float32
    )
    x = np.linspace(-1, 1, shape[0])[:, None, None]
    z = np.linspace(-1, 1, shape[2])[None, None, :]
    field = (1 + 0.15 * x + 0.08 * z**2).astype(np.float32)
    image = MRImage(truth * field, np.diag([1.8, 1.8, 5.0, 1.0]))
    corrected, estimated = correct_bias(image)
    before = np.std(np.log(np.asarray(image.data) / truth))
    after = np.std(np.log(np.asarray(corrected.data) / truth))
    assert after < 0.35 * before
    assert np.asarray(estimated.data).shape == shape


def test_regions_and_hemispheres_at_known_mni_points():
    points = np.array(
        [
            [-30, 30, 30],  # left frontal white matter
            [30, -50, 40],  # right parietal (centrum semiovale)
            [20, -90, 10],  # right occipital
            [-45, -20, -10],  # left temporal
            [10, 0, 5],  # deep (basal ganglia, internal capsule)
            [10, -60, -30],  # cerebellum
        ],
        dtype=float,
    )
    assert list(region_labels(points)) == [
        Region.FRONTAL,
        Region.PARIETAL,
        Region.OCCIPITAL,
        Region.TEMPORAL,
        Region.DEEP,
        Region.INFRATENTORIAL,
    ]
    assert list(hemisphere_labels(points)) == [
        Hemisphere.LEFT,
        Hemisphere.RIGHT,
        Hemisphere.RIGHT,
        Hemisphere.LEFT,
        Hemisphere.RIGHT,
        Hemisphere.RIGHT,
    ]


def test_the_template_comes_from_the_installed_nilearn_and_is_plausible():
    template = mni_template()
    brain_ml = float(np.asarray(template.brain.data).sum()) * template.brain.voxel_volume_mm3 / 1000
    assert 1300 < brain_ml < 2000
    wm = np.asarray(template.wm.data)
    assert wm.min() >= 0.0 and wm.max() <= 1.0
    regions = np.asarray(template.regions.data)
    assert set(np.unique(regions)) == {0, *(int(r) for r in Region)}


def test_adc_from_dwi_matches_the_formula():
    s0 = MRImage(np.full((7, 8, 9), 900.0, np.float32), np.diag([1.8, 1.8, 5.0, 1.0]))
    adc_true = np.full((7, 8, 9), 700.0)
    adc_true[2:4] = 380.0
    sb = s0.with_data((900.0 * np.exp(-1000.0 * adc_true * 1e-6)).astype(np.float32))
    adc = adc_from_dwi(s0, sb, 1000.0)
    np.testing.assert_allclose(adc.data, adc_true, rtol=1e-4)
    assert adc.acquisition.unit == "um2/s"
