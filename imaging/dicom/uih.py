"""United Imaging (UIH) grid images: many slices tiled in one 2-D image ("VFRAME").

UIH scanners can save an EPI volume as one file whose pixel data hold every slice as a tile of a grid,
like a Siemens mosaic, but with their own private header instead of Siemens' CSA header:

- ImageType ends in ``VFRAME`` and the file has **no** ImagePositionPatient;
- (0065,1050) "MR Number Of Slice In Volume" (DS) is the number of tiles ``n``;
- (0065,1051) "MR VFrame Sequence" (SQ) holds one item per tile, in tile order, each with the tile's
  own ImagePositionPatient (the position of that slice's first voxel, not of the grid's corner);
- ImageOrientationPatient and PixelSpacing at the top level hold for every tile.

Tiles are laid out row by row, ``ceil(sqrt(n))`` across and ``ceil(n / across)`` down (20 slices of
64x64 make a 320x256 image), the rule GDCM's ``SplitGridFilter`` and dcm2niix use. Nothing here is
read from the Siemens-specific corner correction. Grids whose header and pixel matrix disagree raise
:class:`~imaging.errors.UihGridError` naming what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.values import convert_SQ

from imaging.dicom.bvalues import private_tag
from imaging.errors import UihGridError

__all__ = ["UIH_CREATOR", "UihGrid", "is_uih_grid", "split_tiles", "uih_grid"]

#: Private creator of the UIH image header block in group 0065.
UIH_CREATOR = "Image Private Header"
_N_TILES = (0x0065, 0x50)
_VFRAME_SEQUENCE = (0x0065, 0x51)


@dataclass(frozen=True, slots=True)
class UihGrid:
    """How one UIH grid image splits into slices.

    ``positions_lps`` (mm, DICOM patient coordinates) are in tile order: tile ``k`` sits at grid row
    ``k // across`` and grid column ``k % across`` and is ``tile_rows`` x ``tile_columns`` pixels.
    """

    n_tiles: int
    across: int
    down: int
    tile_rows: int
    tile_columns: int
    positions_lps: tuple[tuple[float, float, float], ...]


def is_uih_grid(dataset: Dataset) -> bool:
    """Whether the data set is a UIH grid image.

    ImageType holds ``VFRAME`` (single-frame file) and either ImagePositionPatient is absent (the
    positions can only come from the grid's private sequence) or the (0065,1051) sequence is there.
    """
    image_type = [str(v).strip().upper() for v in dataset.get("ImageType", [])]
    if "VFRAME" not in image_type or "PerFrameFunctionalGroupsSequence" in dataset:
        return False
    if "ImagePositionPatient" not in dataset:
        return True
    return private_tag(dataset, _VFRAME_SEQUENCE[0], _VFRAME_SEQUENCE[1], UIH_CREATOR) is not None


def _number_of_tiles(dataset: Dataset, path: str) -> int:
    tag = private_tag(dataset, _N_TILES[0], _N_TILES[1], UIH_CREATOR)
    raw: Any = None if tag is None else dataset[tag].value
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="ignore").strip("\x00 ")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise UihGridError(
            f"{path}: UIH grid image (ImageType VFRAME) without a valid number of slices in "
            f"(0065,1050) (found {raw!r}); it cannot be split into slices. Export the series "
            "again with one image per slice, or convert it with dcm2niix"
        )
    return int(value)


def _tile_positions(dataset: Dataset, path: str, n_tiles: int) -> tuple[tuple[float, ...], ...]:
    tag = private_tag(dataset, _VFRAME_SEQUENCE[0], _VFRAME_SEQUENCE[1], UIH_CREATOR)
    items = None if tag is None else dataset[tag].value
    if isinstance(items, bytes):
        # Implicit-VR files (and anonymisers) leave unknown private sequences as UN bytes, whose
        # content is implicit VR little endian (PS3.5 6.2.2).
        try:
            items = convert_SQ(items, True, True)
        except (ValueError, EOFError, KeyError, TypeError, NotImplementedError):
            items = None
    if not isinstance(items, DicomSequence):
        raise UihGridError(
            f"{path}: UIH grid image (ImageType VFRAME) of {n_tiles} slices without its per-slice "
            "positions: the private sequence (0065,1051) is missing or unreadable (an export that "
            "strips private tags). Export the series again with private "
            "tags kept, or with one image per slice"
        )
    if len(items) != n_tiles:
        raise UihGridError(
            f"{path}: UIH grid says {n_tiles} slices in (0065,1050) but its position sequence "
            f"(0065,1051) has {len(items)} item(s); the header is inconsistent and the slices cannot "
            "be placed. Export the series again"
        )
    positions = []
    for k, item in enumerate(items):
        value = item.get("ImagePositionPatient")
        try:
            position = tuple(float(v) for v in value) if value is not None else ()
        except (TypeError, ValueError):
            position = ()
        if len(position) != 3 or not all(math.isfinite(v) for v in position):
            raise UihGridError(
                f"{path}: slice {k + 1} of {n_tiles} in the UIH grid has no usable "
                f"ImagePositionPatient in (0065,1051) (found {value!r}); the slice cannot be placed. "
                "Export the series again"
            )
        positions.append(position)
    return tuple(positions)


def uih_grid(dataset: Dataset) -> UihGrid:
    """The grid layout and per-slice positions of a UIH grid image (headers only).

    Parameters
    ----------
    dataset : Dataset
        A data set for which :func:`is_uih_grid` is true (pixel data not needed).

    Returns
    -------
    UihGrid

    Raises
    ------
    UihGridError
        When (0065,1050) is missing or invalid, (0065,1051) is missing or holds a different number of
        items or an item without a position, or the pixel matrix is not a whole number of tiles.
    """
    path = str(dataset.get("filename", "?"))
    n_tiles = _number_of_tiles(dataset, path)
    across = math.ceil(math.sqrt(n_tiles))
    down = math.ceil(n_tiles / across)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    if rows % down or columns % across:
        raise UihGridError(
            f"{path}: a UIH grid of {n_tiles} slices is {across} tiles across and {down} down, but "
            f"the image is {columns} columns x {rows} rows, not a whole number of tiles; the grid "
            "cannot be split. Export the series again with one image per slice"
        )
    positions = _tile_positions(dataset, path, n_tiles)
    return UihGrid(
        n_tiles=n_tiles,
        across=across,
        down=down,
        tile_rows=rows // down,
        tile_columns=columns // across,
        positions_lps=positions,  # type: ignore[arg-type]
    )


def split_tiles(pixels: NDArray[Any], grid: UihGrid) -> NDArray[Any]:
    """The tiles of a grid image, shape (n_tiles, tile_rows, tile_columns), in tile order.

    Parameters
    ----------
    pixels : ndarray, shape (rows, columns)
        The grid image as stored (DICOM row-major order).
    grid : UihGrid
        Its layout, from :func:`uih_grid`.
    """
    expected = (grid.down * grid.tile_rows, grid.across * grid.tile_columns)
    if pixels.shape != expected:
        raise UihGridError(
            f"UIH grid pixel data are {pixels.shape} but the header describes {expected}; the file "
            "is not one grid image. Export the series again"
        )
    blocks = pixels.reshape(grid.down, grid.tile_rows, grid.across, grid.tile_columns)
    tiles = blocks.transpose(0, 2, 1, 3).reshape(
        grid.down * grid.across, grid.tile_rows, grid.tile_columns
    )
    return np.ascontiguousarray(tiles[: grid.n_tiles])
