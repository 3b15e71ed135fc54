"""Scanner and protocol header values per vendor style and series kind.

Three styles are modelled, all at 1.5 T:

* ``"siemens"``: Siemens syngo MR B17/E11-era classic DICOM (one file per image);
* ``"ge"``: GE Signa classic DICOM (GE private b-value tag, signed pixels, slice-major order);
* ``"siemens_xa"``: Siemens syngo MR XA enhanced DICOM (one multi-frame file per series).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Series kinds written for each session.
KINDS = ("localizer", "flair", "dwi", "adc")


@dataclass(frozen=True)
class Scanner:
    """Equipment attributes of one scanner."""

    manufacturer: str
    model: str
    software: str | list[str]
    station: str
    serial: str
    institution: str = "Leukotrack Demo Hospital"
    field_strength: str = "1.5"
    frequency: str = "63.676862"


SCANNERS = {
    "siemens": Scanner("SIEMENS", "Avanto", "syngo MR B17", "MRC25401", "25401"),
    "ge": Scanner(
        "GE MEDICAL SYSTEMS",
        "Optima MR450w",
        ["27", "LX", "MR DV26.0_R03_1831.b"],
        "GEMR450W",
        "0000000414MR450",
        frequency="63.860415",
    ),
    "siemens_xa": Scanner(
        "Siemens Healthineers", "MAGNETOM Sola", "syngo MR XA31", "MRC18312", "18312"
    ),
}


@dataclass(frozen=True)
class SeriesProtocol:
    """Header values of one series kind for one vendor style.

    Attributes
    ----------
    number : int
        SeriesNumber.
    description : str
        SeriesDescription (and ProtocolName).
    image_type : list of str
        ImageType (the same on every image of the series).
    attrs : dict
        Further top-level attributes (keyword -> value).
    """

    number: int
    description: str
    image_type: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


def protocol(vendor: str, kind: str) -> SeriesProtocol:
    """The header profile of a series.

    Parameters
    ----------
    vendor : str
        ``"siemens"``, ``"ge"`` or ``"siemens_xa"``.
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    SeriesProtocol
    """
    siemens_like = vendor in ("siemens", "siemens_xa")
    if kind == "flair":
        if siemens_like:
            return SeriesProtocol(
                2,
                "t2_tirm_tra_dark-fluid",
                ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
                if vendor == "siemens"
                else ["ORIGINAL", "PRIMARY", "M", "NONE"],
                attrs={
                    "ScanningSequence": ["SE", "IR"],
                    "SequenceVariant": ["SK", "SP", "MP"],
                    "ScanOptions": ["IR", "PFP"],
                    "SequenceName": "*tir2d1_15",
                    "RepetitionTime": "9000",
                    "EchoTime": "86",
                    "InversionTime": "2500",
                    "EchoTrainLength": "15",
                    "FlipAngle": "150",
                    "PixelBandwidth": "220",
                    "NumberOfAverages": "1",
                    "InPlanePhaseEncodingDirection": "ROW",
                    "PercentPhaseFieldOfView": "81.25",
                },
            )
        return SeriesProtocol(
            3,
            "Ax T2 FLAIR",
            ["ORIGINAL", "PRIMARY", "OTHER"],
            attrs={
                "ScanningSequence": ["SE", "IR"],
                "SequenceVariant": ["SK", "MP", "OSP"],
                "ScanOptions": ["FAST_GEMS", "FILTERED_GEMS"],
                "RepetitionTime": "9000",
                "EchoTime": "120.4",
                "InversionTime": "2250",
                "EchoTrainLength": "24",
                "FlipAngle": "90",
                "PixelBandwidth": "162.773",
                "NumberOfAverages": "1",
                "InPlanePhaseEncodingDirection": "ROW",
                "PercentPhaseFieldOfView": "81.25",
            },
        )
    if kind == "dwi":
        if siemens_like:
            xa = vendor == "siemens_xa"
            return SeriesProtocol(
                3,
                "ep2d_diff_3scan_trace",
                # one ImageType for the b=0 and b=1000 images of the trace series (a differing
                # ImageType makes converters such as dcm2niix split the series in two)
                ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]
                if xa
                else ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND"],
                attrs={
                    "ScanningSequence": "EP",
                    "SequenceVariant": ["SK", "SP"],
                    "ScanOptions": ["PFP", "FS"],
                    "RepetitionTime": "4500",
                    "EchoTime": "89",
                    "EchoTrainLength": "1",
                    "FlipAngle": "90",
                    "PixelBandwidth": "965",
                    "NumberOfAverages": "3",
                    "InPlanePhaseEncodingDirection": "COL",
                    "PercentPhaseFieldOfView": "100",
                },
            )
        return SeriesProtocol(
            5,
            "Ax DWI 1000b",
            ["ORIGINAL", "PRIMARY", "OTHER"],
            attrs={
                "ScanningSequence": ["EP", "SE"],
                "SequenceVariant": "NONE",
                "ScanOptions": ["EPI_GEMS", "ACC_GEMS", "FS"],
                "RepetitionTime": "6000",
                "EchoTime": "81.6",
                "EchoTrainLength": "1",
                "FlipAngle": "90",
                "PixelBandwidth": "1953.12",
                "NumberOfAverages": "2",
                "InPlanePhaseEncodingDirection": "COL",
                "PercentPhaseFieldOfView": "100",
            },
        )
    if kind == "adc":
        if siemens_like:
            return SeriesProtocol(
                4,
                "ep2d_diff_3scan_trace_ADC",
                ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"]
                if vendor == "siemens"
                else ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"],
                attrs={
                    "ScanningSequence": "EP",
                    "SequenceVariant": ["SK", "SP"],
                    "ScanOptions": ["PFP", "FS"],
                    "SequenceName": "*ep_b0_1000",
                    "RepetitionTime": "4500",
                    "EchoTime": "89",
                    "EchoTrainLength": "1",
                    "FlipAngle": "90",
                    "NumberOfAverages": "3",
                    "InPlanePhaseEncodingDirection": "COL",
                },
            )
        return SeriesProtocol(
            500,
            "Apparent Diffusion Coefficient (mm2/s)",
            ["DERIVED", "SECONDARY", "ADC"],
            attrs={
                "ScanningSequence": ["EP", "SE"],
                "SequenceVariant": "NONE",
                "RepetitionTime": "6000",
                "EchoTime": "81.6",
                "InPlanePhaseEncodingDirection": "COL",
            },
        )
    if kind == "localizer":
        if siemens_like:
            return SeriesProtocol(
                1,
                "localizer",
                ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
                if vendor == "siemens"
                else ["ORIGINAL", "PRIMARY", "M", "NONE"],
                attrs={
                    "ScanningSequence": "GR",
                    "SequenceVariant": ["SP", "OSP"],
                    "ScanOptions": "",
                    "SequenceName": "*fl2d1",
                    "RepetitionTime": "8.6",
                    "EchoTime": "4",
                    "FlipAngle": "20",
                    "NumberOfAverages": "1",
                    "InPlanePhaseEncodingDirection": "ROW",
                },
            )
        return SeriesProtocol(
            1,
            "3-Plane Loc",
            ["ORIGINAL", "PRIMARY", "LOCALIZER"],
            attrs={
                "ScanningSequence": "GR",
                "SequenceVariant": ["SS", "SK"],
                "ScanOptions": ["FAST_GEMS"],
                "RepetitionTime": "5.1",
                "EchoTime": "1.7",
                "FlipAngle": "30",
                "InPlanePhaseEncodingDirection": "ROW",
            },
        )
    raise ValueError(f"unknown series kind: {kind}")
