"""Segmentation metrics (imaging.metrics): exact answers on small phantoms with anisotropic voxels and
non-cubic grids, the empty-mask rules, and agreement with the MICCAI WMH 2017 challenge's own recipe
(SimpleITK in-plane erosion, physical points, KD-tree) on irregular masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from imaging.errors import GeometryError
from imaging.image import MRImage
from imaging.metrics import (
    SegmentationMetrics,
    absolute_volume_difference_percent,
    boundary_mask,
    dice,
    evaluate_segmentation,
    hd95_mm,
    lesion_detection,
)

SHAPE = (20, 17, 9)  # non-cubic
SPACING = (0.9, 1.1, 3.0)  # anisotropic, mm
VOXEL_MM3 = 0.9 * 1.1 * 3.0


def _box(i: slice, j: slice, k: slice) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[i, j, k] = 1
    return mask


def test_dice_of_two_boxes_with_a_known_overlap():
    a = _box(slice(2, 8), slice(3, 9), slice(1, 5))  # 6 x 6 x 4 = 144 voxels
    b = _box(slice(4, 10), slice(3, 9), slice(1, 5))  # shifted 2 along i: overlap 4 x 6 x 4 = 96
    assert dice(a, b) == pytest.approx(2 * 96 / 288)
    metrics = evaluate_segmentation(a, b, spacing_mm=SPACING)
    assert metrics.dice == pytest.approx(2 / 3)
    assert metrics.volume_ref_ml == pytest.approx(144 * VOXEL_MM3 / 1000)
    assert metrics.avd_percent == pytest.approx(0.0)


def test_absolute_volume_difference_in_percent():
    a = _box(slice(2, 8), slice(3, 9), slice(1, 5))  # 144 voxels
    b = _box(slice(2, 8), slice(3, 9), slice(1, 4))  # 108 voxels
    metrics = evaluate_segmentation(a, b, spacing_mm=SPACING)
    assert metrics.avd_percent == pytest.approx(25.0)
    assert metrics.volume_pred_ml == pytest.approx(108 * VOXEL_MM3 / 1000)
    assert absolute_volume_difference_percent(2.0, 2.5) == pytest.approx(25.0)


def test_hd95_between_sheets_a_known_number_of_slices_apart():
    """Two one-slice plates 3 slices apart (3.0 mm slices): every boundary point is 9.0 mm from the
    other plate's boundary, whichever erosion defines the boundary."""
    a = _box(slice(3, 15), slice(2, 14), slice(2, 3))
    b = _box(slice(3, 15), slice(2, 14), slice(5, 6))
    assert hd95_mm(a, b, spacing_mm=SPACING) == pytest.approx(9.0)
    assert hd95_mm(a, b, spacing_mm=SPACING, boundary="3d") == pytest.approx(9.0)


def test_hd95_of_a_shift_along_the_fine_axis():
    """Walls one voxel thick along i, 4 voxels apart: 4 x 0.9 mm."""
    a = _box(slice(5, 6), slice(2, 15), slice(1, 8))
    b = _box(slice(9, 10), slice(2, 15), slice(1, 8))
    assert hd95_mm(a, b, spacing_mm=SPACING) == pytest.approx(3.6)


def test_hd95_uses_the_affine_of_images_including_oblique_ones():
    """The same plates on a grid rotated by 30 degrees about z and shifted: still 9.0 mm."""
    a = _box(slice(3, 15), slice(2, 14), slice(2, 3))
    b = _box(slice(3, 15), slice(2, 14), slice(5, 6))
    angle = np.deg2rad(30)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(SPACING)
    affine[:3, 3] = (-40.0, 12.5, 7.0)
    ref, pred = MRImage(a, affine), MRImage(b, affine)
    assert hd95_mm(ref, pred) == pytest.approx(9.0)
    metrics = evaluate_segmentation(ref, pred)
    assert metrics.hd95_mm == pytest.approx(9.0)
    assert metrics.volume_ref_ml == pytest.approx(a.sum() * VOXEL_MM3 / 1000)


def test_boundary_is_the_mask_minus_its_in_plane_erosion():
    a = _box(slice(2, 7), slice(3, 8), slice(1, 4))  # 5 x 5 x 3
    ring = boundary_mask(a, "2d")
    # in-plane erosion ignores the slices above and below: every slice, the top and bottom ones
    # included, keeps just its 5 x 5 outline (16 voxels)
    assert [int(ring[:, :, k].sum()) for k in range(1, 4)] == [16, 16, 16]
    shell = boundary_mask(a, "3d")
    assert int(shell.sum()) == 5 * 5 * 3 - 3 * 3 * 1  # the 3 x 3 centre of the middle slice goes


