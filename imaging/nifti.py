"""NIfTI files with their sidecars: ``.bval`` for DWI and a dcm2niix/BIDS-style JSON.

Writing is atomic (:func:`safeio.atomic_files`): all files are written under temporary names in the
target folder and renamed only when every one is complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from imaging.errors import (
    ImageContentError,
    NiftiLayoutError,
    TruncatedFileError,
    TruncatedNiftiError,
)
from imaging.image import Acquisition, MRImage, nifti_scaling
from imaging.limits import check_image_bytes, gunzip_chunks, read_small_file
from imaging.sequence import SequenceClass
from imaging.units import ADC_UNIT, adc_to_um2s
from safeio import atomic_files

log = logging.getLogger(__name__)

__all__ = [
    "load_nifti",
    "nifti_stem",
    "open_nifti",
    "read_bval",
    "read_sidecar",
    "save_nifti",
    "sidecar_from_acquisition",
]


def _software_version() -> str:
    try:
        return version("leukotrack")
    except PackageNotFoundError:  # running from a source tree without installation
        return "unknown"


def nifti_stem(path: Path) -> Path:
    """``sub-1_dwi.nii.gz`` -> ``sub-1_dwi`` (same folder)."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path.with_suffix("")


def sidecar_from_acquisition(image: MRImage) -> dict[str, Any]:
    """A BIDS/dcm2niix-style JSON sidecar (times in seconds) with leukotrack's classification.

    No patient identity and no dates are written (as dcm2niix does by default).
    """
    acq = image.acquisition
    sidecar: dict[str, Any] = {
        "Modality": "MR",
        "Manufacturer": acq.vendor or None,
        "ManufacturersModelName": acq.model or None,
        "MagneticFieldStrength": acq.field_strength_t,
        "SeriesDescription": acq.series_description or None,
        "SeriesNumber": acq.series_number,
        "SequenceName": acq.sequence_name or None,
        "ImageType": list(acq.image_type) or None,
        "EchoTime": None if acq.echo_time_ms is None else acq.echo_time_ms / 1000.0,
        "RepetitionTime": None
        if acq.repetition_time_ms is None
        else acq.repetition_time_ms / 1000.0,
        "InversionTime": None if acq.inversion_time_ms is None else acq.inversion_time_ms / 1000.0,
        "SeriesInstanceUID": acq.series_uid,
        "StudyInstanceUID": acq.study_uid,
        "Units": acq.unit or None,
        "LeukotrackSequenceClass": image.sequence.value,
        "LeukotrackClassificationReasons": list(acq.classification_reasons),
        "LeukotrackNotes": list(acq.notes),
        "ConversionSoftware": "leukotrack",
        "ConversionSoftwareVersion": _software_version(),
    }
    return {key: value for key, value in sidecar.items() if value not in (None, [], "")}


