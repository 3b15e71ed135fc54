"""Real files shipped inside the installed packages: Siemens mosaic DWI with CSA b-values (nibabel),
compressed transfer syntaxes and a truncated file (pydicom and pydicom-data), checked against
dcm2niix where it reads them and against their uncompressed twins otherwise.

Files are located on disk; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from imaging.dicom import load_series_folder
from imaging.errors import TruncatedFileError
from imaging.sequence import SequenceClass


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.skip(f"package {module} is not installed")
    return Path(spec.origin).parent


def packaged(name: str) -> Path:
    """A test file shipped by pydicom or pydicom-data (package ``data_store``)."""
    for folder in (
        _package_dir("pydicom") / "data" / "test_files",
        _package_dir("data_store") / "data",
    ):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} is not shipped by the installed pydicom / pydicom-data")


def dcm2niix(folder: Path, out: Path) -> tuple[nib.Nifti1Image, list[float] | None]:
    """Run the reference converter (PyPI wheel) on ``folder``; its image in RAS and its b-values."""
    exe = shutil.which("dcm2niix") or str(Path(__import__("sys").executable).parent / "dcm2niix")
    out.mkdir()
    subprocess.run(
        [exe, "-z", "y", "-f", "ref", "-o", str(out), str(folder)], check=True, capture_output=True
    )
    image = nib.as_closest_canonical(nib.load(out / "ref.nii.gz"))
    bval = out / "ref.bval"
    return image, [float(b) for b in bval.read_text().split()] if bval.exists() else None


@pytest.fixture
def mosaic_dwi(tmp_path: Path) -> Path:
    """nibabel's Siemens mosaic DWI pair (b=0 and b=1000, 48 slices tiled in 896x896)."""
    source = _package_dir("nibabel") / "nicom" / "tests" / "data"
    folder = tmp_path / "mosaic"
    folder.mkdir()
    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        shutil.copy(source / name, folder / name)
    return folder


def test_siemens_mosaic_is_split_and_matches_dcm2niix(mosaic_dwi, tmp_path):
    image = load_series_folder(mosaic_dwi)  # reads the .dcm.gz files directly
    assert image.sequence is SequenceClass.DWI
    assert image.shape == (128, 128, 48, 2)
    assert image.bvals_s_mm2 == (0.0, 1000.0)
    assert any("CSA" in note or "0019,100C" in note for note in image.acquisition.notes)
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in mosaic_dwi.iterdir():  # dcm2niix does not read gzip
        (plain / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    reference, bvals = dcm2niix(plain, tmp_path / "ref")
    ras = image.reoriented("RAS")
    assert ras.shape == reference.shape
    np.testing.assert_allclose(ras.affine, reference.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(ras.data, float), reference.get_fdata())
    assert bvals == [0.0, 1000.0]


def test_mosaic_b_value_comes_from_the_csa_header_when_the_private_tag_is_gone(mosaic_dwi):
    for path in mosaic_dwi.iterdir():
        dataset = pydicom.dcmread(io.BytesIO(gzip.decompress(path.read_bytes())))
        del dataset[0x0019, 0x100C]
        dataset.save_as(path.with_suffix(""), enforce_file_format=True)
        path.unlink()
    image = load_series_folder(mosaic_dwi)
    assert image.bvals_s_mm2 == (0.0, 1000.0)
    assert any("CSA" in note for note in image.acquisition.notes)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_compressed_and_other_transfer_syntaxes_decode_like_the_uncompressed_file(tmp_path, name):
    reference = _single(tmp_path / "ref", packaged("MR_small.dcm"))
    other = _single(tmp_path / "other", packaged(name))
    np.testing.assert_array_equal(other.data, reference.data)
    np.testing.assert_allclose(other.affine, reference.affine)


def test_large_jpeg2000_lossless_decodes_like_its_uncompressed_twin(tmp_path):
    reference = _single(tmp_path / "ref", packaged("MR2_UNCR.dcm"))
    other = _single(tmp_path / "other", packaged("MR2_J2KR.dcm"))
    assert other.shape == (1024, 1024, 1)
    np.testing.assert_array_equal(other.data, reference.data)


@pytest.mark.realdata
@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_enhanced_multiframe_loads_like_the_original(realdata, tmp_path, syntax):
    (source,) = (realdata / "siemens_xa30" / "enhanced_tracew").glob("*.dcm")
    original = load_series_folder(source.parent)
    dataset = pydicom.dcmread(source)
    dataset.compress(syntax)
    folder = tmp_path / "compressed"
    folder.mkdir()
    dataset.save_as(folder / "IM0001", enforce_file_format=True)
    loaded = load_series_folder(folder)
    np.testing.assert_array_equal(loaded.data, original.data)
    np.testing.assert_allclose(loaded.affine, original.affine)
    assert loaded.bvals_s_mm2 == original.bvals_s_mm2


def test_pydicoms_truncated_file_is_a_named_error(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    shutil.copy(packaged("MR_truncated.dcm"), folder / "IM0001")
    with pytest.raises(TruncatedFileError, match="IM0001"):
        load_series_folder(folder)


def test_decimal_rescale_slope_is_applied(tmp_path):
    source = _package_dir("nibabel") / "nicom" / "tests" / "data" / "decimal_rescale.dcm"
    dataset = pydicom.dcmread(source)
    image = _single(tmp_path / "d", source)
    stored = dataset.pixel_array.T.astype(np.float64)
    expected = stored * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    assert image.data.dtype == np.float32
    np.testing.assert_allclose(image.data[..., 0], expected, rtol=1e-6)


def _single(folder: Path, source: Path):
    folder.mkdir(parents=True)
    shutil.copy(source, folder / source.name)
    return load_series_folder(folder)
