"""Stack 2-D frames into a 3-D or 4-D volume with its affine, refusing anything that is not one grid.

Slices are ordered by their position along the slice normal (never by file name or instance number).
Several frames at each position are several volumes (b-values, echoes, repetitions): they are split into
a 4-D array instead of being interleaved into one stack (the trap SimpleITK's plain series reader falls
into). A gap, a duplicate, uneven spacing or mixed orientations raise a named error that says where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.dicom.frames import Frame
from imaging.errors import (
    DuplicateSliceError,
    GeometryError,
    ImageContentError,
    MissingSliceError,
    MixedOrientationError,
    MixedVolumesError,
    UnevenSpacingError,
)
from imaging.limits import check_image_bytes

__all__ = [
    "LPS_TO_RAS",
    "ORIENTATION_ATOL",
    "POSITION_ATOL_MM",
    "SPACING_RTOL",
    "Layout",
    "Stacked",
    "plan_layout",
    "stack_frames",
]

#: Direction cosines that differ by more than this are different orientations.
ORIENTATION_ATOL = 1e-3
#: Frames closer than this along the slice normal (mm) are at the same slice position.
POSITION_ATOL_MM = 0.05
#: Slice steps may differ from their median by this fraction (DS rounding) before being "uneven".
SPACING_RTOL = 0.02
#: DICOM patient coordinates (LPS+) to RAS+.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Layout:
    """How frames form a grid: ``volumes[v][k]`` is the frame at slice ``k`` of volume ``v``."""

    volumes: list[list[Frame]]
    affine_ras: NDArray[np.float64]
    b_values: list[float | None]
    echo_times_ms: list[float | None]

    @property
    def shape(self) -> tuple[int, ...]:
        """(columns, rows, slices) or (columns, rows, slices, volumes)."""
        first = self.volumes[0][0]
        spatial = (first.columns, first.rows, len(self.volumes[0]))
        return spatial if len(self.volumes) == 1 else (*spatial, len(self.volumes))


@dataclass(frozen=True)
class Stacked:
    """Voxel data (stored values rescaled) and the layout they were built from."""

    data: NDArray[Any]
    layout: Layout


def _describe(frame: Frame) -> str:
    name = frame.path.rsplit("/", 1)[-1]
    where = f"{name}" + (f" frame {frame.frame_index + 1}" if frame.frame_index else "")
    if frame.instance_number is not None:
        where += f" (instance {frame.instance_number})"
    return where


def _check_orientation(frames: Sequence[Frame], where: str) -> NDArray[np.float64]:
    orientations = np.array([f.orientation for f in frames], dtype=float)
    spread = np.abs(orientations - orientations[0]).max(axis=1)
    odd = np.flatnonzero(spread > ORIENTATION_ATOL)
    if odd.size:
        other = frames[int(odd[0])]
        raise MixedOrientationError(
            f"{where}: images have different orientations: {_describe(frames[0])} is "
            f"{np.round(orientations[0], 4).tolist()} but {_describe(other)} is "
            f"{np.round(orientations[odd[0]], 4).tolist()} ({odd.size} of {len(frames)} differ). "
            "A localizer or two series mixed in one folder cannot be stacked; load each series "
            "separately"
        )
    shapes = {(f.rows, f.columns) for f in frames}
    spacings = {tuple(np.round(f.pixel_spacing_mm, 4)) for f in frames}
    if len(shapes) > 1 or len(spacings) > 1:
        raise GeometryError(
            f"{where}: images differ in size {sorted(shapes)} or pixel spacing {sorted(spacings)}; "
            "they do not belong to one series"
        )
    return orientations[0]


def _group_positions(
    frames: Sequence[Frame], normal: NDArray[np.float64]
) -> tuple[list[list[Frame]], NDArray[np.float64]]:
    """Frames grouped by slice position (ascending along the normal) and each group's distance."""
    distances = np.array([np.dot(f.position_lps, normal) for f in frames])
    order = np.argsort(distances, kind="stable")
    groups: list[list[Frame]] = []
    centres: list[float] = []
    for index in order:
        d = distances[index]
        if groups and abs(d - centres[-1]) <= POSITION_ATOL_MM:
            groups[-1].append(frames[index])
        else:
            groups.append([frames[index]])
            centres.append(float(d))
    return groups, np.array(centres)