def save_nifti(image: MRImage, path: Path) -> list[Path]:
    """Write ``image`` as NIfTI (``.nii`` or ``.nii.gz``) with a JSON sidecar and, for DWI, a ``.bval``.

    Returns the paths written. Atomic: see :func:`safeio.atomic_files`.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise NiftiLayoutError(f"{path}: the output name must end in .nii or .nii.gz")
    stem = nifti_stem(path)
    targets = [path, stem.with_suffix(".json")]
    if image.bvals_s_mm2 is not None:
        targets.append(stem.with_suffix(".bval"))
    with atomic_files(*targets) as temporaries:
        nib.save(image.to_nifti(), temporaries[0])
        temporaries[1].write_text(json.dumps(sidecar_from_acquisition(image), indent=2) + "\n")
        if image.bvals_s_mm2 is not None:
            temporaries[2].write_text(" ".join(f"{b:g}" for b in image.bvals_s_mm2) + "\n")
    return targets


def read_bval(path: Path) -> list[float]:
    """b-values (s/mm2) from an FSL/BIDS ``.bval`` file (whitespace-separated, one line).

    Raises
    ------
    NiftiLayoutError
        When the file is not text, or holds anything but finite, non-negative numbers.
    """
    try:
        text = read_small_file(path, what="b-value file").decode("utf-8-sig")
        values = [float(token) for token in text.split()]
    except (UnicodeDecodeError, ValueError) as error:
        raise NiftiLayoutError(
            f"{path}: not a list of numbers ({error}); write the b-values (s/mm2) separated by "
            "spaces, one per volume"
        ) from error
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise NiftiLayoutError(
            f"{path}: b-values must be finite and non-negative (s/mm2), found {values}"
        )
    return values


def _sequence_from_name(path: Path) -> SequenceClass | None:
    name = nifti_stem(path).name
    suffix = name.rsplit("_", 1)[-1].upper()
    return {"FLAIR": SequenceClass.FLAIR, "DWI": SequenceClass.DWI, "ADC": SequenceClass.ADC}.get(
        suffix
    )


#: Sidecar fields read as numbers, and as text.
_NUMBER_FIELDS = ("EchoTime", "RepetitionTime", "InversionTime", "MagneticFieldStrength")
_TEXT_FIELDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesDescription",
    "Manufacturer",
    "ManufacturersModelName",
    "SequenceName",
    "LeukotrackSequenceClass",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
)


def _whole(value: object) -> int | None:
    """A whole number from JSON (``3``, ``3.0`` or ``"3"``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a NIfTI image (``{}`` when absent), its known fields type-checked.

    Raises
    ------
    NiftiLayoutError
        When the file is not JSON, not a JSON object, or a known field has the wrong type (e.g.
        ``"EchoTime": "abc"``); the message names the file and the field.
    """
    if not path.is_file():
        return {}
    try:
        sidecar = json.loads(read_small_file(path, what="JSON sidecar").decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise NiftiLayoutError(
            f"{path}: not a readable JSON sidecar ({error}); fix it (UTF-8 JSON, as dcm2niix "
            "writes) or delete it"
        ) from error
    if not isinstance(sidecar, dict):
        raise NiftiLayoutError(
            f"{path}: a JSON sidecar must be an object of fields, not a {type(sidecar).__name__}; "
            "fix it or delete it"
        )

    def wrong(key: str, wanted: str) -> NiftiLayoutError:
        return NiftiLayoutError(
            f"{path}: field {key} is {sidecar[key]!r} but must be {wanted}; fix the sidecar or "
            "delete the field"
        )

    for key in _NUMBER_FIELDS:
        value = sidecar.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise wrong(key, "a finite number")
    if sidecar.get("SeriesNumber") is not None and _whole(sidecar["SeriesNumber"]) is None:
        raise wrong("SeriesNumber", "a whole number")
    for key in _TEXT_FIELDS:
        if sidecar.get(key) is not None and not isinstance(sidecar[key], str | int | float):
            raise wrong(key, "text")
    image_type = sidecar.get("ImageType")
    if image_type is not None and (
        not isinstance(image_type, list) or not all(isinstance(v, str) for v in image_type)
    ):
        raise wrong("ImageType", "a list of text values")
    if "LeukotrackSequenceClass" in sidecar:
        valid = [c.value for c in SequenceClass]
        if str(sidecar["LeukotrackSequenceClass"]) not in valid:
            raise wrong("LeukotrackSequenceClass", f"one of {', '.join(valid)}")
    return sidecar


def _acquisition_from_sidecar(
    sidecar: dict[str, Any], *, source: str, sequence: SequenceClass, reasons: tuple[str, ...]
) -> Acquisition:
    def ms(key: str) -> float | None:
        value = sidecar.get(key)
        return None if value is None else float(value) * 1000.0

    number = sidecar.get("SeriesNumber")
    return Acquisition(
        study_uid=sidecar.get("StudyInstanceUID"),
        series_uid=sidecar.get("SeriesInstanceUID"),
        series_number=_whole(number) if number is not None else None,
        series_description=str(sidecar.get("SeriesDescription", "")),
        vendor=str(sidecar.get("Manufacturer", "")),
        model=str(sidecar.get("ManufacturersModelName", "")),
        field_strength_t=sidecar.get("MagneticFieldStrength"),
        echo_time_ms=ms("EchoTime"),
        repetition_time_ms=ms("RepetitionTime"),
        inversion_time_ms=ms("InversionTime"),
        sequence_name=str(sidecar.get("SequenceName", "")),
        image_type=tuple(sidecar.get("ImageType", ())),
        source=source,
        classification_reasons=reasons,
        extra={k: v for k, v in sidecar.items() if isinstance(v, str | int | float | bool)},
    )


def _check_gzip_whole(path: Path) -> None:
    """Raise :class:`TruncatedNiftiError` when a ``.nii.gz`` is a cut or damaged gzip stream
    (decompressed in chunks and counted, within the decompression cap)."""
    try:
        with path.open("rb") as handle:
            for _chunk in gunzip_chunks(handle, where=str(path)):
                pass
    except TruncatedFileError as error:
        raise TruncatedNiftiError(
            f"{path}: the gzip stream is cut or damaged ({error}); the file is truncated (an "
            "interrupted copy): copy or convert it again"
        ) from error


def open_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI-1/2 file lazily (header read, voxels not yet), its declared size checked.

    Raises
    ------
    NiftiLayoutError
        When the file is missing, damaged or not NIfTI.
    ImageTooLargeError
        When the header declares more voxel data than ``$LEUKOTRACK_MAX_IMAGE_MB`` (as loaded:
        float32 when a scale slope or intercept applies).
    TruncatedNiftiError
        When an uncompressed file is shorter than its header says.
    """
    if not path.is_file():
        raise NiftiLayoutError(f"{path}: no such NIfTI file")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises several types for damaged files
        if path.name.endswith(".gz"):
            _check_gzip_whole(path)
        raise NiftiLayoutError(f"{path}: not a readable NIfTI file ({error})") from error
    if not isinstance(image, nib.Nifti1Image):
        raise NiftiLayoutError(f"{path}: {type(image).__name__} is not a NIfTI image")
    header = image.header
    shape = tuple(int(n) for n in header.get_data_shape())
    itemsize = header.get_data_dtype().itemsize
    n_bytes = math.prod(shape) * itemsize
    slope, inter = nifti_scaling(image)
    scaled = slope != 1 or inter != 0
    loaded = max(itemsize, 4) if scaled else itemsize  # scaled voxels are read as float32
    check_image_bytes(
        math.prod(shape) * loaded,
        where=str(path),
        what=f"{'x'.join(str(n) for n in shape)} voxels of {loaded * 8} bits"
        + (" (scaled to float32)" if scaled and loaded != itemsize else ""),
    )
    if not path.name.endswith(".gz"):
        end = int(getattr(image.dataobj, "offset", header.get_data_offset())) + n_bytes
        size = path.stat().st_size
        if size < end:
            raise TruncatedNiftiError(
                f"{path}: the file holds {size} bytes but its header declares {end} "
                f"({'x'.join(str(n) for n in shape)} voxels): it is truncated (an interrupted "
                "copy); copy or convert it again"
            )
    return image


def _read_voxels(
    nifti: nib.Nifti1Image, path: Path, sequence: SequenceClass, acquisition: Acquisition
) -> MRImage:
    """The voxels of an opened NIfTI, a damaged or cut (gzip) stream as a named error."""
    try:
        return MRImage.from_nifti(nifti, sequence=sequence, acquisition=acquisition)
    except (EOFError, OSError, zlib.error, ValueError) as error:
        raise TruncatedNiftiError(
            f"{path}: the voxel data cannot be read ({type(error).__name__}: {error}); the file is "
            "truncated or damaged (an interrupted copy): copy or convert it again"
        ) from error


def _finite_voxels(image: MRImage, path: Path) -> MRImage:
    """NaN/inf voxels set to 0 with a note (and a warning); an image without any finite voxel is
    refused."""
    data = np.asarray(image.data)
    if not np.issubdtype(data.dtype, np.floating):
        return image
    bad = ~np.isfinite(data)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return image
    if n_bad == data.size:
        raise ImageContentError(
            f"{path}: every voxel is NaN or infinite; the image holds no data. Convert it again "
            "from the DICOM series"
        )
    note = (
        f"{n_bad} of {data.size} voxels ({100 * n_bad / data.size:.2g} %) were NaN or infinite "
        "in the file; set to 0"
    )
    log.warning("%s: %s", path, note)
    cleaned = np.where(bad, np.zeros((), data.dtype), data)
    return image.with_data(cleaned).with_acquisition(notes=(*image.acquisition.notes, note))


def load_nifti(path: Path, *, sequence: SequenceClass | str | None = None) -> MRImage:
    """Load a NIfTI image with its sidecars.

    Parameters
    ----------
    path : Path
        ``.nii`` or ``.nii.gz``. A ``.bval`` and a ``.json`` with the same stem are read when present.
    sequence : SequenceClass or str, optional
        The class; by default taken from the BIDS suffix (``_FLAIR``, ``_dwi``, ``_ADC``), then from
        the sidecar's ``LeukotrackSequenceClass``, else OTHER.

    Raises
    ------
    NiftiLayoutError
        When the file is missing or unreadable, or a DWI has no ``.bval`` or a wrong number of them.
    AdcUnitError
        When an ADC map's unit cannot be told from its values.
    """
    path = Path(path)
    nifti = open_nifti(path)
    stem = nifti_stem(path)
    sidecar_path = stem.with_suffix(".json")
    sidecar = read_sidecar(sidecar_path)
    reasons: tuple[str, ...]
    if sequence is not None:
        sequence = SequenceClass(sequence)
        reasons = ("given by the caller",)
    elif (from_name := _sequence_from_name(path)) is not None:
        sequence = from_name
        reasons = (f"BIDS suffix _{nifti_stem(path).name.rsplit('_', 1)[-1]}",)
    elif "LeukotrackSequenceClass" in sidecar:
        sequence = SequenceClass(sidecar["LeukotrackSequenceClass"])
        reasons = ("LeukotrackSequenceClass in the JSON sidecar",)
    else:
        sequence, reasons = SequenceClass.OTHER, ("no BIDS suffix or sidecar class",)
    acquisition = _acquisition_from_sidecar(
        sidecar, source=str(path), sequence=sequence, reasons=reasons
    )
    image = _finite_voxels(_read_voxels(nifti, path, sequence, acquisition), path)
    if sequence is SequenceClass.DWI:
        bval_path = stem.with_suffix(".bval")
        if not bval_path.is_file():
            raise NiftiLayoutError(
                f"{path}: a DWI needs its b-values beside it in {bval_path.name} (one per volume)"
            )
        bvals = read_bval(bval_path)
        if len(bvals) != image.n_volumes:
            raise NiftiLayoutError(
                f"{bval_path}: {len(bvals)} b-values for {image.n_volumes} volume(s) in {path.name}"
            )
        return image.with_data(image.data, bvals_s_mm2=bvals)
    if sequence is SequenceClass.ADC:
        values, stored_unit = adc_to_um2s(np.asarray(image.data))
        note = f"ADC stored in {stored_unit}; converted to {ADC_UNIT}"
        return image.with_data(values).with_acquisition(
            unit=ADC_UNIT, notes=(*image.acquisition.notes, note)
        )
    return image
