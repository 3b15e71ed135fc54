"""Named errors of the imaging layer.

Every message says what is wrong, where, and what to do about it. Callers (the command line, the batch
runner, the dashboard) show ``str(error)`` to the user and never need a traceback.
"""

from __future__ import annotations

__all__ = [
    "AdcUnitError",
    "DecompressionLimitError",
    "DicomReadError",
    "DuplicateSliceError",
    "DwiInputError",
    "EditError",
    "GeometryError",
    "ImageContentError",
    "ImageTooLargeError",
    "ImagingError",
    "MissingSliceError",
    "MixedOrientationError",
    "MixedPatientsError",
    "MixedSeriesError",
    "MixedVolumesError",
    "NiftiLayoutError",
    "NoImagesFoundError",
    "SeriesTooSmallError",
    "TruncatedFileError",
    "TruncatedNiftiError",
    "UihGridError",
    "UnevenSpacingError",
]


class ImagingError(Exception):
    """Base class of every error raised by :mod:`imaging`."""


class NoImagesFoundError(ImagingError):
    """A folder holds no loadable DICOM or NIfTI images."""


class DicomReadError(ImagingError):
    """A file looks like DICOM but cannot be parsed."""


class TruncatedFileError(DicomReadError):
    """A DICOM file ends before its pixel data (or its header) does."""


class GeometryError(ImagingError):
    """The slices of a series do not form one regular grid."""


class MissingSliceError(GeometryError):
    """A gap in the slice positions: at least one slice of the series is absent."""


class DuplicateSliceError(GeometryError):
    """Two different images claim the same slice position in the same volume."""


class UnevenSpacingError(GeometryError):
    """Slice positions are not evenly spaced (and not explained by a missing slice)."""


class MixedOrientationError(GeometryError):
    """The images of one series have different orientations (a localizer, or a mixed folder)."""


class UihGridError(GeometryError):
    """A United Imaging grid ("VFRAME") image whose private header cannot place its slices."""


class MixedSeriesError(ImagingError):
    """A folder that should hold one series holds several."""


class MixedVolumesError(GeometryError):
    """The images of a multi-volume series cannot be split into consistent volumes."""


class AdcUnitError(ImagingError):
    """The unit of an ADC map cannot be determined from its values."""


class NiftiLayoutError(ImagingError):
    """A NIfTI case folder does not follow the documented BIDS-like layout."""


class DwiInputError(ImagingError):
    """A DWI series lacks what the pipeline needs (b-values, a diffusion-weighted volume)."""


class SeriesTooSmallError(GeometryError):
    """A series covers too few slices to be registered or measured (e.g. a 2-slice test series)."""


class TruncatedNiftiError(NiftiLayoutError):
    """A NIfTI file (or its gzip stream) ends before the voxels its header declares."""


class ImageTooLargeError(ImagingError):
    """An image declares more voxel data than the configured limit (``LEUKOTRACK_MAX_IMAGE_MB``)."""


class DecompressionLimitError(ImagingError):
    """A compressed file expands beyond the configured cap (``LEUKOTRACK_MAX_DECOMPRESSED_MB``)."""


class ImageContentError(ImagingError):
    """The voxel values cannot be an MR image of that kind (all NaN, inverted, NaN rescale)."""


class MixedPatientsError(ImagingError):
    """A case folder holds studies of more than one patient (a case must be one patient)."""


class EditError(ImagingError):
    """A manual lesion edit cannot be applied (no lesion at the point, a seed not brighter than its
    surroundings, a point outside the image)."""
