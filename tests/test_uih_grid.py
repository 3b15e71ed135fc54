"""United Imaging grid ("VFRAME") images, written with pydicom as UIH scanners write them: slices tiled
in one image, no ImagePositionPatient, per-slice positions in the private sequence (0065,1051).

The phantom is oblique, anisotropic, with non-square tiles and an empty grid cell, so a wrong tile
layout, tile-to-position pairing or axis order cannot pass. (The real UIH scan is compared with
dcm2niix in test_realdata_dicom.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian
from typer.testing import CliRunner

from followup.cli import app
from imaging.dicom import load_series_folder, scan_dicom
from imaging.dicom.uih import is_uih_grid, uih_grid
from imaging.errors import UihGridError
from imaging.sequence import SequenceClass
from tests.dicom_factory import Phantom, phantom_volume, rotation, save

#: (columns, rows, slices, volumes): 6x4 tiles, 5 slices -> 3 across, 2 down, one empty cell.
SHAPE = (6, 4, 5, 2)


def _phantom() -> Phantom:
    matrix = rotation(14, -9, 23)
    return Phantom(
        data=phantom_volume(SHAPE),
        row_cosine=matrix[:, 0],
        column_cosine=matrix[:, 1],
        pixel_spacing=(1.1, 0.7),
        slice_spacing=3.3,
        origin_lps=(-41.5, 17.25, -12.0),
        b_values=(0.0, 1000.0),
    )


def _write(folder: Path, datasets: list[pydicom.Dataset]) -> Path:
    for v, ds in enumerate(datasets):
        save(ds, folder / f"grid{v:02d}.dcm")
    return folder


def _sequence(ds: pydicom.Dataset) -> pydicom.Sequence:
    return ds.private_block(0x0065, "Image Private Header")[0x51].value


def test_the_phantom_files_look_like_the_scanner_s():
    ds = _phantom().uih_grid_datasets()[0]
    assert "ImagePositionPatient" not in ds
    assert is_uih_grid(ds)
    assert (ds.Rows, ds.Columns) == (2 * 4, 3 * 6)
    grid = uih_grid(ds)
    assert (grid.n_tiles, grid.across, grid.down) == (5, 3, 2)
    assert (grid.tile_rows, grid.tile_columns) == (4, 6)


def test_a_uih_grid_loads_exactly(tmp_path):
    phantom = _phantom()
    image = load_series_folder(_write(tmp_path, phantom.uih_grid_datasets()))
    assert image.sequence is SequenceClass.DWI
    assert image.shape == SHAPE
    np.testing.assert_array_equal(image.data, phantom.data)
    np.testing.assert_allclose(image.affine, phantom.affine_ras(), atol=1e-4)
    assert image.spacing_mm == pytest.approx((0.7, 1.1, 3.3), abs=1e-5)
    assert image.bvals_s_mm2 == (0.0, 1000.0)
    assert "b-values from UIH (0065,1009)" in image.acquisition.notes


def test_each_tile_goes_to_the_position_of_its_own_item(tmp_path):
    phantom = _phantom()
    order = [3, 0, 4, 1, 2]  # tiles (and their items) not in spatial order
    image = load_series_folder(_write(tmp_path, phantom.uih_grid_datasets(tile_order=order)))
    np.testing.assert_array_equal(image.data, phantom.data)
    np.testing.assert_allclose(image.affine, phantom.affine_ras(), atol=1e-4)


def test_an_implicit_vr_grid_whose_private_tags_read_as_un_loads_too(tmp_path):
    phantom = _phantom()
    datasets = phantom.uih_grid_datasets()
    for ds in datasets:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    folder = _write(tmp_path, datasets)
    header = pydicom.dcmread(folder / "grid00.dcm", stop_before_pixels=True)
    assert header[0x0065, 0x1051].VR == "UN"  # pydicom cannot know the private sequence
    image = load_series_folder(folder)
    np.testing.assert_array_equal(image.data, phantom.data)
    np.testing.assert_allclose(image.affine, phantom.affine_ras(), atol=1e-4)
    assert image.bvals_s_mm2 == (0.0, 1000.0)  # FD values read from UN bytes, b=0 included:
    assert not any("no b-value" in note for note in image.acquisition.notes)  # not a default 0


def test_scanning_headers_only_gives_the_grid_shape(tmp_path):
    _write(tmp_path, _phantom().uih_grid_datasets())
    (study,) = scan_dicom(tmp_path)
    (series,) = study.series
    assert series.problem is None
    assert series.layout is not None and series.layout.shape == SHAPE
    assert series.b_values == [0.0, 1000.0]


def test_inspect_and_convert_on_a_uih_grid_folder(tmp_path):
    phantom = _phantom()
    _write(tmp_path / "uih", phantom.uih_grid_datasets())
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(tmp_path / "uih"), "--json"])
    assert result.exit_code == 0, result.output
    (case,) = json.loads(result.stdout)["cases"]
    (session,) = case["sessions"]
    (series,) = session["series"]
    assert series["shape"] == list(SHAPE)
    assert series["voxel_size_mm"] == pytest.approx([0.7, 1.1, 3.3])
    out = tmp_path / "out" / "dwi.nii.gz"
    result = runner.invoke(app, ["convert", str(tmp_path / "uih"), str(out)])
    assert result.exit_code == 0, result.output
    written = nib.load(out)
    np.testing.assert_array_equal(np.asarray(written.dataobj), phantom.data)
    np.testing.assert_allclose(written.affine, phantom.affine_ras(), atol=1e-4)
    assert (tmp_path / "out" / "dwi.bval").read_text().split() == ["0", "1000"]


def _broken(tmp_path: Path, damage) -> Path:
    datasets = _phantom().uih_grid_datasets()
    damage(datasets[1])
    return _write(tmp_path, datasets)


def _one_item_short(ds: pydicom.Dataset) -> None:
    del _sequence(ds)[-1]


def _item_without_position(ds: pydicom.Dataset) -> None:
    del _sequence(ds)[2].ImagePositionPatient


def _no_sequence(ds: pydicom.Dataset) -> None:
    del ds[ds.private_block(0x0065, "Image Private Header").get_tag(0x51)]


def _no_tile_count(ds: pydicom.Dataset) -> None:
    del ds[ds.private_block(0x0065, "Image Private Header").get_tag(0x50)]


def _no_orientation(ds: pydicom.Dataset) -> None:
    del ds.ImageOrientationPatient


def _not_whole_tiles(ds: pydicom.Dataset) -> None:
    pixels = ds.pixel_array[:, :-1]
    ds.Columns = pixels.shape[1]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            _one_item_short,
            "says 5 slices in (0065,1050) but its position sequence (0065,1051) has 4",
        ),
        (_item_without_position, "slice 3 of 5 in the UIH grid has no usable ImagePositionPatient"),
        (_no_sequence, "without its per-slice positions"),
        (_no_tile_count, "without a valid number of slices in (0065,1050)"),
        (_not_whole_tiles, "the image is 17 columns x 8 rows, not a whole number of tiles"),
        (_no_orientation, "UIH grid image without ImageOrientationPatient"),
    ],
    ids=[
        "item-missing",
        "item-without-position",
        "no-sequence",
        "no-count",
        "not-whole-tiles",
        "no-orientation",
    ],
)
def test_inconsistent_grids_get_a_named_error(tmp_path, damage, message):
    folder = _broken(tmp_path, damage)
    with pytest.raises(UihGridError) as caught:
        load_series_folder(folder)
    assert message in str(caught.value)
    assert "grid01.dcm" in str(caught.value)  # names the bad file
    (study,) = scan_dicom(folder)  # a scan lists the series with its problem instead of stopping
    (series,) = study.series
    assert series.problem is not None and series.problem.startswith("UihGridError")
