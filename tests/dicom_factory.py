"""Write small but real DICOM MR series for tests: known geometry, known values, any trap.

The phantom is non-cubic and anisotropic by default, so axis-order and spacing bugs cannot hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(
    degrees_x: float = 0.0, degrees_y: float = 0.0, degrees_z: float = 0.0
) -> NDArray[Any]:
    """Rotation matrix (3, 3) about x, then y, then z."""
    ax, ay, az = np.deg2rad([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Phantom:
    """A series to write: voxel data indexed (column, row, slice[, volume]) and its LPS geometry."""

    data: NDArray[Any]
    row_cosine: Sequence[float] = (1.0, 0.0, 0.0)
    column_cosine: Sequence[float] = (0.0, 1.0, 0.0)
    pixel_spacing: tuple[float, float] = (0.9, 0.8)  # (between rows, between columns)
    slice_spacing: float = 3.0
    origin_lps: Sequence[float] = (-20.0, -30.0, 10.0)
    b_values: Sequence[float] | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    series_uid: str = field(default_factory=generate_uid)
    study_uid: str = field(default_factory=generate_uid)

    @property
    def normal(self) -> NDArray[Any]:
        return np.cross(np.asarray(self.row_cosine, float), np.asarray(self.column_cosine, float))

    def affine_ras(self) -> NDArray[Any]:
        """The expected RAS+ affine for axes (column, row, slice)."""
        affine = np.eye(4)
        affine[:3, 0] = np.asarray(self.row_cosine) * self.pixel_spacing[1]
        affine[:3, 1] = np.asarray(self.column_cosine) * self.pixel_spacing[0]
        affine[:3, 2] = self.normal * self.slice_spacing
        affine[:3, 3] = self.origin_lps
        return LPS_TO_RAS @ affine

    def slice_datasets(self) -> list[Dataset]:
        """One data set per (slice, volume), instance numbers in acquisition order."""
        data = self.data if self.data.ndim == 4 else self.data[..., np.newaxis]
        n_slices, n_volumes = data.shape[2], data.shape[3]
        datasets = []
        for v in range(n_volumes):
            for k in range(n_slices):
                position = np.asarray(self.origin_lps) + k * self.slice_spacing * self.normal
                ds = base_dataset(self.study_uid, self.series_uid)
                ds.InstanceNumber = v * n_slices + k + 1
                ds.ImagePositionPatient = [f"{x:.6f}" for x in position]
                ds.ImageOrientationPatient = [
                    f"{x:.8f}" for x in (*self.row_cosine, *self.column_cosine)
                ]
                ds.PixelSpacing = [f"{s:g}" for s in self.pixel_spacing]
                ds.SliceThickness = f"{self.slice_spacing:g}"
                ds.SpacingBetweenSlices = f"{self.slice_spacing:g}"
                ds.SliceLocation = f"{float(position @ self.normal):.4f}"
                plane = np.ascontiguousarray(data[:, :, k, v].T)
                ds.Rows, ds.Columns = plane.shape
                ds.BitsAllocated = ds.BitsStored = 16
                ds.HighBit = 15
                ds.PixelRepresentation = 1 if plane.dtype == np.int16 else 0
                ds.PixelData = plane.astype(plane.dtype.newbyteorder("<")).tobytes()
                if self.b_values is not None:
                    ds.DiffusionBValue = float(self.b_values[v])
                for key, value in self.headers.items():
                    setattr(ds, key, value)
                datasets.append(ds)
        return datasets

    def uih_grid_datasets(self, *, tile_order: Sequence[int] | None = None) -> list[Dataset]:
        """One United Imaging grid ("VFRAME") data set per volume, as UIH scanners write them.

        The slices are tiled row by row, ``ceil(sqrt(n))`` across; empty cells of the last grid row
        are zero. There is no ImagePositionPatient: tile ``t`` holds slice ``tile_order[t]`` (default:
        slice ``t``), whose position is item ``t`` of the private sequence (0065,1051), under the
        private creator "Image Private Header" with (0065,1050) the number of tiles and (0065,1009)
        the b-value.
        """
        data = self.data if self.data.ndim == 4 else self.data[..., np.newaxis]
        columns, rows, n_slices, n_volumes = data.shape
        order = list(range(n_slices)) if tile_order is None else list(tile_order)
        across = int(np.ceil(np.sqrt(n_slices)))
        down = int(np.ceil(n_slices / across))
        datasets = []
        for v in range(n_volumes):
            grid = np.zeros((down * rows, across * columns), dtype=data.dtype)
            items = []
            for t, k in enumerate(order):
                r, c = divmod(t, across)
                grid[r * rows : (r + 1) * rows, c * columns : (c + 1) * columns] = data[
                    :, :, k, v
                ].T
                item = Dataset()
                position = np.asarray(self.origin_lps) + k * self.slice_spacing * self.normal
                item.ImagePositionPatient = [f"{x:.6f}" for x in position]
                item.SliceLocation = f"{float(position @ self.normal):.4f}"
                items.append(item)
            ds = base_dataset(self.study_uid, self.series_uid)
            ds.Manufacturer = "UIH"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME"]
            ds.SeriesDescription = "dti_tra_SaveBySlc"
            ds.InstanceNumber = v + 1
            ds.ImageOrientationPatient = [
                f"{x:.8f}" for x in (*self.row_cosine, *self.column_cosine)
            ]
            ds.PixelSpacing = [f"{s:g}" for s in self.pixel_spacing]
            ds.SliceThickness = f"{self.slice_spacing:g}"
            ds.SpacingBetweenSlices = f"{self.slice_spacing:g}"
            ds.Rows, ds.Columns = grid.shape
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1 if grid.dtype == np.int16 else 0
            ds.PixelData = grid.astype(grid.dtype.newbyteorder("<")).tobytes()
            block = ds.private_block(0x0065, "Image Private Header", create=True)
            block.add_new(0x50, "DS", str(n_slices))
            block.add_new(0x51, "SQ", pydicom.Sequence(items))
            if self.b_values is not None:
                block.add_new(0x09, "FD", float(self.b_values[v]))
            for key, value in self.headers.items():
                setattr(ds, key, value)
            datasets.append(ds)
        return datasets

    def write(self, folder: Path, *, names: str = "IM{index:05d}") -> list[Path]:
        """Write every data set as a file in ``folder``; file order shuffled against position."""
        folder.mkdir(parents=True, exist_ok=True)
        datasets = self.slice_datasets()
        order = np.random.default_rng(7).permutation(len(datasets))
        paths = []
        for index, d in zip(order, datasets, strict=True):
            path = folder / names.format(index=int(index))
            d.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths


def base_dataset(study_uid: str, series_uid: str) -> Dataset:
    """An MR image header with the mandatory identity and acquisition fields."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.PatientName = "PHANTOM^TEST"
    ds.PatientID = "PH001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = "20230314"
    ds.StudyTime = "093000"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "phantom"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "SK"
    ds.EchoTime = "90"
    ds.RepetitionTime = "5000"
    ds.MagneticFieldStrength = "1.5"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def phantom_volume(shape: tuple[int, ...] = (7, 8, 9), seed: int = 0) -> NDArray[np.int16]:
    """Distinct int16 values (no two voxels equal), shape (columns, rows, slices[, volumes])."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(int(np.prod(shape))).astype(np.int16)
    return values.reshape(shape)


def save(ds: Dataset, path: Path) -> Path:
    """Save a data set as a DICOM file (with preamble and file meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