def _challenge_hd95(test: np.ndarray, result: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The challenge's evaluation.py getHausdorff, with SimpleITK, for comparison."""
    test_image = sitk.GetImageFromArray(test.T.astype(np.uint8).copy())
    result_image = sitk.GetImageFromArray(result.T.astype(np.uint8).copy())
    for image in (test_image, result_image):
        image.SetSpacing(spacing)
    e_test = sitk.BinaryErode(test_image, (1, 1, 0))
    e_result = sitk.BinaryErode(result_image, (1, 1, 0))
    h_test = sitk.GetArrayFromImage(sitk.Subtract(test_image, e_test))
    h_result = sitk.GetArrayFromImage(sitk.Subtract(result_image, e_result))
    test_points = [
        test_image.TransformIndexToPhysicalPoint(x.tolist())
        for x in np.transpose(np.flipud(np.nonzero(h_test)))
    ]
    result_points = [
        test_image.TransformIndexToPhysicalPoint(x.tolist())
        for x in np.transpose(np.flipud(np.nonzero(h_result)))
    ]
    d_test = cKDTree(result_points).query(test_points, k=1)[0]
    d_result = cKDTree(test_points).query(result_points, k=1)[0]
    return float(max(np.percentile(d_test, 95), np.percentile(d_result, 95)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hd95_matches_the_challenge_recipe_on_irregular_masks(seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), (2.0, 2.0, 0.7))
    a = noise > 0.25
    b = np.roll(noise, 2, axis=0) > 0.3
    b[0:3] = noise[0:3] > 0.1  # touch the edge of the field of view too
    assert a.any() and b.any()
    assert hd95_mm(a, b, spacing_mm=SPACING) == pytest.approx(
        _challenge_hd95(a, b, SPACING), rel=1e-9
    )


def test_lesion_recall_precision_and_f1_count_26_connected_components():
    ref = np.zeros(SHAPE, np.uint8)
    ref[2, 2, 2] = ref[3, 3, 3] = 1  # corner neighbours: ONE lesion with 26-connectivity
    ref[10:12, 10:12, 4] = 1  # second lesion
    ref[16, 14, 7] = 1  # third lesion, missed
    pred = np.zeros(SHAPE, np.uint8)
    pred[3, 3, 3] = 1  # touches lesion 1
    pred[11, 11, 4:6] = 1  # touches lesion 2
    pred[5, 14, 1] = 1  # a false detection
    recall, precision, f1, n_ref, n_pred = lesion_detection(ref, pred)
    assert (n_ref, n_pred) == (3, 3)
    assert recall == pytest.approx(2 / 3)
    assert precision == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 / 3)
    metrics = evaluate_segmentation(ref, pred, spacing_mm=SPACING)
    assert (metrics.lesion_recall, metrics.n_ref_lesions) == (pytest.approx(2 / 3), 3)


def test_one_prediction_touching_two_lesions_detects_both():
    ref = _box(slice(2, 4), slice(2, 4), slice(2, 3)) | _box(slice(8, 10), slice(2, 4), slice(2, 3))
    pred = _box(slice(3, 9), slice(2, 3), slice(2, 3))  # a bar bridging both
    recall, precision, f1, n_ref, n_pred = lesion_detection(ref, pred)
    assert (recall, precision, f1, n_ref, n_pred) == (1.0, 1.0, 1.0, 2, 1)


def _metrics(ref: np.ndarray, pred: np.ndarray) -> SegmentationMetrics:
    return evaluate_segmentation(ref, pred, spacing_mm=SPACING)


def test_empty_masks_follow_the_documented_rules():
    empty = np.zeros(SHAPE, np.uint8)
    lesion = _box(slice(2, 5), slice(2, 5), slice(2, 4))
    both = _metrics(empty, empty)
    assert (both.dice, both.avd_percent, both.lesion_recall, both.lesion_precision) == (
        1.0,
        0.0,
        1.0,
        1.0,
    )
    assert both.lesion_f1 == 1.0 and math.isnan(both.hd95_mm)
    ref_empty = _metrics(empty, lesion)
    assert ref_empty.dice == 0.0 and math.isnan(ref_empty.avd_percent)
    assert math.isnan(ref_empty.hd95_mm)
    assert (ref_empty.lesion_recall, ref_empty.lesion_precision, ref_empty.lesion_f1) == (
        1.0,
        0.0,
        0.0,
    )
    assert ref_empty.volume_pred_ml == pytest.approx(18 * VOXEL_MM3 / 1000)
    pred_empty = _metrics(lesion, empty)
    assert (pred_empty.dice, pred_empty.avd_percent) == (0.0, 100.0)
    assert math.isnan(pred_empty.hd95_mm)
    assert (pred_empty.lesion_recall, pred_empty.lesion_precision, pred_empty.lesion_f1) == (
        0.0,
        1.0,
        0.0,
    )


def test_images_must_share_a_grid_and_arrays_need_a_spacing():
    a = _box(slice(2, 5), slice(2, 5), slice(2, 4))
    ref = MRImage(a, np.diag([*SPACING, 1.0]))
    moved = np.diag([*SPACING, 1.0])
    moved[0, 3] = 5.0
    with pytest.raises(GeometryError, match="same grid"):
        evaluate_segmentation(ref, MRImage(a, moved))
    with pytest.raises(GeometryError):
        evaluate_segmentation(a, a[:, :, :-1], spacing_mm=SPACING)
    with pytest.raises(ValueError, match="spacing_mm"):
        evaluate_segmentation(a, a)
    with pytest.raises(GeometryError, match="disagrees"):
        evaluate_segmentation(ref, a, spacing_mm=(1.0, 1.0, 1.0))
    # an image and an array on its grid are fine, and agree with two images
    assert evaluate_segmentation(ref, a) == evaluate_segmentation(ref, MRImage(a, ref.affine))


def test_metrics_dict_has_units_in_its_names():
    metrics = _metrics(
        _box(slice(2, 5), slice(2, 5), slice(2, 4)), _box(slice(3, 6), slice(2, 5), slice(2, 4))
    )
    assert set(metrics.to_dict()) == {
        "dice",
        "hd95_mm",
        "avd_percent",
        "lesion_recall",
        "lesion_precision",
        "lesion_f1",
        "volume_ref_ml",
        "volume_pred_ml",
        "n_ref_lesions",
        "n_pred_lesions",
    }
