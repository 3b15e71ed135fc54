"""One record per 2-D frame, whatever the file layout: classic (a file per slice), Enhanced MR
(multi-frame with functional groups), Siemens mosaic or United Imaging grid ("VFRAME"; many slices
tiled in one image, see :mod:`imaging.dicom.uih`).

Frames carry their geometry in DICOM patient coordinates (LPS+, mm), their diffusion and echo keys,
their rescale and (optionally) their stored pixel values. :mod:`imaging.dicom.stack` turns frames into a
volume.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from imaging.dicom.bvalues import b_value_s_mm2, frame_b_value
from imaging.dicom.uih import is_uih_grid, split_tiles, uih_grid
from imaging.errors import DicomReadError, TruncatedFileError, UihGridError

__all__ = ["Frame", "frames_from_dataset", "is_enhanced", "is_mosaic"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    """One 2-D image plane of a series.

    ``pixels`` (stored values, shape (rows, columns)) is ``None`` when only headers were read.
    ``pixel_spacing_mm`` is DICOM's (between rows, between columns).
    """

    path: str
    frame_index: int
    position_lps: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing_mm: tuple[float, float]
    rows: int
    columns: int
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    b_value: float | None
    b_source: str
    echo_time_ms: float | None
    temporal_index: int | None
    acquisition_number: int | None
    instance_number: int | None
    sop_uid: str
    slope: float
    intercept: float
    pixels: NDArray[Any] | None

    @property
    def volume_order_key(self) -> tuple[int, int, int, int]:
        """Acquisition order within one slice position (temporal, acquisition, instance, frame)."""
        return (
            self.temporal_index if self.temporal_index is not None else 0,
            self.acquisition_number if self.acquisition_number is not None else 0,
            self.instance_number if self.instance_number is not None else 0,
            self.frame_index,
        )


def is_enhanced(dataset: Dataset) -> bool:
    """Whether the data set is a multi-frame image with per-frame functional groups."""
    return "PerFrameFunctionalGroupsSequence" in dataset


def is_mosaic(dataset: Dataset) -> bool:
    """Whether the data set is a Siemens mosaic (several slices tiled in one image)."""
    image_type = [str(v).upper() for v in dataset.get("ImageType", [])]
    return "MOSAIC" in image_type and not is_enhanced(dataset)


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return default if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return default


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _pixels(dataset: Dataset, path: str) -> NDArray[Any]:
    try:
        return np.asarray(dataset.pixel_array)
    except (ValueError, EOFError, OSError) as error:
        text = str(error).lower()
        if "length" in text or "truncat" in text or "end of" in text or isinstance(error, EOFError):
            raise TruncatedFileError(
                f"{path}: the pixel data end early ({error}); copy the series again from PACS"
            ) from error
        raise DicomReadError(
            f"{path}: cannot decode the pixel data ({error}); transfer syntax "
            f"{dataset.file_meta.get('TransferSyntaxUID', '?')}"
        ) from error
    except (RuntimeError, NotImplementedError) as error:
        raise DicomReadError(
            f"{path}: no decoder for transfer syntax "
            f"{dataset.file_meta.get('TransferSyntaxUID', '?')} ({error}); "
            "install leukotrack's decoder dependencies (pylibjpeg plugins)"
        ) from error


def _rescale(source: Dataset) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept of a data set or functional group (1 and 0 when absent, a
    slope of 0 read as 1). NaN or infinite values are kept: stacking refuses them with a named error."""
    slope = _float(source.get("RescaleSlope"), 1.0)
    intercept = _float(source.get("RescaleIntercept"), 0.0)
    return (slope or 1.0), (intercept or 0.0)


