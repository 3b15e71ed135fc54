"""Synthetic DICOM phantoms: exact geometry on anisotropic, non-cubic, oblique grids, and every trap a
PACS export sets (missing, duplicate and unevenly spaced slices, mixed series and orientations,
truncated files, stray objects) pinned to its named error."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from imaging.case import scan_case
from imaging.dicom import load_series_folder, scan_dicom
from imaging.errors import (
    AdcUnitError,
    DuplicateSliceError,
    MissingSliceError,
    MixedOrientationError,
    MixedSeriesError,
    NoImagesFoundError,
    TruncatedFileError,
    UnevenSpacingError,
)
from imaging.sequence import SequenceClass
from tests.dicom_factory import Phantom, base_dataset, phantom_volume, rotation, save


def _oblique_phantom(**kwargs) -> Phantom:
    matrix = rotation(12, -7, 20)
    return Phantom(
        data=kwargs.pop("data", phantom_volume((7, 8, 9))),
        row_cosine=matrix[:, 0],
        column_cosine=matrix[:, 1],
        pixel_spacing=(0.9, 0.8),
        slice_spacing=3.3,
        origin_lps=(-31.5, 12.25, 40.0),
        **kwargs,
    )


def test_oblique_anisotropic_series_loads_exactly(tmp_path):
    phantom = _oblique_phantom()
    phantom.write(tmp_path / "a" / "b", names="{index}")  # nested, no extension, shuffled names
    image = load_series_folder(tmp_path)
    assert image.shape == (7, 8, 9)
    np.testing.assert_array_equal(image.data, phantom.data)
    np.testing.assert_allclose(image.affine, phantom.affine_ras(), atol=1e-4)
    assert image.spacing_mm == pytest.approx((0.8, 0.9, 3.3), abs=1e-5)


def test_slices_are_ordered_by_position_even_when_instance_numbers_lie(tmp_path):
    phantom = _oblique_phantom()
    datasets = phantom.slice_datasets()
    for ds, number in zip(datasets, [5, 1, 9, 3, 7, 2, 8, 4, 6], strict=True):
        ds.InstanceNumber = number
        save(ds, tmp_path / f"x{number}")
    image = load_series_folder(tmp_path)
    np.testing.assert_array_equal(image.data, phantom.data)


def test_multivolume_dwi_is_split_into_4d_not_interleaved(tmp_path):
    data = phantom_volume((7, 8, 9, 2))
    phantom = _oblique_phantom(
        data=data,
        b_values=[0, 1000],
        headers={"ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND"]},
    )
    phantom.write(tmp_path)
    image = load_series_folder(tmp_path)
    assert image.sequence is SequenceClass.DWI
    assert image.shape == (7, 8, 9, 2)
    assert image.bvals_s_mm2 == (0.0, 1000.0)
    np.testing.assert_array_equal(image.data, data)
    assert image.spacing_mm[2] == pytest.approx(3.3, abs=1e-5)


def test_volumes_acquired_in_reverse_b_order_keep_their_b_values(tmp_path):
    data = phantom_volume((7, 8, 9, 3))
    phantom = _oblique_phantom(data=data, b_values=[1000, 0, 500])
    phantom.write(tmp_path)
    image = load_series_folder(tmp_path)
    assert image.bvals_s_mm2 == (1000.0, 0.0, 500.0)
    np.testing.assert_array_equal(image.data, data)


def test_a_missing_slice_is_named_with_its_position(tmp_path):
    paths = sorted(_oblique_phantom().write(tmp_path), key=lambda p: _position(p))
    paths[4].unlink()
    with pytest.raises(MissingSliceError, match=r"gap of 6\.60 mm.*1 slice\(s\) missing"):
        load_series_folder(tmp_path)


def test_a_missing_slice_in_one_volume_of_a_dwi_is_named(tmp_path):
    phantom = _oblique_phantom(data=phantom_volume((7, 8, 9, 2)), b_values=[0, 1000])
    paths = phantom.write(tmp_path)
    next(p for p in paths if pydicom.dcmread(p).InstanceNumber == 12).unlink()
    with pytest.raises(MissingSliceError, match=r"1 image\(s\) missing at slice position"):
        load_series_folder(tmp_path)


def test_a_duplicate_slice_is_named(tmp_path):
    paths = _oblique_phantom().write(tmp_path)
    copy = pydicom.dcmread(paths[3])
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    copy.InstanceNumber = 99
    save(copy, tmp_path / "dup")
    with pytest.raises(DuplicateSliceError, match=r"2 images at slice position .*instance 99"):
        load_series_folder(tmp_path)


def test_an_identical_second_copy_of_a_file_is_ignored_with_a_warning(tmp_path, caplog):
    paths = _oblique_phantom().write(tmp_path / "a")
    shutil.copy(paths[0], tmp_path / "a" / "copy_of_first")
    with caplog.at_level(logging.WARNING, logger="imaging"):
        image = load_series_folder(tmp_path)
    assert image.shape == (7, 8, 9)
    assert any("second copy" in r.getMessage() for r in caplog.records)


def test_uneven_spacing_is_named(tmp_path):
    phantom = _oblique_phantom()
    for k, ds in enumerate(phantom.slice_datasets()):
        if k >= 5:  # shift the upper slices by 0.7 mm
            position = np.asarray(ds.ImagePositionPatient, float) + 0.7 * phantom.normal
            ds.ImagePositionPatient = [f"{x:.6f}" for x in position]
        save(ds, tmp_path / f"s{k}")
    with pytest.raises(UnevenSpacingError, match="slice spacing varies"):
        load_series_folder(tmp_path)


def test_mixed_orientations_are_named(tmp_path):
    phantom = Phantom(data=phantom_volume((7, 8, 9)))
    datasets = phantom.slice_datasets()
    datasets[2].ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]  # a coronal image
    for k, ds in enumerate(datasets):
        save(ds, tmp_path / f"s{k}")
    with pytest.raises(MixedOrientationError, match="different orientations"):
        load_series_folder(tmp_path)


def test_two_series_mixed_in_one_folder_are_named(tmp_path):
    study_uid = generate_uid()
    Phantom(data=phantom_volume((7, 8, 9)), headers={"SeriesNumber": 3}, study_uid=study_uid).write(
        tmp_path, names="a{index}"
    )
    Phantom(
        data=phantom_volume((7, 8, 9), seed=2),
        headers={"SeriesNumber": 4, "SeriesDescription": "b"},
        study_uid=study_uid,
    ).write(tmp_path, names="b{index}")
    with pytest.raises(MixedSeriesError, match=r"holds 2 series .*series 3.*series 4"):
        load_series_folder(tmp_path)
    # as a case folder, the same files are simply two series of one study
    (study,) = scan_dicom(tmp_path)
    assert [s.number for s in study.series] == [3, 4]


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.97])
def test_a_truncated_file_is_named(tmp_path, cut):
    paths = _oblique_phantom().write(tmp_path)
    raw = paths[2].read_bytes()
    paths[2].write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(TruncatedFileError, match=paths[2].name):
        load_series_folder(tmp_path)
    if cut < 0.9:  # cut inside the header: the headers-only scan of a case notices it too
        with pytest.raises(TruncatedFileError, match=paths[2].name):
            scan_dicom(tmp_path)


def test_stray_objects_and_non_dicom_files_are_ignored(tmp_path, caplog):
    phantom = _oblique_phantom()
    phantom.write(tmp_path / "SE1")
    (tmp_path / "README").write_text("exported from PACS\n")
    (tmp_path / "Thumbs.db").write_bytes(b"\x00\x01binary junk" * 20)
    state = base_dataset(phantom.study_uid, generate_uid())
    state.SOPClassUID = state.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    state.Modality = "PR"
    save(state, tmp_path / "PS0001")
    report = Dataset()
    report.file_meta = state.file_meta.copy()
    report.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID
    report.Modality = "SR"
    save(report, tmp_path / "SR0001")
    with caplog.at_level(logging.DEBUG, logger="imaging"):
        image = load_series_folder(tmp_path)
    np.testing.assert_array_equal(image.data, phantom.data)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "presentation state" in messages and "structured report" in messages
    assert "README" in messages and "Thumbs.db" in messages


def test_gzip_compressed_files_are_read(tmp_path):
    phantom = _oblique_phantom()
    for path in phantom.write(tmp_path):
        path.with_name(path.name + ".dcm.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    image = load_series_folder(tmp_path)
    np.testing.assert_array_equal(image.data, phantom.data)


def test_a_folder_without_images_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(NoImagesFoundError, match="no DICOM MR image"):
        load_series_folder(tmp_path)
    with pytest.raises(NoImagesFoundError, match="no such"):
        load_series_folder(tmp_path / "absent")


# ---------------------------------------------------------------- vendor b-value tags
def _private(ds: Dataset, group: int, creator: str, offset: int, vr: str, value) -> None:
    ds.add_new((group, 0x0010), "LO", creator)
    ds.add_new((group, 0x1000 | offset), vr, value)


@pytest.mark.parametrize(
    ("vendor", "setter", "source"),
    [
        ("GE", lambda ds, b: _private(ds, 0x0043, "GEMS_PARM_01", 0x39, "IS", [b, 8, 0, 0]), "GE"),
        (
            "GE+1e9",
            lambda ds, b: _private(
                ds, 0x0043, "GEMS_PARM_01", 0x39, "IS", [b + 1_000_000_000, 8, 0, 0]
            ),
            "GE",
        ),
        (
            "Philips",
            lambda ds, b: _private(ds, 0x2001, "Philips Imaging DD 001", 0x03, "FL", b),
            "Philips",
        ),
        (
            "Siemens",
            lambda ds, b: _private(ds, 0x0019, "SIEMENS MR HEADER", 0x0C, "IS", b),
            "Siemens",
        ),
        (
            "UIH",
            lambda ds, b: _private(ds, 0x0065, "United Imaging Healthcare", 0x09, "FD", float(b)),
            "UIH",
        ),
    ],
)
def test_b_values_are_read_from_every_vendor_tag(tmp_path, vendor, setter, source):
    phantom = Phantom(
        data=phantom_volume((7, 8, 9, 2)), headers={"ImageType": ["ORIGINAL", "PRIMARY"]}
    )
    datasets = phantom.slice_datasets()
    for k, ds in enumerate(datasets):
        setter(ds, 0 if ds.InstanceNumber <= 9 else 1000)
        save(ds, tmp_path / f"s{k}")
    image = load_series_folder(tmp_path)
    assert image.sequence is SequenceClass.DWI, vendor
    assert image.bvals_s_mm2 == (0.0, 1000.0)
    assert any(source in note for note in image.acquisition.notes)


def test_a_ge_group_0019_block_is_not_mistaken_for_the_siemens_b_value(tmp_path):
    phantom = Phantom(data=phantom_volume((7, 8, 9)))
    for k, ds in enumerate(phantom.slice_datasets()):
        ds.add_new((0x0019, 0x0010), "LO", "GEMS_ACQU_01")
        ds.add_new((0x0019, 0x100C), "IS", 1234)
        save(ds, tmp_path / f"s{k}")
    image = load_series_folder(tmp_path)
    assert image.sequence is SequenceClass.OTHER
    assert image.bvals_s_mm2 is None


# ---------------------------------------------------------------- ADC units
@pytest.mark.parametrize(("slope", "stored_unit"), [(1.0, "um2/s"), (0.001, "1e-3 mm2/s")])
def test_adc_unit_is_detected_and_converted(tmp_path, slope, stored_unit):
    data = np.full((7, 8, 9), 700, dtype=np.int16)
    data[:2] = 3000
    data[0, 0] = 0
    phantom = Phantom(
        data=data,
        headers={
            "ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"],
            "RescaleSlope": f"{slope:g}",
            "RescaleIntercept": "0",
        },
    )
    phantom.write(tmp_path)
    image = load_series_folder(tmp_path)
    assert image.sequence is SequenceClass.ADC
    assert image.acquisition.unit == "um2/s"
    assert float(image.data[4, 4, 4]) == pytest.approx(700.0)
    assert float(image.data[1, 4, 4]) == pytest.approx(3000.0)
    assert stored_unit in image.acquisition.notes[0]


def test_an_adc_of_unknown_unit_is_refused(tmp_path):
    data = np.full((7, 8, 9), 30, dtype=np.int16)  # fits no unit
    Phantom(data=data, headers={"ImageType": ["DERIVED", "PRIMARY", "ADC"]}).write(tmp_path)
    with pytest.raises(AdcUnitError, match="cannot tell the unit"):
        load_series_folder(tmp_path)


# ---------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("headers", "expected", "reason"),
    [
        (
            {"ScanningSequence": "SE\\IR", "InversionTime": "2500", "EchoTime": "90"},
            "FLAIR",
            "TI 2500",
        ),
        ({"ScanningSequence": "SE\\IR", "InversionTime": "160", "EchoTime": "60"}, "OTHER", "STIR"),
        (  # MPRAGE: inversion recovery, but T1-weighted (a lesion engine's optional input)
            {"ScanningSequence": "GR\\IR", "InversionTime": "1100", "EchoTime": "3"},
            "T1",
            "MPRAGE-type T1",
        ),
        (  # SPGR / FLASH / BRAVO
            {
                "ScanningSequence": "GR",
                "MRAcquisitionType": "3D",
                "RepetitionTime": "8.2",
                "EchoTime": "3.2",
            },
            "T1",
            "SPGR/FLASH",
        ),
        (  # T1 spin echo
            {"ScanningSequence": "SE", "RepetitionTime": "550", "EchoTime": "12"},
            "T1",
            "spin echo with TR 550",
        ),
        (  # a T2 spin echo is not T1
            {"ScanningSequence": "SE", "RepetitionTime": "4000", "EchoTime": "12"},
            "OTHER",
            "not diffusion",
        ),
        (  # a 2-D gradient-echo localizer is not T1
            {
                "ScanningSequence": "GR",
                "MRAcquisitionType": "2D",
                "RepetitionTime": "8.6",
                "EchoTime": "4",
                "SeriesDescription": "localizer",
            },
            "OTHER",
            "not diffusion",
        ),
        (  # nor a 3-D one that says it is a localizer
            {
                "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
                "ScanningSequence": "GR",
                "MRAcquisitionType": "3D",
                "RepetitionTime": "8.6",
                "EchoTime": "4",
            },
            "OTHER",
            "not diffusion",
        ),
        (
            {"ScanningSequence": "SE\\IR", "InversionTime": "2200", "EchoTime": "3"},
            "OTHER",
            "T1-weighted",
        ),
        (
            {"SequenceName": "*tir2d1_15", "InversionTime": "2370", "ScanningSequence": "SE"},
            "FLAIR",
            "TI",
        ),
        ({"SeriesDescription": "AX T2 FLAIR"}, "FLAIR", "description"),
        ({"SeriesDescription": "t2_tse_tra"}, "OTHER", "not diffusion"),
        ({"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "FA"]}, "OTHER", "FA"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]}, "DWI", "TRACEW"),
        ({"SeriesDescription": "Apparent Diffusion Coefficient (mm2/s)"}, "OTHER", "cannot"),
    ],
)
def test_classification_from_headers_with_reasons(tmp_path, headers, expected, reason):
    data = np.full((7, 8, 9), 800, dtype=np.int16)
    Phantom(data=data, headers=headers).write(tmp_path)
    if reason == "cannot":  # an ADC by description with integer values of 800: um2/s
        image = load_series_folder(tmp_path)
        assert image.sequence is SequenceClass.ADC
        assert "description" in image.acquisition.classification_reasons[0]
        return
    image = load_series_folder(tmp_path)
    assert image.sequence.value == expected
    assert reason in " ".join(image.acquisition.classification_reasons)


# ---------------------------------------------------------------- studies and sessions
def test_studies_become_sessions_ordered_by_date_and_labelled(tmp_path):
    for index, (date, time) in enumerate(
        [("20230322", "101500"), ("20230314", "093000"), ("20230314", "154500")]
    ):
        Phantom(
            data=phantom_volume((7, 8, 9), seed=index),
            headers={"StudyDate": date, "StudyTime": time},
        ).write(tmp_path / f"export{index}")
    case = scan_case(tmp_path)
    assert [s.label for s in case.sessions] == ["ses-20230314", "ses-20230314b", "ses-20230322"]
    assert case.layout == "dicom"


def _position(path: Path) -> float:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    normal = np.cross(
        np.asarray(ds.ImageOrientationPatient[:3], float),
        np.asarray(ds.ImageOrientationPatient[3:], float),
    )
    return float(np.asarray(ds.ImagePositionPatient, float) @ normal)
