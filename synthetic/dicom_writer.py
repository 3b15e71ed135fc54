"""DICOM datasets of the simulated series: common attributes and classic MR (Siemens, GE).

Enhanced (multi-frame) MR is in :mod:`synthetic.dicom_enhanced`, the presentation state in
:mod:`synthetic.presentation_state`.

Pixel arrays handed in use the ``(i, j, k[, volume])`` axis order of
:class:`synthetic.geometry.SliceGrid` (column, row, slice); each 2D DICOM image is
``pixels[:, :, k].T`` (rows x columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from synthetic.geometry import IOP_DECIMALS, IPP_DECIMALS, SliceGrid, ds_str
from synthetic.vendors import SCANNERS, SeriesProtocol

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
#: Fixed implementation identity, so files do not change with the pydicom version.
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"
IMPLEMENTATION_VERSION = "LEUKOTRACK_SYN1"


def make_uid(seed: int, case_id: str, *parts: object) -> str:
    """Deterministic DICOM UID from the seed, the case and a purpose path."""
    return generate_uid(entropy_srcs=[str(seed), case_id, *[str(p) for p in parts]])


@dataclass
class Patient:
    """Fictitious patient."""

    name: str
    patient_id: str
    birth_date: date
    sex: str = "F"
    weight_kg: str = "58"
    size_m: str = "1.63"

    def age_at(self, when: date) -> str:
        """DICOM age string (``nnnY``) on a date."""
        years = when.year - self.birth_date.year
        if (when.month, when.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return f"{years:03d}Y"


@dataclass
class Study:
    """One MRI session = one DICOM study."""

    seed: int
    case_id: str
    index: int
    vendor: str
    patient: Patient
    study_date: date
    study_time: str
    study_uid: str
    frame_of_reference_uid: str
    accession: str
    study_id: str
    description: str = "MRT Schaedel"


@dataclass
class Series:
    """One series to write.

    Attributes
    ----------
    kind : str
        ``"localizer"``, ``"flair"``, ``"dwi"`` or ``"adc"``.
    protocol : SeriesProtocol
        Header profile.
    grids : list of SliceGrid
        One grid (or one per image for a multi-plane localizer).
    pixels : list of numpy.ndarray
        Stored integers per grid, shape (I, J, K) or (I, J, K, V) for DWI volumes.
    series_uid, series_time : str
        SeriesInstanceUID and SeriesTime (HHMMSS.ffffff).
    b_values : list of float
        Per DWI volume.
    rescale : tuple of float or None
        (slope, intercept) to write, or None for no Modality LUT attributes.
    dtype : str
        ``"uint16"`` or ``"int16"`` stored pixel type.
    bits_stored : int
        BitsStored.
    window : tuple of float
        Default (center, width) in rescaled units.
    b_value_tags : tuple of str
        Which b-value tags to write on classic files: any of ``"standard"`` (0018,9087),
        ``"siemens"`` (0019,100C), ``"ge"`` (0043,1039); ``"standard_nonzero"`` writes (0018,9087)
        only on b > 0 images (GE behaviour).
    window_by_b : dict
        Per-b-value (center, width) for DWI images (per image / per frame).
    descending : bool
        Number instances from the last slice position (largest IPP.n) down (GE style).
    slice_major : bool
        DWI: all volumes of one slice position before the next (GE style) instead of all
        slices of one b-value before the next (Siemens style).
    """

    kind: str
    protocol: SeriesProtocol
    grids: list[SliceGrid]
    pixels: list[np.ndarray]
    series_uid: str
    series_time: str
    b_values: list[float] = field(default_factory=list)
    rescale: tuple[float, float] | None = None
    dtype: str = "uint16"
    bits_stored: int = 12
    window: tuple[float, float] = (300.0, 600.0)
    window_by_b: dict[float, tuple[float, float]] = field(default_factory=dict)
    b_value_tags: tuple[str, ...] = ()
    descending: bool = False
    slice_major: bool = False


def _file_meta(sop_class: str, sop_uid: str, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _da(d: date) -> str:
    return d.strftime("%Y%m%d")


def base_dataset(study: Study, series: Series | None, sop_class: str, sop_uid: str) -> Dataset:
    """Patient, study, series and equipment attributes common to every object of a study."""
    scanner = SCANNERS[study.vendor]
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid, ExplicitVRLittleEndian)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = _da(study.study_date)
    ds.StudyTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.Modality = "MR"
    ds.Manufacturer = scanner.manufacturer
    ds.InstitutionName = scanner.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = scanner.station
    ds.StudyDescription = study.description
    ds.ManufacturerModelName = scanner.model
    p = study.patient
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = _da(p.birth_date)
    ds.PatientSex = p.sex
    ds.PatientAge = p.age_at(study.study_date)
    ds.PatientSize = p.size_m
    ds.PatientWeight = p.weight_kg
    ds.StudyInstanceUID = study.study_uid
    ds.StudyID = study.study_id
    if series is not None:
        ds.SeriesDate = _da(study.study_date)
        ds.SeriesTime = series.series_time
        ds.SeriesDescription = series.protocol.description
        ds.ProtocolName = series.protocol.description
        ds.SeriesInstanceUID = series.series_uid
        ds.SeriesNumber = series.protocol.number
        ds.BodyPartExamined = "BRAIN"
        ds.MagneticFieldStrength = scanner.field_strength
        ds.DeviceSerialNumber = scanner.serial
        ds.SoftwareVersions = scanner.software
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
    return ds


def _set_pixels(ds: Dataset, image: np.ndarray, series: Series) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = series.bits_stored
    ds.HighBit = series.bits_stored - 1
    ds.PixelRepresentation = 1 if series.dtype == "int16" else 0
    arr = np.ascontiguousarray(image.astype("<i2" if series.dtype == "int16" else "<u2"))
    ds.PixelData = arr.tobytes()


def _window(ds: Dataset, series: Series, b: float | None = None) -> None:
    center, width = series.window_by_b.get(b, series.window) if b is not None else series.window
    ds.WindowCenter = ds_str(center, 4)
    ds.WindowWidth = ds_str(width, 4)


def _rescale(ds: Dataset, series: Series) -> None:
    if series.rescale is not None:
        ds.RescaleIntercept = ds_str(series.rescale[1], 6)
        ds.RescaleSlope = ds_str(series.rescale[0], 6)
        ds.RescaleType = "US"


def _geometry(ds: Dataset, grid: SliceGrid, k: int) -> None:
    ds.SliceThickness = ds_str(grid.slice_thickness, 4)
    ds.SpacingBetweenSlices = ds_str(grid.spacing_between_slices, 4)
    ds.ImagePositionPatient = [ds_str(v, IPP_DECIMALS) for v in grid.ipp_lps[k]]
    ds.ImageOrientationPatient = [ds_str(v, IOP_DECIMALS) for v in grid.iop_lps]
    ds.SliceLocation = ds_str(float(grid.slice_locations()[k]), IPP_DECIMALS)
    ds.PixelSpacing = [ds_str(v, 6) for v in grid.pixel_spacing]


def _b_value_tags(ds: Dataset, series: Series, b: float) -> None:
    tags = series.b_value_tags
    if "standard" in tags or ("standard_nonzero" in tags and b > 0):
        ds.DiffusionBValue = float(b)
        ds.DiffusionDirectionality = "ISOTROPIC" if b > 0 else "NONE"
    if "siemens" in tags:
        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        block.add_new(0x0C, "IS", str(int(b)))
        block.add_new(0x0D, "CS", "ISOTROPIC" if b > 0 else "NONE")
    if "ge" in tags:
        acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        acq.add_new(0x9C, "LO", "epi2")
        # diffusion direction (0019,10BB-BD): zero for b=0; trace images carry a unit vector
        direction = "0.57735" if b > 0 else "0"
        for element in (0xBB, 0xBC, 0xBD):
            acq.add_new(element, "DS", direction)
        parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        parm.add_new(0x39, "IS", [int(b), 8, 0, 0])


def classic_datasets(study: Study, series: Series) -> list[Dataset]:
    """One classic MR Image Storage dataset per image of a series.

    Parameters
    ----------
    study : Study
        The session.
    series : Series
        The series (for DWI ``pixels`` has a trailing volume axis matching ``b_values``).

    Returns
    -------
    list of pydicom.dataset.Dataset
        Datasets in InstanceNumber order.
    """
    images: list[tuple[SliceGrid, int, np.ndarray, float | None, int]] = []
    for grid, pix in zip(series.grids, series.pixels, strict=True):
        if pix.ndim == 4:
            for v, bval in enumerate(series.b_values):
                for k in range(grid.n_slices):
                    images.append((grid, k, pix[:, :, k, v].T, bval, v))
        else:
            for k in range(grid.n_slices):
                images.append((grid, k, pix[:, :, k].T, None, 0))
    n_pos = series.grids[0].n_slices

    def order(it: tuple) -> tuple[int, int]:
        pos = n_pos - 1 - it[1] if series.descending else it[1]
        # GE: all volumes of a slice position before the next position; Siemens: volume-major
        return (pos, it[4]) if series.slice_major else (it[4], pos)

    if len(series.grids) == 1:
        images.sort(key=order)
    out = []
    proto = series.protocol
    for inst, (grid, k, image, b, _v) in enumerate(images, start=1):
        sop_uid = make_uid(study.seed, study.case_id, "sop", series.series_uid, inst)
        ds = base_dataset(study, series, MR_IMAGE_STORAGE, sop_uid)
        ds.ImageType = proto.image_type
        ds.InstanceCreationDate = ds.StudyDate
        ds.InstanceCreationTime = series.series_time
        ds.AcquisitionDate = ds.StudyDate
        ds.AcquisitionTime = series.series_time
        ds.ContentDate = ds.StudyDate
        ds.ContentTime = series.series_time
        for key, value in proto.attrs.items():
            setattr(ds, key, value)
        if b is not None and "SequenceName" not in proto.attrs and study.vendor != "ge":
            ds.SequenceName = "*ep_b0" if b == 0 else f"*ep_b{int(b)}t"
        ds.MRAcquisitionType = "2D"
        ds.ImagingFrequency = SCANNERS[study.vendor].frequency
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.AcquisitionMatrix = (
            [0, grid.rows, grid.columns, 0]
            if proto.attrs.get("InPlanePhaseEncodingDirection") == "COL"
            else [grid.rows, 0, 0, grid.columns]
        )
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = inst
        _geometry(ds, grid, k)
        if b is not None:
            _b_value_tags(ds, series, b)
        _set_pixels(ds, image, series)
        _window(ds, series, b)
        _rescale(ds, series)
        out.append(ds)
    return out


def item(**kwargs: object) -> Dataset:
    """A sequence item with the given attributes."""
    item = Dataset()
    for key, value in kwargs.items():
        setattr(item, key, value)
    return item


def set_transfer_syntax(ds: Dataset, transfer_syntax: str) -> None:
    """Encode a dataset's pixel data in a transfer syntax (compressing when needed)."""
    if transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
        return
    ds.compress(transfer_syntax, generate_instance_uid=False)