def _classic_frame(
    dataset: Dataset,
    path: str,
    with_pixels: bool,
    position_lps: tuple[float, float, float] | None = None,
) -> Frame:
    """The file's one frame; ``position_lps`` replaces ImagePositionPatient when given."""
    b_value, b_source = b_value_s_mm2(dataset)
    slope, intercept = _rescale(dataset)
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing") or (1.0, 1.0)
    if position_lps is None:
        position_lps = tuple(float(v) for v in dataset.ImagePositionPatient)  # type: ignore[assignment]
    return Frame(
        path=path,
        frame_index=0,
        position_lps=position_lps,  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in dataset.ImageOrientationPatient),  # type: ignore[arg-type]
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        rows=int(dataset.Rows),
        columns=int(dataset.Columns),
        slice_thickness_mm=_float(dataset.get("SliceThickness")),
        spacing_between_slices_mm=_float(dataset.get("SpacingBetweenSlices")),
        b_value=b_value,
        b_source=b_source,
        echo_time_ms=_float(dataset.get("EchoTime")),
        temporal_index=_int(dataset.get("TemporalPositionIdentifier")),
        acquisition_number=_int(dataset.get("AcquisitionNumber")),
        instance_number=_int(dataset.get("InstanceNumber")),
        sop_uid=str(dataset.get("SOPInstanceUID", "")),
        slope=slope,
        intercept=intercept,
        pixels=_pixels(dataset, path) if with_pixels else None,
    )


def _group(item: Dataset, shared: Dataset | None, name: str) -> Dataset | None:
    """First item of functional group ``name``, per frame first, then shared."""
    for source in (item, shared):
        if source is not None and name in source and len(source[name].value):
            value: Dataset = source[name].value[0]
            return value
    return None


def _enhanced_frames(dataset: Dataset, path: str, with_pixels: bool) -> list[Frame]:
    shared_seq = dataset.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = dataset.PerFrameFunctionalGroupsSequence
    pixels = _pixels(dataset, path) if with_pixels else None
    if pixels is not None and pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    file_level: tuple[float | None, str] | None = None  # vendor tags, read once per file
    frames = []
    for index, item in enumerate(per_frame):
        position = _group(item, shared, "PlanePositionSequence")
        orientation = _group(item, shared, "PlaneOrientationSequence")
        measures = _group(item, shared, "PixelMeasuresSequence")
        if position is None or orientation is None or measures is None:
            raise DicomReadError(
                f"{path}: frame {index + 1} has no plane position, orientation or pixel measures; "
                "this multi-frame file carries no usable geometry"
            )
        transform = _group(item, shared, "PixelValueTransformationSequence")
        echo = _group(item, shared, "MREchoSequence")
        content = _group(item, shared, "FrameContentSequence")
        found = frame_b_value(item, shared_seq)
        if found is None:
            if file_level is None:
                file_level = b_value_s_mm2(dataset)
            found = file_level
        b_value, b_source = found
        spacing = measures.PixelSpacing
        slope, intercept = _rescale(transform if transform is not None else dataset)
        frames.append(
            Frame(
                path=path,
                frame_index=index,
                position_lps=tuple(float(v) for v in position.ImagePositionPatient),  # type: ignore[arg-type]
                orientation=tuple(float(v) for v in orientation.ImageOrientationPatient),  # type: ignore[arg-type]
                pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
                rows=int(dataset.Rows),
                columns=int(dataset.Columns),
                slice_thickness_mm=_float(measures.get("SliceThickness")),
                spacing_between_slices_mm=_float(
                    measures.get("SpacingBetweenSlices", dataset.get("SpacingBetweenSlices"))
                ),
                b_value=b_value,
                b_source=b_source,
                echo_time_ms=_float(echo.get("EffectiveEchoTime")) if echo is not None else None,
                temporal_index=_int(content.get("TemporalPositionIndex")) if content else None,
                acquisition_number=_int(dataset.get("AcquisitionNumber")),
                instance_number=_int(dataset.get("InstanceNumber")),
                sop_uid=str(dataset.get("SOPInstanceUID", "")),
                slope=slope,
                intercept=intercept,
                pixels=None if pixels is None else pixels[index],
            )
        )
    return frames