def _check_counts(groups: list[list[Frame]], centres: NDArray[np.float64], where: str) -> int:
    counts = [len(g) for g in groups]
    modal, _ = Counter(counts).most_common(1)[0]
    if any(c > modal for c in counts):
        k = next(i for i, c in enumerate(counts) if c > modal)
        names = ", ".join(_describe(f) for f in groups[k])
        raise DuplicateSliceError(
            f"{where}: {counts[k]} images at slice position {centres[k]:.2f} mm where the other "
            f"positions have {modal}: {names}. Remove the duplicate file(s) or export the series "
            "again"
        )
    if any(c < modal for c in counts):
        k = next(i for i, c in enumerate(counts) if c < modal)
        raise MissingSliceError(
            f"{where}: {modal - counts[k]} image(s) missing at slice position {centres[k]:.2f} mm "
            f"(slice {k + 1} of {len(groups)}): the other positions have {modal} volume(s). Export "
            "the complete series again"
        )
    return modal


def _check_spacing(groups: list[list[Frame]], centres: NDArray[np.float64], where: str) -> None:
    if len(centres) < 3:
        return
    steps = np.diff(centres)
    step = float(np.median(steps))
    tolerance = max(SPACING_RTOL * step, 0.01)
    for k, s in enumerate(steps):
        ratio = s / step
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.25:
            raise MissingSliceError(
                f"{where}: a gap of {s:.2f} mm between slice positions {centres[k]:.2f} and "
                f"{centres[k + 1]:.2f} mm ({_describe(groups[k][0])} and "
                f"{_describe(groups[k + 1][0])}) where the spacing is {step:.2f} mm: about "
                f"{round(ratio) - 1} slice(s) missing. Export the complete series again"
            )
    uneven = np.flatnonzero(np.abs(steps - step) > tolerance)
    if uneven.size:
        k = int(uneven[0])
        raise UnevenSpacingError(
            f"{where}: slice spacing varies from {steps.min():.3f} to {steps.max():.3f} mm (median "
            f"{step:.3f} mm; first odd step between {_describe(groups[k][0])} and "
            f"{_describe(groups[k + 1][0])}). The slices do not form one regular grid"
        )


def _split_volumes(groups: list[list[Frame]], n_volumes: int, where: str) -> list[list[Frame]]:
    """volumes[v][k]: order frames at each position by acquisition, check each volume is uniform."""
    if n_volumes == 1:
        return [[g[0] for g in groups]]

    def build(key: Any) -> list[list[Frame]]:
        ordered = [sorted(g, key=key) for g in groups]
        return [[ordered[k][v] for k in range(len(groups))] for v in range(n_volumes)]

    def uniform(volumes: list[list[Frame]]) -> bool:
        for volume in volumes:
            bs = {None if f.b_value is None else round(f.b_value, 3) for f in volume}
            tes = {None if f.echo_time_ms is None else round(f.echo_time_ms, 3) for f in volume}
            if len(bs) > 1 or len(tes) > 1:
                return False
        return True

    volumes = build(lambda f: f.volume_order_key)
    if uniform(volumes):
        return volumes
    volumes = build(lambda f: (f.b_value or 0.0, f.echo_time_ms or 0.0, *f.volume_order_key))
    if uniform(volumes):
        return volumes
    raise MixedVolumesError(
        f"{where}: {n_volumes} images at every slice position, but they cannot be grouped into "
        "volumes of one b-value and echo time each; load each volume as its own series"
    )


