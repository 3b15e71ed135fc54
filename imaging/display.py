"""Slices for viewing (the dashboard's viewer and the PDF report): one volume on the baseline grid cut
through a world position, windowed and with lesion overlays, as RGB pixels shown as they are.

Display conventions are those of a radiology workstation: radiological left-right (the patient's
right on the left of the screen), anterior up on axial slices, superior up on coronal and sagittal
slices, anterior on the left of sagittal slices, and square screen pixels (anisotropic voxels are
stretched to their true size in mm). Nothing here imports Streamlit, so it is tested on phantoms.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = [
    "DWI_RGB",
    "FLAIR_RGB",
    "HIGHLIGHT_RGB",
    "PLANES",
    "RESOLVED_RGB",
    "Overlay",
    "Plane",
    "Volume",
    "Window",
    "annotate",
    "compose",
    "crosshair",
    "load_volume",
    "png_bytes",
    "presets",
    "side_by_side",
]

Plane = Literal["axial", "coronal", "sagittal"]
#: Array axis (of a RAS-canonical volume) that each plane cuts across.
PLANES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Overlay colours: FLAIR lesions orange, DWI lesions cyan, new or enlarging lesions red (the static
#: images, the report and the interactive viewer).
FLAIR_RGB = (255, 165, 0)
DWI_RGB = (0, 200, 255)
HIGHLIGHT_RGB = (255, 30, 30)
#: Where a lesion that resolved was (the interactive viewer), green.
RESOLVED_RGB = (60, 220, 90)


@dataclass(frozen=True)
class Window:
    """A display window: values from ``center - width/2`` (black) to ``center + width/2`` (white)."""

    center: float
    width: float

    def apply(self, values: NDArray[np.floating]) -> NDArray[np.uint8]:
        """``values`` mapped to 0-255."""
        low = self.center - self.width / 2
        scaled = (values - low) * (255.0 / max(self.width, 1e-6))
        return np.clip(scaled, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Volume:
    """A 3-D image reoriented to RAS (array axes i, j, k = patient left->right, posterior->anterior,
    inferior->superior), read-only.

    Attributes
    ----------
    data : ndarray, shape (nx, ny, nz)
        Voxel values (float32 for images, integer labels for label maps).
    affine : ndarray, shape (4, 4)
        Voxel index -> world (RAS, mm).
    """

    data: NDArray[np.generic]
    affine: NDArray[np.float64]
    percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k (mm)."""
        sizes = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return float(sizes[0]), float(sizes[1]), float(sizes[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (nx, ny, nz)."""
        nx, ny, nz = self.data.shape[:3]
        return int(nx), int(ny), int(nz)

    def to_voxel(self, world_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """World position (RAS mm, shape (3,)) -> fractional voxel index (i, j, k)."""
        point = np.append(np.asarray(world_mm, float), 1.0)
        return (np.linalg.inv(self.affine) @ point)[:3]

    def to_world(self, voxel: NDArray[np.float64]) -> NDArray[np.float64]:
        """Voxel index (i, j, k) -> world position (RAS mm)."""
        return (self.affine @ np.append(np.asarray(voxel, float), 1.0))[:3]

    def centre_mm(self) -> NDArray[np.float64]:
        """World position of the grid's centre."""
        return self.to_world((np.array(self.shape, float) - 1) / 2)

    def slice_index(self, plane: Plane, world_mm: NDArray[np.float64]) -> int:
        """The slice of ``plane`` through ``world_mm``, clipped to the grid."""
        axis = PLANES[plane]
        index = round(float(self.to_voxel(world_mm)[axis]))
        return min(max(index, 0), self.shape[axis] - 1)

    def cut(self, plane: Plane, index: int) -> NDArray[np.generic]:
        """Slice ``index`` of ``plane`` in display orientation (rows top->bottom, radiological)."""
        where: list[slice | int] = [slice(None)] * 3
        where[PLANES[plane]] = index
        plane_data = self.data[tuple(where)]  # a view (np.take copies through a slow path)
        return np.ascontiguousarray(plane_data.T[::-1, ::-1])

    def pixel_mm(self, plane: Plane) -> tuple[float, float]:
        """(row, column) pixel size in mm of :meth:`cut`'s output."""
        sx, sy, sz = self.spacing_mm
        return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[plane]


def load_volume(path: Path, *, labels: bool = False) -> Volume:
    """Read a NIfTI file as a RAS :class:`Volume` (labels as int32, images as float32).

    Images carry their 1st, 99th and 99.5th percentiles over non-zero voxels (for window presets).
    """
    image = nib.as_closest_canonical(nib.load(str(path)))
    raw = np.asanyarray(image.dataobj)
    data = raw.astype(np.int32) if labels else np.asarray(image.get_fdata(), np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    data.setflags(write=False)
    percentiles: dict[float, float] = {}
    if not labels:
        inside = data[data > 0]
        if inside.size:
            for q, v in zip(
                (1.0, 50.0, 99.0, 99.5), np.percentile(inside, (1, 50, 99, 99.5)), strict=True
            ):
                percentiles[q] = float(v)
    return Volume(data=data, affine=np.asarray(image.affine, float), percentiles=percentiles)


def presets(sequence: str, volume: Volume | None) -> dict[str, Window]:
    """Window presets for one sequence. ADC presets are in um2/s; FLAIR and DWI from the image's
    own intensity percentiles (their units are arbitrary)."""
    if sequence == "ADC":
        return {
            "ADC 0-2000 um2/s": Window(1000, 2000),
            "ADC lesion 200-1200 um2/s": Window(700, 1000),
            "ADC 0-3500 um2/s (CSF)": Window(1750, 3500),
        }
    if volume is None or not volume.percentiles:
        return {"auto": Window(0.5, 1.0)}
    low, mid, high = volume.percentiles[1.0], volume.percentiles[50.0], volume.percentiles[99.5]
    return {
        "auto (1-99.5 %)": Window((low + high) / 2, max(high - low, 1e-3)),
        "lesion contrast": Window(
            (mid + high) / 2 + (high - mid) * 0.1, max(high - mid, 1e-3) * 1.2
        ),
        "wide (0-max)": Window(high * 0.6, high * 1.2),
    }


def _square(
    image: NDArray[np.generic], pixel_mm: tuple[float, float], order: int
) -> NDArray[np.generic]:
    """Stretch so that rows and columns have the same size in mm (the smaller of the two)."""
    row_mm, col_mm = pixel_mm
    target = min(row_mm, col_mm)
    factors = (row_mm / target, col_mm / target)
    if abs(factors[0] - 1) < 1e-3 and abs(factors[1] - 1) < 1e-3:
        return image
    return ndimage.zoom(image, factors, order=order, mode="nearest", grid_mode=True)


def outline_labels(
    labels: NDArray[np.integer], affine: NDArray[np.float64], plane: Plane
) -> NDArray[np.integer]:
    """A label map reduced to each lesion's outline within the slices of ``plane``: the voxels of a
    label with a 4-neighbour in the slice that is not that label (the reading default: the outline
    leaves the signal it labels visible).

    Parameters
    ----------
    labels : ndarray, shape (I, J, K)
        Integer labels (0 = background), any voxel axis order.
    affine : ndarray, shape (4, 4)
        Voxel -> world (RAS, mm); tells which voxel axis is across the slices of ``plane``.
    plane : {"axial", "coronal", "sagittal"}

    Examples
    --------
    >>> labels = np.zeros((5, 5, 3), np.uint8); labels[1:4, 1:4, :] = 2
    >>> out = outline_labels(labels, np.eye(4), "axial")
    >>> int(out[2, 2, 1]), int(out[1, 2, 1]), int((out > 0).sum())  # centre gone, rim kept
    (0, 2, 24)
    """
    codes = nib.aff2axcodes(affine)
    wanted = {"axial": "SI", "coronal": "AP", "sagittal": "LR"}[plane]
    across = next(n for n, code in enumerate(codes) if code in wanted)
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1, 1:-1]
    edge = np.zeros(labels.shape, bool)
    for axis in range(3):
        if axis == across:
            continue
        for step in (-1, 1):
            index = [slice(1, -1)] * 3
            index[axis] = slice(1 + step, padded.shape[axis] - 1 + step)
            edge |= padded[tuple(index)] != centre
    return np.where(edge & (labels > 0), labels, 0).astype(labels.dtype)


def _edges(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it (a one-pixel inner outline)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    all_in = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inner & ~all_in


@dataclass(frozen=True)
class Overlay:
    """One label map drawn over an image: its colour, and which labels to draw in the highlight."""

    labels: Volume
    rgb: tuple[int, int, int]
    highlight: frozenset[int] = frozenset()


def compose(
    image: Volume | None,
    plane: Plane,
    index: int,
    window: Window,
    overlays: list[Overlay],
    *,
    opacity: float = 0.4,
    outline: bool = False,
    reference: Volume | None = None,
) -> NDArray[np.uint8]:
    """One viewer cell: the slice, windowed to grey, with its lesion overlays, as RGB.

    Parameters
    ----------
    image : Volume or None
        The image (None draws a black cell of the reference's size: the sequence is missing).
    plane, index : the slice.
    window : Window
        Display window in the image's units.
    overlays : list of Overlay
        Label maps on the same grid, drawn in order (filled with ``opacity``, or as outlines);
        highlighted labels always get a red outline on top.
    reference : Volume
        Grid of a missing image (any volume of the case).

    Returns
    -------
    ndarray, shape (rows, columns, 3), uint8
    """
    grid = image or reference
    if grid is None:
        raise ValueError("compose needs an image or a reference volume")
    pixel_mm = grid.pixel_mm(plane)
    if image is not None:
        grey = window.apply(np.asarray(image.cut(plane, index), np.float32))
    else:
        grey = np.zeros(grid.cut(plane, index).shape, np.uint8)
    rgb = np.repeat(_square(grey, pixel_mm, order=1)[..., None], 3, axis=2).astype(np.float32)
    for overlay in overlays:
        labels = np.asarray(_square(overlay.labels.cut(plane, index), pixel_mm, order=0), np.int64)
        mask = labels > 0
        if not mask.any():
            continue
        colour = np.array(overlay.rgb, np.float32)
        if outline:
            rgb[_edges(mask)] = colour
        else:
            rgb[mask] = (1 - opacity) * rgb[mask] + opacity * colour
        if overlay.highlight:
            marked = np.isin(labels, list(overlay.highlight))
            if marked.any():
                rgb[_edges(marked)] = np.array(HIGHLIGHT_RGB, np.float32)
    return rgb.astype(np.uint8)


def annotate(cell: NDArray[np.uint8], text: str) -> NDArray[np.uint8]:
    """``cell`` with ``text`` in its top-left corner (light yellow, as on a PACS screen); a copy."""
    image = Image.fromarray(cell)
    draw = ImageDraw.Draw(image)
    draw.text((4, 3), text, fill=(255, 240, 150), font=ImageFont.load_default(size=13))
    return np.asarray(image)


def side_by_side(cells: list[NDArray[np.uint8]], gap_px: int = 4) -> NDArray[np.uint8]:
    """Cells of equal height in one row, separated by ``gap_px`` dark grey columns (one image per
    session row: one PNG and one browser request instead of three)."""
    height = cells[0].shape[0]
    gap = np.full((height, gap_px, 3), 40, np.uint8)
    parts: list[NDArray[np.uint8]] = []
    for n, cell in enumerate(cells):
        if cell.shape[0] != height:
            raise ValueError("cells of one row must have the same height")
        parts += [gap, cell] if n else [cell]
    return np.concatenate(parts, axis=1)


def png_bytes(rgb: NDArray[np.uint8]) -> bytes:
    """``rgb`` as PNG (lossless) at zlib level 1: four times faster to make than the default level
    for a few per cent more bytes, which on a local connection is the better trade."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def crosshair(
    cell: NDArray[np.uint8], grid: Volume, plane: Plane, world_mm: NDArray[np.float64]
) -> NDArray[np.uint8]:
    """``cell`` with a small green cross at ``world_mm`` (a copy)."""
    voxel = grid.to_voxel(world_mm)
    axes = [a for a in range(3) if a != PLANES[plane]]  # (column axis, row axis) before transpose
    size = grid.shape
    row_frac = (size[axes[1]] - 1 - voxel[axes[1]]) / max(size[axes[1]] - 1, 1)
    col_frac = (size[axes[0]] - 1 - voxel[axes[0]]) / max(size[axes[0]] - 1, 1)
    rows, cols = cell.shape[:2]
    r, c = round(row_frac * (rows - 1)), round(col_frac * (cols - 1))
    out = cell.copy()
    arm, gap = max(rows, cols) // 40 + 3, 2
    green = np.array((60, 255, 60), np.uint8)
    if 0 <= r < rows and 0 <= c < cols:
        out[r, max(c - arm, 0) : max(c - gap, 0)] = green
        out[r, min(c + gap + 1, cols) : min(c + arm + 1, cols)] = green
        out[max(r - arm, 0) : max(r - gap, 0), c] = green
        out[min(r + gap + 1, rows) : min(r + arm + 1, rows), c] = green
    return out
