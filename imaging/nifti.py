"""NIfTI files with their sidecars: ``.bval`` for DWI and a dcm2niix/BIDS-style JSON.

Writing is atomic (:func:`safeio.atomic_files`): all files are written under temporary names in the
target folder and renamed only when every one is complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from imaging.errors import NiftiLayoutError
from imaging.image import Acquisition, MRImage
from imaging.sequence import SequenceClass
from imaging.units import ADC_UNIT, adc_to_um2s
from safeio import atomic_files

__all__ = [
    "load_nifti",
    "nifti_stem",
    "open_nifti",
    "read_bval",
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
    """b-values (s/mm2) from an FSL/BIDS ``.bval`` file (whitespace-separated, one line)."""
    try:
        return [float(token) for token in path.read_text().split()]
    except ValueError as error:
        raise NiftiLayoutError(f"{path}: not a list of numbers ({error})") from error


def _sequence_from_name(path: Path) -> SequenceClass | None:
    name = nifti_stem(path).name
    suffix = name.rsplit("_", 1)[-1].upper()
    return {"FLAIR": SequenceClass.FLAIR, "DWI": SequenceClass.DWI, "ADC": SequenceClass.ADC}.get(
        suffix
    )


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
        series_number=int(number) if number is not None else None,
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


def open_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI-1/2 file lazily (header read, voxels not yet).

    Raises
    ------
    NiftiLayoutError
        When the file is missing, damaged or not NIfTI.
    """
    if not path.is_file():
        raise NiftiLayoutError(f"{path}: no such NIfTI file")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises several types for damaged files
        raise NiftiLayoutError(f"{path}: not a readable NIfTI file ({error})") from error
    if not isinstance(image, nib.Nifti1Image):
        raise NiftiLayoutError(f"{path}: {type(image).__name__} is not a NIfTI image")
    return image


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
    sidecar: dict[str, Any] = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
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
    image = MRImage.from_nifti(nifti, sequence=sequence, acquisition=acquisition)
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
        return image.with_data(values).with_acquisition(unit=ADC_UNIT, notes=(note,))
    return image
