"""The one image object that crosses every boundary: pixels with their geometry and acquisition.

Conventions
-----------
* ``data`` is indexed ``[i, j, k]`` (3-D) or ``[i, j, k, v]`` (4-D, ``v`` = volume, e.g. b-value).
* ``affine`` maps voxel indices ``(i, j, k, 1)`` to world coordinates in millimetres, RAS+ as in NIfTI
  and MNI space: +x points to the patient's right, +y anterior, +z superior. DICOM patient coordinates
  are LPS+ (+x to the patient's left, +y posterior); the loaders flip x and y once, at the file boundary.
* The voxel axis order is whatever the file had (DICOM: column, row, slice). Code must use the affine,
  never assume an axis order; :meth:`MRImage.reoriented` gives a canonical (e.g. RAS) array order.
* Spacing and voxel volume are derived from the affine, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from numpy.typing import ArrayLike, NDArray

from imaging.errors import GeometryError
from imaging.sequence import SequenceClass

__all__ = ["AFFINE_ATOL_MM", "Acquisition", "MRImage", "check_same_grid", "nifti_scaling"]

#: Two affines closer than this (mm, per element) describe the same grid.
AFFINE_ATOL_MM = 1e-3


def nifti_scaling(image: nib.Nifti1Image) -> tuple[float, float]:
    """The (slope, intercept) applied to a NIfTI's stored voxels, ``(1, 0)`` when none.

    nibabel moves ``scl_slope``/``scl_inter`` of a loaded file into its array proxy and clears them
    in ``image.header``, so the proxy is asked first.
    """
    proxy = image.dataobj
    slope = getattr(proxy, "slope", None)
    inter = getattr(proxy, "inter", None)
    if slope is None:
        slope, inter = image.header.get_slope_inter()
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


@dataclass(frozen=True)
class Acquisition:
    """Acquisition metadata carried with an image (all optional; missing is ``None`` or empty).

    Times are in milliseconds, field strength in tesla, as in the DICOM header.
    """

    study_uid: str | None = None
    series_uid: str | None = None
    study_date: date | None = None
    study_time: time | None = None
    series_number: int | None = None
    series_description: str = ""
    study_description: str = ""
    vendor: str = ""
    model: str = ""
    field_strength_t: float | None = None
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    inversion_time_ms: float | None = None
    sequence_name: str = ""
    image_type: tuple[str, ...] = ()
    unit: str = ""
    source: str = ""
    classification_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def study_datetime(self) -> datetime | None:
        """Study date and time combined (``None`` when the date is unknown)."""
        if self.study_date is None:
            return None
        return datetime.combine(self.study_date, self.study_time or time(0, 0))


class MRImage:
    """An MR image: voxel data with a 4x4 affine (RAS+, mm), its sequence class and acquisition.

    Parameters
    ----------
    data : ndarray of shape (I, J, K) or (I, J, K, V)
        Voxel values. Kept as given (no copy) but exposed read-only.
    affine : array_like of shape (4, 4)
        Voxel index to RAS+ world coordinates in mm.
    sequence : SequenceClass or str, optional
        DWI, ADC, FLAIR or OTHER.
    bvals_s_mm2 : sequence of float, optional
        One b-value (s/mm2) per volume (DWI only); its length must equal the number of volumes.
    acquisition : Acquisition, optional
        Header metadata.

    Raises
    ------
    GeometryError
        If the data are not 3-D or 4-D, or the affine is not a finite, invertible 4x4 matrix whose last
        row is ``[0, 0, 0, 1]``, or the b-values do not match the volumes.

    Examples
    --------
    >>> import numpy as np
    >>> img = MRImage(np.zeros((7, 8, 9)), np.diag([0.9, 0.9, 3.0, 1.0]))
    >>> img.spacing_mm
    (0.9, 0.9, 3.0)
    >>> round(img.voxel_volume_mm3, 3)
    2.43
    """

    __slots__ = ("_acquisition", "_affine", "_bvals", "_data", "_sequence")

    def __init__(
        self,
        data: ArrayLike,
        affine: ArrayLike,
        *,
        sequence: SequenceClass | str = SequenceClass.OTHER,
        bvals_s_mm2: Sequence[float] | None = None,
        acquisition: Acquisition | None = None,
    ) -> None:
        array = np.asarray(data)
        if array.ndim not in (3, 4):
            raise GeometryError(
                f"an MRImage needs 3-D or 4-D data, got shape {array.shape}; add or squeeze axes first"
            )
        matrix = np.array(affine, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise GeometryError(f"the affine must be a finite 4x4 matrix, got {matrix!r}")
        if not np.allclose(matrix[3], [0, 0, 0, 1]):
            raise GeometryError(f"the affine's last row must be [0, 0, 0, 1], got {matrix[3]}")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise GeometryError("the affine is singular: a voxel axis has zero length")
        view = array.view()
        view.flags.writeable = False
        self._data = view
        self._affine = matrix
        self._sequence = SequenceClass(sequence)
        n_volumes = 1 if array.ndim == 3 else array.shape[3]
        if bvals_s_mm2 is not None:
            bvals = tuple(float(b) for b in bvals_s_mm2)
            if len(bvals) != n_volumes:
                raise GeometryError(
                    f"{len(bvals)} b-values given for {n_volumes} volume(s); give one per volume"
                )
            self._bvals: tuple[float, ...] | None = bvals
        else:
            self._bvals = None
        self._acquisition = acquisition or Acquisition()

    # ------------------------------------------------------------------ basic properties
    @property
    def data(self) -> NDArray[Any]:
        """Voxel values, read-only view of shape (I, J, K) or (I, J, K, V)."""
        return self._data

    @property
    def affine(self) -> NDArray[np.float64]:
        """Voxel to RAS+ mm, a copy of shape (4, 4)."""
        return self._affine.copy()

    @property
    def sequence(self) -> SequenceClass:
        """The sequence class."""
        return self._sequence

    @property
    def bvals_s_mm2(self) -> tuple[float, ...] | None:
        """One b-value (s/mm2) per volume, or ``None`` when not a diffusion image."""
        return self._bvals

    @property
    def acquisition(self) -> Acquisition:
        """Header metadata."""
        return self._acquisition

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        return tuple(self._data.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """The first three dimensions (I, J, K)."""
        i, j, k = self._data.shape[:3]
        return (int(i), int(j), int(k))

    @property
    def n_volumes(self) -> int:
        """Number of volumes (1 for 3-D data)."""
        return 1 if self._data.ndim == 3 else int(self._data.shape[3])

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths along i, j and k in mm, from the affine."""
        sizes = np.sqrt((self._affine[:3, :3] ** 2).sum(axis=0))
        return (float(sizes[0]), float(sizes[1]), float(sizes[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm3 (absolute determinant of the affine's 3x3 part)."""
        return float(abs(np.linalg.det(self._affine[:3, :3])))

    @property
    def orientation(self) -> str:
        """Anatomical direction of increasing i, j, k, e.g. ``"LPS"`` or ``"RAS"``."""
        return "".join(str(c) for c in nio.aff2axcodes(self._affine))

    # ------------------------------------------------------------------ derived images
    def with_data(
        self,
        data: ArrayLike,
        *,
        sequence: SequenceClass | str | None = None,
        bvals_s_mm2: Sequence[float] | None = None,
        acquisition: Acquisition | None = None,
    ) -> MRImage:
        """A new image on the same grid (same affine) with other voxel values.

        b-values are kept only when the number of volumes is unchanged and none are given.
        """
        array = np.asarray(data)
        if array.shape[:3] != self.spatial_shape:
            raise GeometryError(
                f"new data of shape {array.shape} do not fit the grid {self.spatial_shape}"
            )
        n_volumes = 1 if array.ndim == 3 else array.shape[3]
        if bvals_s_mm2 is None and self._bvals is not None and n_volumes == self.n_volumes:
            bvals_s_mm2 = self._bvals
        return MRImage(
            array,
            self._affine,
            sequence=self._sequence if sequence is None else sequence,
            bvals_s_mm2=bvals_s_mm2,
            acquisition=acquisition or self._acquisition,
        )

    def with_acquisition(self, **changes: Any) -> MRImage:
        """A new image with some acquisition fields replaced (data shared, not copied)."""
        return MRImage(
            self._data,
            self._affine,
            sequence=self._sequence,
            bvals_s_mm2=self._bvals,
            acquisition=replace(self._acquisition, **changes),
        )

    def volume(self, index: int) -> MRImage:
        """Volume ``index`` of a 4-D image as a 3-D image (its b-value kept as a 1-tuple)."""
        if self._data.ndim == 3:
            if index not in (0, -1):
                raise IndexError(f"a 3-D image has one volume, not index {index}")
            return self
        bvals = None if self._bvals is None else (self._bvals[index],)
        return MRImage(
            self._data[..., index],
            self._affine,
            sequence=self._sequence,
            bvals_s_mm2=bvals,
            acquisition=self._acquisition,
        )

    def reoriented(self, codes: str = "RAS") -> MRImage:
        """The same image with its voxel axes permuted and flipped to the orientation ``codes``.

        No resampling happens: voxel values are only reordered, so volumes and values are preserved
        exactly.
        """
        current = nio.io_orientation(self._affine)
        target = nio.axcodes2ornt(tuple(codes))
        transform = nio.ornt_transform(current, target)
        if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
            return self
        data = nio.apply_orientation(self._data, transform)
        affine = self._affine @ nio.inv_ornt_aff(transform, self.spatial_shape)
        return MRImage(
            np.ascontiguousarray(data),
            affine,
            sequence=self._sequence,
            bvals_s_mm2=self._bvals,
            acquisition=self._acquisition,
        )

    # ------------------------------------------------------------------ geometry helpers
    def same_grid(self, other: MRImage, *, atol_mm: float = AFFINE_ATOL_MM) -> bool:
        """Whether ``other`` has the same spatial shape and affine (within ``atol_mm``)."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self._affine, other._affine, atol=atol_mm)
        )

    def voxel_to_world_mm(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """World (RAS+, mm) coordinates of voxel indices, shape (..., 3) -> (..., 3)."""
        points = np.asarray(ijk, dtype=np.float64)
        return points @ self._affine[:3, :3].T + self._affine[:3, 3]

    # ------------------------------------------------------------------ NIfTI
    def to_nifti(self) -> nib.Nifti1Image:
        """A NIfTI-1 image (sform and qform = scanner, units mm and s)."""
        image = nib.Nifti1Image(np.asarray(self._data), self._affine)
        image.header.set_xyzt_units("mm", "sec")
        image.set_sform(self._affine, code=1)
        image.set_qform(self._affine, code=1)
        return image

    @classmethod
    def from_nifti(
        cls,
        image: nib.Nifti1Image,
        *,
        sequence: SequenceClass | str = SequenceClass.OTHER,
        bvals_s_mm2: Sequence[float] | None = None,
        acquisition: Acquisition | None = None,
    ) -> MRImage:
        """Wrap a nibabel image; scaled data come as float32, unscaled keep their stored dtype."""
        slope, inter = nifti_scaling(image)
        if slope == 1 and inter == 0:
            data = np.asanyarray(image.dataobj)
        else:
            data = image.get_fdata(dtype=np.float32)
        return cls(
            data,
            image.affine,
            sequence=sequence,
            bvals_s_mm2=bvals_s_mm2,
            acquisition=acquisition,
        )

    def __repr__(self) -> str:
        spacing = "x".join(f"{s:.3g}" for s in self.spacing_mm)
        return (
            f"MRImage({self._sequence.value}, shape={self.shape}, spacing={spacing} mm, "
            f"orientation={self.orientation}, dtype={self._data.dtype})"
        )


def check_same_grid(reference: MRImage, **others: MRImage | None) -> None:
    """Check that every image of ``others`` (None skipped) is 3-D and on ``reference``'s grid.

    Raises
    ------
    GeometryError
        Naming the first image that is not, and what to do.
    """
    for name, other in others.items():
        if other is None:
            continue
        if other.data.ndim != 3:
            raise GeometryError(f"{name} must be 3-D, got shape {other.shape}")
        if not reference.same_grid(other):
            raise GeometryError(
                f"{name} {other!r} is not on the grid of {reference!r}; resample it onto that "
                "grid first"
            )
