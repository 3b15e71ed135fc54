"""The viewer's slices on phantoms: orientation (radiological), true aspect of anisotropic voxels,
windows, overlays, highlight outlines, the crosshair, and a round trip through NIfTI in a non-RAS
orientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from imaging.display import (
    DWI_RGB,
    FLAIR_RGB,
    HIGHLIGHT_RGB,
    Overlay,
    Volume,
    Window,
    compose,
    crosshair,
    load_volume,
    presets,
)

# A non-cubic grid with anisotropic voxels: 0.9 x 1.2 x 4 mm, shape (20, 30, 8), RAS-aligned.
SPACING = (0.9, 1.2, 4.0)
SHAPE = (20, 30, 8)


def _volume(data: np.ndarray) -> Volume:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-9.0, -18.0, -16.0)
    return Volume(data=data, affine=affine)


def _marker(i: int, j: int, k: int, value: float = 100.0) -> np.ndarray:
    data = np.zeros(SHAPE, np.float32)
    data[i, j, k] = value
    return data


def test_axial_is_radiological_with_anterior_up():
    # A voxel on the patient's right (high i), anterior (high j): top-left of the screen.
    vol = _volume(_marker(18, 27, 3))
    cut = vol.cut("axial", 3)
    assert cut.shape == (30, 20)  # rows = j (y), columns = i (x)
    rows, cols = np.nonzero(cut)
    assert (rows[0], cols[0]) == (30 - 1 - 27, 20 - 1 - 18)


def test_coronal_and_sagittal_have_superior_up():
    vol = _volume(_marker(2, 5, 7))  # patient left, posterior, superior
    coronal = vol.cut("coronal", 5)
    assert coronal.shape == (8, 20)
    assert tuple(int(v[0]) for v in np.nonzero(coronal)) == (0, 20 - 1 - 2)  # top row, screen right
    sagittal = vol.cut("sagittal", 2)
    assert sagittal.shape == (8, 30)
    assert tuple(int(v[0]) for v in np.nonzero(sagittal)) == (0, 30 - 1 - 5)  # anterior on the left


def test_slice_index_follows_world_position_and_clips():
    vol = _volume(np.zeros(SHAPE, np.float32))
    world = vol.to_world(np.array([4.0, 10.0, 6.0]))
    assert vol.slice_index("axial", world) == 6
    assert vol.slice_index("coronal", world) == 10
    assert vol.slice_index("sagittal", world) == 4
    assert vol.slice_index("axial", world + np.array([0, 0, 1000.0])) == SHAPE[2] - 1


def test_cells_have_square_pixels_in_mm():
    vol = _volume(np.ones(SHAPE, np.float32))
    axial = compose(vol, "axial", 0, Window(0.5, 1.0), [])
    # 30 rows of 1.2 mm and 20 columns of 0.9 mm -> rows stretched to 0.9 mm: 40 x 20
    assert axial.shape == (40, 20, 3)
    coronal = compose(vol, "coronal", 0, Window(0.5, 1.0), [])
    assert coronal.shape == (round(8 * 4.0 / 0.9), 20, 3)
    sagittal = compose(vol, "sagittal", 0, Window(0.5, 1.0), [])
    assert sagittal.shape == (round(8 * 4.0 / 1.2), 30, 3)


def test_window_maps_centre_and_edges():
    window = Window(center=700.0, width=1000.0)
    values = np.array([100.0, 200.0, 700.0, 1200.0, 3000.0])
    assert window.apply(values).tolist() == [0, 0, 127, 255, 255]


def test_fill_overlay_blends_colour_and_outline_draws_edges_only():
    image = _volume(np.full(SHAPE, 50.0, np.float32))
    labels = np.zeros(SHAPE, np.int32)
    labels[5:11, 10:16, 2] = 1  # 6 x 6 voxels on axial slice 2
    overlay = Overlay(_volume(labels), FLAIR_RGB)
    filled = compose(image, "axial", 2, Window(50, 100), [overlay], opacity=0.5)
    grey = 127
    coloured = np.all(filled != grey, axis=2)
    # 6 columns x (6 rows of 1.2 mm -> 8 rows of 0.9 mm)
    assert coloured.sum() == 6 * 8
    inside = filled[coloured][0]
    assert tuple(inside) == tuple(int(0.5 * grey + 0.5 * c) for c in FLAIR_RGB)
    outlined = compose(image, "axial", 2, Window(50, 100), [overlay], outline=True)
    edge = np.all(outlined == FLAIR_RGB, axis=2)
    assert edge.sum() == 2 * 6 + 2 * 8 - 4  # the ring of a 8 x 6 block
    other_slice = compose(image, "axial", 3, Window(50, 100), [overlay])
    assert np.all(other_slice == grey)  # no lesion on slice 3: no colour


def test_highlighted_lesions_get_a_red_outline_others_do_not():
    image = _volume(np.zeros(SHAPE, np.float32))
    labels = np.zeros(SHAPE, np.int32)
    labels[2:6, 2:6, 4] = 1
    labels[12:16, 20:24, 4] = 2
    cell = compose(
        image, "axial", 4, Window(0.5, 1.0), [Overlay(_volume(labels), DWI_RGB, frozenset({2}))]
    )
    red = np.all(cell == HIGHLIGHT_RGB, axis=2)
    _, cols = np.nonzero(red)
    # lesion 2 (i 12-15, j 20-23) sits at screen columns 4-7; lesion 1 (i 2-5) at columns 14-17
    assert set(cols.tolist()) <= set(range(20 - 16, 20 - 12))
    assert red.sum() > 0


def test_missing_image_gives_a_black_cell_of_the_reference_size():
    reference = _volume(np.ones(SHAPE, np.float32))
    cell = compose(None, "axial", 0, Window(0.5, 1.0), [], reference=reference)
    assert cell.shape == (40, 20, 3)
    assert cell.max() == 0
    with pytest.raises(ValueError, match="reference"):
        compose(None, "axial", 0, Window(0.5, 1.0), [])


def test_crosshair_centre_is_left_free_and_arms_are_green():
    vol = _volume(np.zeros(SHAPE, np.float32))
    cell = compose(vol, "axial", 3, Window(0.5, 1.0), [])
    world = vol.to_world(np.array([10.0, 15.0, 3.0]))
    marked = crosshair(cell, vol, "axial", world)
    green = np.all(marked == (60, 255, 60), axis=2)
    rows, cols = np.nonzero(green)
    centre_row = round((30 - 1 - 15) / 29 * (40 - 1))
    centre_col = round((20 - 1 - 10) / 19 * (20 - 1))
    assert green.sum() > 0 and not green[centre_row, centre_col]
    assert set(rows[cols == centre_col].tolist()) | set(cols[rows == centre_row].tolist())
    assert cell.max() == 0  # the input is not changed


def test_load_volume_reorients_lps_files_to_ras(tmp_path):
    data = _marker(18, 27, 3)  # patient right, anterior in RAS index terms
    ras = np.diag([*SPACING, 1.0])
    lps_data = data[::-1, ::-1, :]  # the same image stored LPS
    lps = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    lps[:3, 3] = ((SHAPE[0] - 1) * SPACING[0], (SHAPE[1] - 1) * SPACING[1], 0.0)
    nib.save(nib.Nifti1Image(lps_data, lps), tmp_path / "lps.nii.gz")
    loaded = load_volume(tmp_path / "lps.nii.gz")
    assert nib.aff2axcodes(loaded.affine) == ("R", "A", "S")
    np.testing.assert_allclose(loaded.affine, ras, atol=1e-5)
    assert tuple(int(v[0]) for v in np.nonzero(loaded.data)) == (18, 27, 3)
    assert not loaded.data.flags.writeable
    labels = load_volume(tmp_path / "lps.nii.gz", labels=True)
    assert labels.data.dtype == np.int32


def test_presets_adc_in_um2s_and_percentile_windows():
    adc = presets("ADC", None)
    assert adc["ADC 0-2000 um2/s"] == Window(1000, 2000)
    vol = Volume(
        data=np.arange(1, 101, dtype=np.float32).reshape(4, 5, 5),
        affine=np.eye(4),
        percentiles={1.0: 2.0, 50.0: 50.0, 99.0: 99.0, 99.5: 100.0},
    )
    auto = presets("FLAIR", vol)["auto (1-99.5 %)"]
    assert (auto.center, auto.width) == (51.0, 98.0)


def test_png_bytes_round_trip_is_lossless():
    import io

    from PIL import Image

    from imaging.display import png_bytes

    rgb = np.random.default_rng(7).integers(0, 256, size=(37, 23, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(rgb))))
    assert decoded.shape == (37, 23, 3)
    np.testing.assert_array_equal(decoded, rgb)


def test_rows_put_cells_side_by_side_with_a_gap_and_labels_stay_in_the_corner():
    from imaging.display import annotate, side_by_side

    cells = [np.full((40, 20, 3), v, np.uint8) for v in (10, 100, 200)]
    row = side_by_side(cells, gap_px=4)
    assert row.shape == (40, 3 * 20 + 2 * 4, 3)
    assert row[0, 20:24].tolist() == [[40, 40, 40]] * 4
    assert row[5, 24 + 5].tolist() == [100, 100, 100] and row[5, 48 + 5].tolist() == [200] * 3
    with pytest.raises(ValueError, match="same height"):
        side_by_side([cells[0], np.zeros((39, 20, 3), np.uint8)])
    big = np.zeros((100, 120, 3), np.uint8)
    marked = annotate(big, "ADC")
    changed = np.argwhere(np.any(marked != 0, axis=2))
    assert changed.size and changed[:, 0].max() < 25 and changed[:, 1].max() < 40
    assert big.max() == 0
