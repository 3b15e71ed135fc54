"""Real scanner files (../shared/realdata) load exactly as dcm2niix, the field's reference, makes them.

Both sides are reoriented to RAS before comparing: shape, voxel values, affine (within 1e-3 mm) and
b-values must agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.dicom import load_series_folder, scan_dicom
from imaging.dicom.discover import DicomSeries
from imaging.sequence import SequenceClass

pytestmark = pytest.mark.realdata

CASES = [
    ("siemens_xa30/classic_adc", SequenceClass.ADC),
    ("siemens_xa30/classic_tracew", SequenceClass.DWI),
    ("siemens_xa30/enhanced_adc", SequenceClass.ADC),
    ("siemens_xa30/enhanced_tracew", SequenceClass.DWI),
    ("ge_mr29_dwi", SequenceClass.DWI),
    ("uih_dti_grid", SequenceClass.DWI),
]
#: Folders whose b-values are not whole numbers (UIH stores the effective b-value as a double):
#: dcm2niix writes them with 6 significant digits (%g), so ours are compared as dcm2niix writes them.
BVALS_AS_WRITTEN = {"uih_dti_grid"}


def _reference(realdata: Path, folder: str) -> tuple[nib.Nifti1Image, list[str] | None]:
    ref = realdata / f"{folder}.ref"
    image = nib.as_closest_canonical(nib.load(ref / "dcm2niix.nii.gz"))
    bval = ref / "dcm2niix.bval"
    return image, bval.read_text().split() if bval.exists() else None


def test_every_realdata_dicom_folder_is_covered(realdata):
    folders = {p.parent.relative_to(realdata).as_posix() for p in realdata.rglob("dcm2niix.nii.gz")}
    assert {f.removesuffix(".ref") for f in folders} == {folder for folder, _ in CASES}


@pytest.mark.parametrize(("folder", "sequence"), CASES, ids=[c[0] for c in CASES])
def test_loads_like_dcm2niix(realdata, folder, sequence):
    image = load_series_folder(realdata / folder)
    reference, bvals = _reference(realdata, folder)
    assert image.sequence is sequence, image.acquisition.classification_reasons
    ras = image.reoriented("RAS")
    assert ras.shape == reference.shape
    np.testing.assert_allclose(ras.affine, reference.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(ras.data, dtype=np.float64), reference.get_fdata())
    if sequence is SequenceClass.DWI and folder in BVALS_AS_WRITTEN:
        assert bvals is not None
        assert [f"{b:g}" for b in image.bvals_s_mm2 or ()] == bvals
    elif sequence is SequenceClass.DWI:
        expected = (
            [float(b) for b in bvals]
            if bvals is not None
            else [_bval_from_frames(realdata, folder)]
        )
        assert list(image.bvals_s_mm2 or ()) == expected
    else:
        assert image.bvals_s_mm2 is None
        assert image.acquisition.unit == "um2/s"


def _bval_from_frames(realdata: Path, folder: str) -> float:
    """dcm2niix writes no .bval for the enhanced trace file: read its per-frame b-values directly."""
    import pydicom

    (path,) = (realdata / folder).glob("*.dcm")
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    values = {
        float(item.MRDiffusionSequence[0].DiffusionBValue)
        for item in dataset.PerFrameFunctionalGroupsSequence
    }
    assert len(values) == 1
    return values.pop()


def test_ge_b0_files_without_the_standard_tag_still_get_b0(realdata):
    import pydicom

    files = sorted((realdata / "ge_mr29_dwi").glob("i*"))
    lacking = [
        f for f in files if (0x0018, 0x9087) not in pydicom.dcmread(f, stop_before_pixels=True)
    ]
    assert len(lacking) == 2  # the b=0 images of the two slices
    image = load_series_folder(realdata / "ge_mr29_dwi")
    assert image.bvals_s_mm2 == (0.0, *([1000.0] * 6))
    assert any("GE (0043,1039)" in note for note in image.acquisition.notes)


def test_the_non_dicom_file_is_ignored_with_a_debug_note(realdata, caplog):
    assert (realdata / "ge_mr29_dwi" / "LICENSE.txt").is_file()
    with caplog.at_level(logging.DEBUG, logger="imaging"):
        studies = scan_dicom(realdata / "ge_mr29_dwi")
    assert len(studies) == 1 and len(studies[0].series) == 1
    series: DicomSeries = studies[0].series[0]
    assert len(series.paths) == 14
    assert any(
        "LICENSE.txt" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records
    )


def test_siemens_private_b_value_is_read_when_the_standard_tag_is_absent(realdata):
    image = load_series_folder(realdata / "siemens_xa30" / "classic_tracew")
    assert image.bvals_s_mm2 == (2500.0,)
    assert any("Siemens (0019,100C)" in note for note in image.acquisition.notes)


def test_the_whole_realdata_tree_groups_into_studies_and_series(realdata):
    studies = scan_dicom(realdata)
    per_study = sorted(len(s.series) for s in studies)
    # GE DWI; UIH grid DTI; XA30 enhanced ADC+TRACEW; XA30 classic ADC+TRACEW
    assert per_study == [1, 1, 2, 2]
    assert [s.study_date.isoformat() for s in studies if s.study_date] == sorted(
        s.study_date.isoformat() for s in studies if s.study_date
    )
    for study in studies:
        for series in study.series:
            assert series.problem is None
            assert series.sequence in (SequenceClass.DWI, SequenceClass.ADC)


def test_uih_grid_b_values_are_the_scanner_s_effective_values(realdata):
    import pydicom

    files = sorted((realdata / "uih_dti_grid").glob("*.dcm"))
    stored = [
        float(pydicom.dcmread(f, stop_before_pixels=True)[0x0065, 0x1009].value) for f in files
    ]
    image = load_series_folder(realdata / "uih_dti_grid")
    assert image.bvals_s_mm2 == tuple(stored)  # b=0 is stored as 1.2513, the others as 929.75
    assert image.acquisition.notes == ("b-values from UIH (0065,1009)",)


def test_convert_writes_the_uih_grid_as_dcm2niix_does(realdata, tmp_path):
    from typer.testing import CliRunner

    from followup.cli import app

    out = tmp_path / "dti.nii.gz"
    result = CliRunner().invoke(app, ["convert", str(realdata / "uih_dti_grid"), str(out)])
    assert result.exit_code == 0, result.output
    ref = realdata / "uih_dti_grid.ref"
    assert (tmp_path / "dti.bval").read_text().split() == (
        ref / "dcm2niix.bval"
    ).read_text().split()
    ours = nib.as_closest_canonical(nib.load(out))
    theirs = nib.as_closest_canonical(nib.load(ref / "dcm2niix.nii.gz"))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
