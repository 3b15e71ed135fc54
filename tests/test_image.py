"""The image object: geometry derived from the affine, reorientation and the NIfTI round trip."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.errors import GeometryError, NiftiLayoutError
from imaging.image import Acquisition, MRImage
from imaging.nifti import load_nifti, save_nifti
from imaging.sequence import SequenceClass
from imaging.units import mm3_to_ml
from tests.dicom_factory import rotation


def _oblique_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation(8, -5, 12) @ np.diag([0.9, 0.8, 3.0])
    affine[:3, 3] = [-90.0, 110.0, -40.0]
    return affine


def test_spacing_and_voxel_volume_come_from_the_affine():
    image = MRImage(np.zeros((7, 8, 9)), _oblique_affine())
    assert image.spacing_mm == pytest.approx((0.9, 0.8, 3.0))
    assert image.voxel_volume_mm3 == pytest.approx(0.9 * 0.8 * 3.0)


def test_cube_lesion_volume_is_exact_in_ml():
    data = np.zeros((7, 8, 9), dtype=np.uint8)
    data[1:4, 2:6, 3:5] = 1  # 3 * 4 * 2 = 24 voxels
    image = MRImage(data, np.diag([0.9, 0.9, 3.0, 1.0]))
    assert mm3_to_ml(data.sum() * image.voxel_volume_mm3) == pytest.approx(24 * 2.43 / 1000)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PIR", "SAL"])
def test_reorientation_keeps_every_voxel_at_its_world_position(codes):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(7, 8, 9)).astype(np.float32)
    image = MRImage(data, _oblique_affine())
    turned = image.reoriented(codes)
    assert turned.orientation == codes
    assert turned.voxel_volume_mm3 == pytest.approx(image.voxel_volume_mm3)
    # the voxel with the largest value sits at the same point in space
    before = image.voxel_to_world_mm(np.unravel_index(np.argmax(data), data.shape))
    after = turned.voxel_to_world_mm(np.unravel_index(np.argmax(turned.data), turned.shape))
    np.testing.assert_allclose(after, before, atol=1e-9)
    assert sorted(turned.data.ravel()) == sorted(data.ravel())


def test_reorientation_of_a_4d_image_keeps_b_values():
    data = np.arange(7 * 8 * 9 * 2, dtype=np.int16).reshape(7, 8, 9, 2)
    image = MRImage(data, np.diag([-2.0, 1.8, 5.0, 1.0]), sequence="dwi", bvals_s_mm2=[0, 1000])
    turned = image.reoriented("RAS")
    assert turned.shape == (7, 8, 9, 2)
    assert turned.bvals_s_mm2 == (0.0, 1000.0)
    np.testing.assert_array_equal(turned.data[..., 1], image.data[::-1, :, :, 1])


def test_data_are_read_only_and_the_affine_is_a_copy():
    image = MRImage(np.zeros((7, 8, 9)), np.eye(4))
    with pytest.raises(ValueError, match="read-only"):
        image.data[0, 0, 0] = 1
    affine = image.affine
    affine[0, 0] = 5
    assert image.affine[0, 0] == 1


@pytest.mark.parametrize(
    ("data", "affine", "bvals", "match"),
    [
        (np.zeros((7, 8)), np.eye(4), None, "3-D or 4-D"),
        (np.zeros((7, 8, 9)), np.eye(3), None, "4x4"),
        (np.zeros((7, 8, 9)), np.diag([1, 1, 0, 1]), None, "singular"),
        (np.zeros((7, 8, 9, 2)), np.eye(4), [0], "one per volume"),
    ],
)
def test_invalid_images_are_refused_with_a_named_error(data, affine, bvals, match):
    with pytest.raises(GeometryError, match=match):
        MRImage(data, affine, bvals_s_mm2=bvals)


@pytest.mark.parametrize("name", ["x_dwi.nii.gz", "x_dwi.nii"])
def test_nifti_round_trip_keeps_values_geometry_bvals_and_metadata(tmp_path, name):
    data = np.arange(7 * 8 * 9 * 2, dtype=np.int16).reshape(7, 8, 9, 2)
    acquisition = Acquisition(series_description="ep2d_diff", echo_time_ms=89.0, vendor="SIEMENS")
    image = MRImage(
        data,
        _oblique_affine(),
        sequence=SequenceClass.DWI,
        bvals_s_mm2=[0, 1000],
        acquisition=acquisition,
    )
    written = save_nifti(image, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    back = load_nifti(tmp_path / name)
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
    assert back.sequence is SequenceClass.DWI
    assert back.bvals_s_mm2 == (0.0, 1000.0)
    assert back.acquisition.echo_time_ms == pytest.approx(89.0)
    assert back.acquisition.series_description == "ep2d_diff"


def test_adc_in_1e3_mm2s_is_converted_to_um2s_on_load(tmp_path):
    values = np.full((7, 8, 9), 0.7, dtype=np.float32)
    values[0] = 3.0
    save_nifti(MRImage(values, np.eye(4)), tmp_path / "a_ADC.nii.gz")
    adc = load_nifti(tmp_path / "a_ADC.nii.gz")
    assert adc.acquisition.unit == "um2/s"
    assert float(adc.data[1, 1, 1]) == pytest.approx(700.0)
    assert "1e-3 mm2/s" in adc.acquisition.notes[0]


def test_failed_nifti_write_leaves_nothing_behind(tmp_path):
    image = MRImage(np.zeros((7, 8, 9), dtype=object), np.eye(4))  # nibabel cannot store objects
    with pytest.raises(Exception):  # noqa: B017 - whatever nibabel raises
        save_nifti(image, tmp_path / "bad.nii.gz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NiftiLayoutError, match=r"\.nii"):
        save_nifti(MRImage(np.zeros((7, 8, 9)), np.eye(4)), tmp_path / "bad.img")