def _mosaic_frames(dataset: Dataset, path: str, with_pixels: bool) -> list[Frame]:
    """Split a Siemens mosaic with nibabel's wrapper (it reads the CSA header for the slice normal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(dataset)
        if not getattr(wrapper, "is_mosaic", False):
            raise DicomReadError(
                f"{path}: ImageType says MOSAIC but the Siemens CSA header does not give the number "
                "of slices; convert this series with dcm2niix"
            )
        n_slices = int(wrapper.n_mosaic)
        first = np.asarray(wrapper.image_position, dtype=float)
        normal = np.asarray(wrapper.slice_normal, dtype=float)
        spacing_mm = float(wrapper.voxel_sizes[2])
        tiles = wrapper.get_unscaled_data() if with_pixels else None
    base = _classic_frame(dataset, path, with_pixels=False)
    rows, columns = (
        (int(tiles.shape[0]), int(tiles.shape[1]))
        if tiles is not None
        else (
            int(dataset.Rows) // int(np.ceil(np.sqrt(n_slices))),
            int(dataset.Columns) // int(np.ceil(np.sqrt(n_slices))),
        )
    )
    frames = []
    for k in range(n_slices):
        position = first + k * spacing_mm * normal
        frames.append(
            Frame(
                path=path,
                frame_index=k,
                position_lps=(float(position[0]), float(position[1]), float(position[2])),
                orientation=base.orientation,
                pixel_spacing_mm=base.pixel_spacing_mm,
                rows=rows,
                columns=columns,
                slice_thickness_mm=base.slice_thickness_mm,
                spacing_between_slices_mm=spacing_mm,
                b_value=base.b_value,
                b_source=base.b_source,
                echo_time_ms=base.echo_time_ms,
                temporal_index=base.temporal_index,
                acquisition_number=base.acquisition_number,
                instance_number=base.instance_number,
                sop_uid=base.sop_uid,
                slope=base.slope,
                intercept=base.intercept,
                pixels=None if tiles is None else np.asarray(tiles[:, :, k]),
            )
        )
    return frames


def _uih_grid_frames(dataset: Dataset, path: str, with_pixels: bool) -> list[Frame]:
    """Split a UIH grid into its slices, each placed at its own position from (0065,1051)."""
    grid = uih_grid(dataset)
    if "ImageOrientationPatient" not in dataset:
        raise UihGridError(
            f"{path}: UIH grid image without ImageOrientationPatient; its slices cannot be "
            "oriented. Export the series again"
        )
    tiles = split_tiles(_pixels(dataset, path), grid) if with_pixels else None
    base = _classic_frame(dataset, path, with_pixels=False, position_lps=grid.positions_lps[0])
    return [
        replace(
            base,
            frame_index=k,
            position_lps=position,
            rows=grid.tile_rows,
            columns=grid.tile_columns,
            pixels=None if tiles is None else tiles[k],
        )
        for k, position in enumerate(grid.positions_lps)
    ]


def frames_from_dataset(dataset: Dataset, *, with_pixels: bool) -> list[Frame]:
    """All 2-D frames of one data set, in file order.

    Parameters
    ----------
    dataset : Dataset
        A data set read by :func:`imaging.dicom.files.read_dataset`.
    with_pixels : bool
        Decode the pixel data too (the data set must have been read with pixel data).

    Raises
    ------
    TruncatedFileError, DicomReadError
        When the pixel data cannot be decoded, or the geometry is missing.
    UihGridError
        When a UIH grid's private header cannot place its slices.
    """
    path = str(dataset.get("filename", "?"))
    if is_enhanced(dataset):
        return _enhanced_frames(dataset, path, with_pixels)
    if is_mosaic(dataset):
        return _mosaic_frames(dataset, path, with_pixels)
    if is_uih_grid(dataset):
        return _uih_grid_frames(dataset, path, with_pixels)
    if "ImagePositionPatient" not in dataset or "ImageOrientationPatient" not in dataset:
        raise DicomReadError(f"{path}: no ImagePositionPatient/ImageOrientationPatient")
    return [_classic_frame(dataset, path, with_pixels)]
