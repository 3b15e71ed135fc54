"""The test-retest pair generator (synthetic.test_retest): truth kept, scan redrawn, known changes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.case import scan_case
from synthetic.test_retest import (
    RetestTruth,
    changed_fraction,
    make_pair,
    make_truth,
    render_scan,
    write_pair,
)

#: A small 1 mm grid (64 x 72 x 60) in MNI space, LAS like the expert masks, around the ventricles.
AFFINE = np.array(
    [[-1.0, 0, 0, 32.0], [0, 1.0, 0, -46.0], [0, 0, 1.0, -10.0], [0, 0, 0, 1]], dtype=np.float64
)
SHAPE = (64, 72, 60)
#: Ellipsoids (MNI centre mm, semi-axes mm): periventricular, deep white matter, a small one.
ELLIPSOIDS = (
    ((-24.0, -12.0, 28.0), (5.0, 8.0, 4.0)),
    ((22.0, 0.0, 24.0), (3.0, 4.0, 3.0)),
    ((12.0, -30.0, 12.0), (2.0, 2.0, 2.5)),
)


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    world = np.einsum("ij,j...->i...", AFFINE[:3, :3], np.indices(SHAPE, dtype=np.float64))
    world += AFFINE[:3, 3, None, None, None]
    out = np.zeros(SHAPE, bool)
    for centre, axes in ELLIPSOIDS:
        r2 = sum(((world[a] - centre[a]) / axes[a]) ** 2 for a in range(3))
        out |= r2 <= 1.0
    return out


@pytest.fixture(scope="module")
def truth(mask: np.ndarray) -> RetestTruth:
    return make_truth(mask, AFFINE, truth_seed=11, slice_mm=3.0)


def test_the_same_truth_scanned_twice_keeps_the_truth_and_changes_the_scan(
    mask: np.ndarray, truth: RetestTruth
) -> None:
    assert truth.volume_ml() > 0.5
    again = make_truth(mask, AFFINE, truth_seed=11, slice_mm=3.0)
    np.testing.assert_array_equal(again.fraction, truth.fraction)
    np.testing.assert_array_equal(again.tissue_level, truth.tissue_level)
    pair = make_pair(truth, 0.0, scan_seeds=(1, 2))
    assert pair.volume_ml[0] == pair.volume_ml[1] == truth.volume_ml()
    assert pair.offset_mm == 0.0
    first, second = pair.scans
    assert not np.allclose(first.flair.affine, second.flair.affine, atol=0.05)
    assert not np.array_equal(first.flair.data, second.flair.data)
    assert first.flair.spacing_mm == pytest.approx((1.0, 1.0, 3.0))
    # deterministic: the same scan seed gives the same scan, byte for byte
    repeat = render_scan(truth, truth.fraction, scan_seed=1)
    np.testing.assert_array_equal(repeat.flair.data, first.flair.data)
    np.testing.assert_array_equal(repeat.flair.affine, first.flair.affine)
    # the lesions are in the image: brighter than the brain around them
    data = np.asarray(first.flair.data)
    assert data.dtype == np.float32 and np.array_equal(data, np.round(data))
    centre = np.linalg.solve(first.flair.affine, [*pair.lesions[0]["centroid_ses01_mm"], 1.0])
    i, j, k = np.round(centre[:3]).astype(int)
    brain = np.asarray(first.brain.data) > 0
    assert data[i, j, k] > 1.15 * np.median(data[brain])
    # per-lesion truth adds up to the total
    total = sum(row["volume_ml"][0] for row in pair.lesions) + pair.unassigned_ml[0]
    assert total == pytest.approx(pair.volume_ml[0], rel=1e-6)
    assert len(pair.lesions) == len(ELLIPSOIDS)


@pytest.mark.parametrize("change", [0.05, 0.25, -0.10])
def test_the_lesion_volume_changes_by_the_requested_fraction(
    truth: RetestTruth, change: float
) -> None:
    fraction, offset_mm = changed_fraction(truth, change)
    ratio = truth.volume_ml(fraction) / truth.volume_ml()
    assert ratio == pytest.approx(1.0 + change, rel=0.005)
    assert np.sign(offset_mm) == np.sign(change)
    # a grown lesion contains the first one (the boundary moves outward everywhere)
    if change > 0:
        assert np.all(fraction >= truth.fraction - 1e-4)
        assert np.all(fraction[~truth.brain] == 0)


def test_per_lesion_truth_follows_the_growth(truth: RetestTruth) -> None:
    pair = make_pair(truth, 0.25, scan_seeds=(3, 4))
    assert pair.volume_ml[1] / pair.volume_ml[0] == pytest.approx(1.25, rel=0.005)
    for row in pair.lesions:
        assert row["volume_ml"][1] > row["volume_ml"][0]
        assert not row["gone_in_ses02"]
    # centroids: patient world -> each scan's world through that scan's head pose
    row = pair.lesions[0]
    for i, scan in enumerate(pair.scans):
        expected = scan.head_pose @ np.array([*row["centroid_patient_mm"], 1.0])
        np.testing.assert_allclose(row[f"centroid_ses0{i + 1}_mm"], expected[:3], atol=1e-9)
    # the largest ellipsoid is lesion 1, near its MNI centre (the deformation moves it a little)
    centre = np.linalg.solve(truth.to_mni, np.array([*ELLIPSOIDS[0][0], 1.0]))[:3]
    assert np.linalg.norm(np.array(row["centroid_patient_mm"]) - centre) < 5.0


def test_a_lesion_free_pair_has_no_lesion_truth() -> None:
    free = make_truth(None, AFFINE, truth_seed=12, grid_shape=SHAPE, slice_mm=1.0)
    assert free.volume_ml() == 0.0
    pair = make_pair(free, 0.0, scan_seeds=(5, 6))
    assert pair.volume_ml == (0.0, 0.0) and pair.lesions == []
    assert pair.scans[0].flair.spacing_mm == pytest.approx((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="lesion-free"):
        changed_fraction(free, 0.1)


def test_the_scan_affine_is_a_rigid_pose_of_the_grid(truth: RetestTruth) -> None:
    scan = render_scan(truth, truth.fraction, scan_seed=7)
    direction = scan.flair.affine[:3, :3]
    spacing = np.linalg.norm(direction, axis=0)
    np.testing.assert_allclose(spacing, [1.0, 1.0, 3.0], atol=1e-9)
    cosines = direction / spacing
    np.testing.assert_allclose(cosines.T @ cosines, np.eye(3), atol=1e-9)
    rotation = scan.head_pose[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_array_equal(scan.head_pose[3], [0, 0, 0, 1])
    angles = np.asarray(scan.settings["head_rotation_deg"])
    assert np.all(np.abs(angles) <= 3.0) and 0 < np.linalg.norm(scan.head_pose[:3, 3]) <= 3 * 3**0.5


def test_the_pair_is_written_as_a_case_the_loader_reads(truth: RetestTruth, tmp_path: Path) -> None:
    pair = make_pair(truth, 0.10, scan_seeds=(8, 9))
    case = write_pair(pair, tmp_path / "pair1", extra={"truth_seed": 11})
    sessions = scan_case(case).sessions
    assert [s.label for s in sessions] == ["ses-01", "ses-02"]
    for i, scan in enumerate(pair.scans):
        path = case / f"ses-0{i + 1}" / "anat" / f"sub-pair1_ses-0{i + 1}_FLAIR.nii.gz"
        image = nib.load(path)
        assert isinstance(image, nib.Nifti1Image)
        np.testing.assert_allclose(image.get_sform(), scan.flair.affine, atol=1e-5)
        np.testing.assert_allclose(image.get_qform(), scan.flair.affine, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(image.dataobj), scan.flair.data)
    record = json.loads((case / "truth.json").read_text())
    assert record["truth_seed"] == 11 and record["change"] == 0.10
    assert record["change_ml"] == pytest.approx(0.10 * record["volume_ml"][0], rel=0.005)
    assert len(record["lesions"]) == len(pair.lesions)


@pytest.mark.realdata
def test_a_real_mask_renders_a_clinical_scan_with_the_brain_in_view(realdata: Path) -> None:
    path = realdata / "open_ms_masks_mni" / "patient13_lesions_mni.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image)
    real = make_truth(np.asarray(image.dataobj) > 0, image.affine, truth_seed=3, slice_mm=4.0)
    scan = render_scan(real, real.fraction, scan_seed=4)
    assert scan.flair.shape == (182, 218, 46)
    assert scan.settings["brain_in_fov"] == 1.0
    fraction, _ = changed_fraction(real, 0.25)
    assert real.volume_ml(fraction) / real.volume_ml() == pytest.approx(1.25, rel=0.005)