def plan_layout(frames: Sequence[Frame], *, where: str) -> Layout:
    """Check the geometry of ``frames`` and work out the grid and the volumes.

    Parameters
    ----------
    frames : sequence of Frame
        All frames of one series (pixels not needed).
    where : str
        How to name the series in error messages (e.g. its folder and description).

    Returns
    -------
    Layout
        Frames per volume and slice, the RAS+ affine for axes (column, row, slice), and per-volume
        b-values and echo times.

    Raises
    ------
    MixedOrientationError, DuplicateSliceError, MissingSliceError, UnevenSpacingError,
    MixedVolumesError, GeometryError
    """
    if not frames:
        raise GeometryError(f"{where}: no images to stack")
    orientation = _check_orientation(frames, where)
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    normal = np.cross(row_cosine, column_cosine)
    groups, centres = _group_positions(frames, normal)
    n_volumes = _check_counts(groups, centres, where)
    _check_spacing(groups, centres, where)
    volumes = _split_volumes(groups, n_volumes, where)

    first = volumes[0][0]
    row_spacing, column_spacing = first.pixel_spacing_mm
    origin = np.array(first.position_lps)
    if len(groups) > 1:
        last = np.array(volumes[0][-1].position_lps)
        slice_vector = (last - origin) / (len(groups) - 1)
    else:
        thickness = first.spacing_between_slices_mm or first.slice_thickness_mm or 1.0
        slice_vector = normal * thickness
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cosine * column_spacing
    affine_lps[:3, 1] = column_cosine * row_spacing
    affine_lps[:3, 2] = slice_vector
    affine_lps[:3, 3] = origin
    return Layout(
        volumes=volumes,
        affine_ras=LPS_TO_RAS @ affine_lps,
        b_values=[v[0].b_value for v in volumes],
        echo_times_ms=[v[0].echo_time_ms for v in volumes],
    )


def stack_frames(frames: Sequence[Frame], *, where: str) -> Stacked:
    """Stack frames (with pixels) into an array indexed (column, row, slice[, volume]).

    Stored values are rescaled with each frame's slope and intercept; the result stays in the stored
    integer type when every frame has slope 1 and intercept 0, and is float32 otherwise.
    """
    layout = plan_layout(frames, where=where)
    missing = [f for volume in layout.volumes for f in volume if f.pixels is None]
    if missing:
        raise GeometryError(f"{where}: frames were read without pixel data")
    for frame in (f for volume in layout.volumes for f in volume):
        if not (np.isfinite(frame.slope) and np.isfinite(frame.intercept)):
            raise ImageContentError(
                f"{where}: {_describe(frame)} has RescaleSlope {frame.slope} and RescaleIntercept "
                f"{frame.intercept}: every voxel would be NaN or infinite. The header is damaged; "
                "export the series again from the scanner or PACS"
            )
    rescaled = any(f.slope != 1.0 or f.intercept != 0.0 for v in layout.volumes for f in v)
    sample = layout.volumes[0][0].pixels
    assert sample is not None
    dtype = np.dtype(np.float32 if rescaled else sample.dtype)
    shape = layout.shape
    check_image_bytes(
        int(np.prod(shape)) * dtype.itemsize,
        where=where,
        what=f"{'x'.join(str(n) for n in shape)} voxels of {dtype.itemsize * 8} bits",
    )
    data = np.empty(layout.shape if len(layout.shape) == 4 else (*layout.shape, 1), dtype=dtype)
    for v, volume in enumerate(layout.volumes):
        for k, frame in enumerate(volume):
            pixels = frame.pixels
            assert pixels is not None
            plane = pixels.T
            if rescaled:
                plane = plane.astype(np.float32) * np.float32(frame.slope) + np.float32(
                    frame.intercept
                )
            data[:, :, k, v] = plane
    if data.shape[3] == 1:
        data = data[..., 0]
    return Stacked(data=data, layout=layout)
