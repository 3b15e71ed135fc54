"""Rigid poses, slice-stack grids and partial-volume resampling.

Coordinate conventions used throughout :mod:`synthetic`:

* **template space**: MNI152 2009a (nilearn "converted" files), RAS+, millimetres.
* **scanner space**: the patient coordinate system of the scanner, reported here in RAS+
  millimetres. DICOM stores the same system as LPS+ (x and y negated); :data:`LPS_FROM_RAS`
  converts between the two (it is its own inverse).
* a **pose** is a 4x4 matrix ``P`` with ``scanner_ras = P @ [x, y, z, 1]`` for a template point.
* a **grid** is a DICOM slice stack. Its voxel axes ``(i, j, k)`` are (DICOM column index,
  DICOM row index, slice index sorted by increasing position along the slice normal
  ``n = row_cosines x column_cosines``). Its affine maps ``(i, j, k, 1)`` to scanner RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: DICOM decimal-string precision used for geometry: directions (IOP) and positions (IPP).
IOP_DECIMALS = 6
IPP_DECIMALS = 4


def rotation_matrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation about the RAS x, y and z axes (applied in that order).

    Parameters
    ----------
    angles_deg : tuple of float
        Rotation angles (pitch about x, roll about y, yaw about z) in degrees.

    Returns
    -------
    numpy.ndarray
        Orthonormal 3x3 matrix ``Rz @ Ry @ Rx``.
    """
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_transform(
    angles_deg: tuple[float, float, float],
    translation_mm: tuple[float, float, float],
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """4x4 rigid transform rotating about ``centre_mm`` and then translating.

    Parameters
    ----------
    angles_deg : tuple of float
        Rotation angles about x, y, z in degrees (see :func:`rotation_matrix`).
    translation_mm : tuple of float
        Translation applied after the rotation, in mm.
    centre_mm : tuple of float, optional
        Fixed point of the rotation, in mm.

    Returns
    -------
    numpy.ndarray
        4x4 homogeneous matrix ``x' = R (x - c) + c + t``.
    """
    rot = rotation_matrix(angles_deg)
    c = np.asarray(centre_mm, float)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = c - rot @ c + np.asarray(translation_mm, float)
    return out


def ds_str(value: float, decimals: int) -> str:
    """Format a number as a DICOM decimal string (at most 16 characters).

    Parameters
    ----------
    value : float
        The number.
    decimals : int
        Digits after the decimal point.

    Returns
    -------
    str
        Rounded representation without a negative zero, e.g. ``"-12.5"`` or ``"0"``.
    """
    r = round(float(value), decimals)
    if r == 0:
        r = 0.0
    text = f"{r:.{decimals}f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if len(text) > 16:
        raise ValueError(f"decimal string too long: {text}")
    return text


def _round(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.array([float(ds_str(v, decimals)) for v in np.ravel(values)]).reshape(
        np.shape(values)
    )


@dataclass(frozen=True)
class SliceGrid:
    """A 2D multi-slice acquisition grid exactly as written to DICOM.

    All geometry is held at DICOM decimal-string precision so that the affine derived from the
    headers and the affine used for simulation are the same numbers.

    Attributes
    ----------
    rows, columns : int
        DICOM Rows and Columns (pixels per image).
    n_slices : int
        Number of slice positions.
    pixel_spacing : tuple of float
        DICOM PixelSpacing ``(row spacing, column spacing)`` in mm.
    slice_thickness : float
        Nominal slice thickness in mm (the simulated slice profile width).
    iop_lps : numpy.ndarray
        ImageOrientationPatient, shape (6,), LPS: row direction then column direction.
    ipp_lps : numpy.ndarray
        ImagePositionPatient of each slice, shape (n_slices, 3), LPS mm, sorted along the normal.
    """

    rows: int
    columns: int
    n_slices: int
    pixel_spacing: tuple[float, float]
    slice_thickness: float
    iop_lps: np.ndarray
    ipp_lps: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(columns, rows, n_slices)`` in the ``(i, j, k)`` axis order."""
        return (self.columns, self.rows, self.n_slices)

    @property
    def slice_step_lps(self) -> np.ndarray:
        """Vector between consecutive slice positions, shape (3,), LPS mm."""
        if self.n_slices == 1:
            return np.cross(self.iop_lps[:3], self.iop_lps[3:]) * self.slice_thickness
        return (self.ipp_lps[-1] - self.ipp_lps[0]) / (self.n_slices - 1)

    @property
    def spacing_between_slices(self) -> float:
        """Centre-to-centre slice distance in mm."""
        return float(np.linalg.norm(self.slice_step_lps))

    @property
    def normal_lps(self) -> np.ndarray:
        """Unit slice normal ``row x column`` (LPS)."""
        n = np.cross(self.iop_lps[:3], self.iop_lps[3:])
        return n / np.linalg.norm(n)

    def affine_lps(self) -> np.ndarray:
        """4x4 affine from ``(i, j, k)`` voxel indices to scanner LPS mm."""
        aff = np.eye(4)
        aff[:3, 0] = self.iop_lps[:3] * self.pixel_spacing[1]
        aff[:3, 1] = self.iop_lps[3:] * self.pixel_spacing[0]
        aff[:3, 2] = self.slice_step_lps
        aff[:3, 3] = self.ipp_lps[0]
        return aff

    def affine_ras(self) -> np.ndarray:
        """4x4 affine from ``(i, j, k)`` voxel indices to scanner RAS mm (NIfTI convention)."""
        return LPS_FROM_RAS @ self.affine_lps()

    def slice_locations(self) -> np.ndarray:
        """DICOM SliceLocation of each slice: ``IPP . n`` in mm, shape (n_slices,)."""
        return self.ipp_lps @ self.normal_lps


def make_grid(
    centre_ras: npt.ArrayLike,
    rotation: np.ndarray,
    rows: int,
    columns: int,
    n_slices: int,
    pixel_spacing: float,
    slice_thickness: float,
    spacing_between_slices: float,
) -> SliceGrid:
    """Plan a slice stack centred on a point, as a technologist would.

    Parameters
    ----------
    centre_ras : numpy.ndarray
        Centre of the stack in scanner RAS mm, shape (3,).
    rotation : numpy.ndarray
        3x3 rotation (RAS) applied to a straight axial stack; identity gives
        ImageOrientationPatient ``[1, 0, 0, 0, 1, 0]``.
    rows, columns, n_slices : int
        Matrix size and number of slices.
    pixel_spacing : float
        Square in-plane pixel size in mm.
    slice_thickness, spacing_between_slices : float
        Slice thickness and centre-to-centre distance in mm.

    Returns
    -------
    SliceGrid
        The grid, rounded to DICOM decimal-string precision.
    """
    rot_lps = LPS_FROM_RAS[:3, :3] @ rotation @ LPS_FROM_RAS[:3, :3]
    return make_grid_lps(
        centre_ras,
        rot_lps @ np.array([1.0, 0.0, 0.0]),
        rot_lps @ np.array([0.0, 1.0, 0.0]),
        rows,
        columns,
        n_slices,
        pixel_spacing,
        slice_thickness,
        spacing_between_slices,
    )


def make_grid_lps(
    centre_ras: npt.ArrayLike,
    row_dir_lps: npt.ArrayLike,
    col_dir_lps: npt.ArrayLike,
    rows: int,
    columns: int,
    n_slices: int,
    pixel_spacing: float,
    slice_thickness: float,
    spacing_between_slices: float,
) -> SliceGrid:
    """Slice stack from explicit DICOM row/column directions (LPS); see :func:`make_grid`."""
    row_dir = np.asarray(row_dir_lps, float)
    col_dir = np.asarray(col_dir_lps, float)
    iop = _round(np.concatenate([row_dir, col_dir]), IOP_DECIMALS)
    normal = np.cross(row_dir, col_dir)
    step = _round(normal * spacing_between_slices, IPP_DECIMALS)
    centre_lps = LPS_FROM_RAS[:3, :3] @ np.asarray(centre_ras, float)
    first = (
        centre_lps
        - row_dir * pixel_spacing * (columns - 1) / 2
        - col_dir * pixel_spacing * (rows - 1) / 2
        - step * (n_slices - 1) / 2
    )
    first = _round(first, IPP_DECIMALS)
    ipp = _round(first[None, :] + np.arange(n_slices)[:, None] * step[None, :], IPP_DECIMALS)
    return SliceGrid(
        rows=rows,
        columns=columns,
        n_slices=n_slices,
        pixel_spacing=(pixel_spacing, pixel_spacing),
        slice_thickness=slice_thickness,
        iop_lps=iop,
        ipp_lps=ipp,
    )


def footprint_offsets(n_inplane: int, n_through: int, thickness_vox: float) -> np.ndarray:
    """Sub-sample offsets covering one voxel footprint, in voxel units.

    Parameters
    ----------
    n_inplane : int
        Samples per in-plane axis (``n_inplane**2`` in total in-plane).
    n_through : int
        Samples across the slice thickness.
    thickness_vox : float
        Slice thickness divided by the slice spacing (the footprint extent along ``k``).

    Returns
    -------
    numpy.ndarray
        Offsets, shape (n_inplane**2 * n_through, 3), columns ``(di, dj, dk)``.
    """
    ip = (np.arange(n_inplane) + 0.5) / n_inplane - 0.5
    tp = ((np.arange(n_through) + 0.5) / n_through - 0.5) * thickness_vox
    di, dj, dk = np.meshgrid(ip, ip, tp, indexing="ij")
    return np.stack([di.ravel(), dj.ravel(), dk.ravel()], axis=1)


def resample_footprint(
    volumes: list[np.ndarray],
    model_affine: np.ndarray,
    grid_affine_ras: np.ndarray,
    grid_shape: tuple[int, int, int],
    pose: np.ndarray,
    n_inplane: int,
    n_through: int,
    thickness_vox: float,
) -> list[np.ndarray]:
    """Average model volumes over each grid voxel's footprint (partial-volume acquisition).

    Parameters
    ----------
    volumes : list of numpy.ndarray
        Model volumes on the 1 mm template-space model grid, each shape (X, Y, Z).
    model_affine : numpy.ndarray
        4x4 affine of the model grid (voxel -> template RAS mm).
    grid_affine_ras : numpy.ndarray
        4x4 affine of the acquisition grid (voxel -> scanner RAS mm).
    grid_shape : tuple of int
        ``(I, J, K)`` acquisition grid shape.
    pose : numpy.ndarray
        4x4 head pose (template RAS -> scanner RAS).
    n_inplane, n_through : int
        Footprint sampling density (see :func:`footprint_offsets`).
    thickness_vox : float
        Slice thickness in units of the slice spacing.

    Returns
    -------
    list of numpy.ndarray
        One float32 array of shape ``grid_shape`` per input volume: the footprint mean
        (trilinear interpolation at each sub-sample; zero outside the model).
    """
    m = np.linalg.inv(model_affine) @ np.linalg.inv(pose) @ grid_affine_ras
    ii, jj, kk = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in grid_shape], indexing="ij")
    base = np.stack([ii.ravel(), jj.ravel(), kk.ravel()])
    lin = m[:3, :3].astype(np.float32)
    base_coords = lin @ base + m[:3, 3:4].astype(np.float32)
    del ii, jj, kk, base
    sums = [np.zeros(base_coords.shape[1], np.float32) for _ in volumes]
    offsets = footprint_offsets(n_inplane, n_through, thickness_vox)
    for off in offsets:
        coords = base_coords + (lin @ off.astype(np.float32))[:, None]
        for acc, vol in zip(sums, volumes, strict=True):
            acc += ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
    return [(acc / len(offsets)).reshape(grid_shape) for acc in sums]
