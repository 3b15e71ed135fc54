"""Classify a series as DWI, ADC, FLAIR, T1 or OTHER from its headers, and say why.

Evidence, in order of trust: ImageType (and the enhanced FrameType / AcquisitionContrast), the b-values
found in any vendor tag, the pulse sequence (scanning sequence, sequence variant, sequence name, inversion
and echo times). The series description is read only when nothing else decides, and the reasons say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataset import Dataset

from imaging.sequence import SequenceClass

__all__ = [
    "FLAIR_MIN_ECHO_MS",
    "FLAIR_MIN_INVERSION_MS",
    "T1_MAX_ECHO_MS",
    "T1_MAX_GRADIENT_ECHO_TR_MS",
    "T1_MAX_SPIN_ECHO_TR_MS",
    "classify",
]

#: FLAIR inverts CSF: TI about 1800-2800 ms at 1.5-3 T. STIR (~150 ms) and T1 IR (~800-1100 ms) don't.
FLAIR_MIN_INVERSION_MS = 1500.0
#: FLAIR is T2-weighted; MPRAGE-like IR sequences have echo times of a few ms.
FLAIR_MIN_ECHO_MS = 50.0
#: T1 weighting: a short echo (MPRAGE 2-5 ms, SPGR/FLASH 2-8 ms, T1 spin echo 8-20 ms) ...
T1_MAX_ECHO_MS = 30.0
#: ... with a short repetition time: 3-D spoiled gradient echo (SPGR, FLASH, BRAVO) 5-30 ms ...
T1_MAX_GRADIENT_ECHO_TR_MS = 50.0
#: ... or 400-800 ms for a T1 spin echo (a PD- or T2-weighted spin echo has TR >= 2000 ms).
T1_MAX_SPIN_ECHO_TR_MS = 900.0
#: MPRAGE-type inversion times (TI 600-1300 ms; STIR nulls fat at about 150-250 ms).
T1_INVERSION_MS = (400.0, 1400.0)

_DERIVED_DIFFUSION_MAPS = {"FA", "EXP", "EADC", "TENSOR", "COLFA", "TRACE_WEIGHTED_FA", "CDWI"}
_ADC_WORDS = re.compile(r"\b(adc|apparent diffusion)", re.IGNORECASE)
_DWI_WORDS = re.compile(r"(\bdwi\b|diff|\btrace\b|b1000|ep2d_diff)", re.IGNORECASE)
_LOCALIZER_WORDS = re.compile(r"(locali[sz]er|scout|survey|\bloc\b|3[-_ ]?plane)", re.IGNORECASE)
_T1_WORDS = re.compile(r"(mp-?rage|\bt1w?\b|t1[-_ ]|spgr|bravo|\bflash\b|\btfe\b)", re.IGNORECASE)
_FLAIR_WORDS = re.compile(r"(flair|dark[-_ ]?fluid|tirm|\bfl(ai)?r\b)", re.IGNORECASE)
_SIEMENS_IR_SEQUENCE = re.compile(r"^\*?(tir|spcir|tirm|fl_ir|spcR?ir)", re.IGNORECASE)
_SIEMENS_DIFFUSION_SEQUENCE = re.compile(r"^\*?(ep_b|re_b|epse)", re.IGNORECASE)


def _upper_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.upper() for part in value.split("\\") if part]
    if isinstance(value, Iterable):
        return [str(part).upper() for part in value]
    return [str(value).upper()]


def _frame_group(dataset: Dataset, name: str) -> Dataset | None:
    for key in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        sequence = dataset.get(key)
        if sequence and name in sequence[0] and len(sequence[0][name].value):
            item: Dataset = sequence[0][name].value[0]
            return item
    return None


def _number(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def inversion_time_ms(dataset: Dataset) -> float | None:
    """Inversion time in ms (classic tag, or enhanced MRModifierSequence / InversionTimes)."""
    value = _number(dataset.get("InversionTime"))
    if value is not None:
        return value
    modifier = _frame_group(dataset, "MRModifierSequence")
    if modifier is not None:
        times = modifier.get("InversionTimes")
        if times:
            return _number(times[0] if not isinstance(times, float | int) else times)
    return None


def echo_time_ms(dataset: Dataset) -> float | None:
    """Echo time in ms (classic tag, or enhanced MREchoSequence)."""
    value = _number(dataset.get("EchoTime"))
    if value is not None:
        return value
    echo = _frame_group(dataset, "MREchoSequence")
    return None if echo is None else _number(echo.get("EffectiveEchoTime"))


def repetition_time_ms(dataset: Dataset) -> float | None:
    """Repetition time in ms (classic tag, or enhanced MRTimingAndRelatedParametersSequence)."""
    value = _number(dataset.get("RepetitionTime"))
    if value is not None:
        return value
    timing = _frame_group(dataset, "MRTimingAndRelatedParametersSequence")
    return None if timing is None else _number(timing.get("RepetitionTime"))


def _t1_weighted(
    dataset: Dataset, kinds: list[str], scanning: list[str], description: str
) -> tuple[str, ...]:
    """Why a non-inversion series is T1-weighted (empty when it is not, or is a localizer)."""
    if "LOCALIZER" in kinds or _LOCALIZER_WORDS.search(description) or "EP" in scanning:
        return ()
    te, tr = echo_time_ms(dataset), repetition_time_ms(dataset)
    if te is None or tr is None or te > T1_MAX_ECHO_MS:
        return ()
    three_d = str(dataset.get("MRAcquisitionType", "")).upper() == "3D"
    if "GR" in scanning and three_d and tr <= T1_MAX_GRADIENT_ECHO_TR_MS:
        return (f"3-D gradient echo with TR {tr:g} ms and TE {te:g} ms (SPGR/FLASH-type T1)",)
    if "SE" in scanning and "GR" not in scanning and tr <= T1_MAX_SPIN_ECHO_TR_MS:
        return (f"spin echo with TR {tr:g} ms and TE {te:g} ms (T1-weighted)",)
    return ()


def sequence_name(dataset: Dataset) -> str:
    """Siemens-style sequence name, or the enhanced PulseSequenceName."""
    return str(dataset.get("SequenceName") or dataset.get("PulseSequenceName") or "").strip()


def image_type(dataset: Dataset) -> list[str]:
    """ImageType values, with the enhanced FrameType of the first frame appended."""
    values = _upper_list(dataset.get("ImageType"))
    frame_type = _frame_group(dataset, "MRImageFrameTypeSequence")
    if frame_type is not None:
        values += [v for v in _upper_list(frame_type.get("FrameType")) if v not in values]
    return values


def classify(
    dataset: Dataset, b_values: Iterable[float | None]
) -> tuple[SequenceClass, tuple[str, ...]]:
    """The sequence class of a series and the reasons, from one representative header.

    Parameters
    ----------
    dataset : Dataset
        Header of one image of the series.
    b_values : iterable of float or None
        b-values found over all images of the series (any vendor tag).

    Returns
    -------
    (SequenceClass, tuple of str)
        The class and human-readable reasons (the first one decided).

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.ImageType = ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]
    >>> classify(ds, [None])
    (<SequenceClass.ADC: 'ADC'>, ('ImageType contains ADC',))
    """
    kinds = image_type(dataset)
    bs = sorted({round(b, 1) for b in b_values if b is not None})
    name = sequence_name(dataset)
    scanning = _upper_list(dataset.get("ScanningSequence"))
    variant = _upper_list(dataset.get("SequenceVariant"))
    description = (
        f"{dataset.get('SeriesDescription', '')} {dataset.get('ProtocolName', '')}".strip()
    )
    contrast = _frame_group(dataset, "MRImageFrameTypeSequence")
    acquisition_contrast = str(contrast.get("AcquisitionContrast", "")).upper() if contrast else ""

    # 1. ImageType / FrameType
    if "ADC" in kinds:
        return SequenceClass.ADC, ("ImageType contains ADC",)
    derived = sorted(_DERIVED_DIFFUSION_MAPS.intersection(kinds))
    if derived:
        return SequenceClass.OTHER, (f"ImageType contains {derived[0]} (a derived diffusion map)",)
    diffusion_reasons = []
    if {"DIFFUSION", "TRACEW", "TRACE", "ISOTROPIC"}.intersection(kinds):
        diffusion_reasons.append(
            "ImageType contains "
            + "/".join(sorted({"DIFFUSION", "TRACEW", "TRACE", "ISOTROPIC"}.intersection(kinds)))
        )
    if acquisition_contrast == "DIFFUSION":
        diffusion_reasons.append("AcquisitionContrast is DIFFUSION")
    if any(b > 0 for b in bs):
        diffusion_reasons.append(f"b-values {bs} s/mm2")
    if diffusion_reasons:
        return SequenceClass.DWI, tuple(diffusion_reasons)

    # 2. pulse sequence
    ti = inversion_time_ms(dataset)
    te = echo_time_ms(dataset)
    inversion = "IR" in scanning or "IR" in variant or bool(_SIEMENS_IR_SEQUENCE.match(name))
    if inversion and ti is not None and ti >= FLAIR_MIN_INVERSION_MS:
        if te is None or te >= FLAIR_MIN_ECHO_MS:
            te_text = "unknown" if te is None else f"{te:g} ms"
            return SequenceClass.FLAIR, (
                f"inversion recovery with TI {ti:g} ms >= {FLAIR_MIN_INVERSION_MS:g} "
                f"(CSF nulled) and TE {te_text}",
            )
        return SequenceClass.OTHER, (
            f"inversion recovery with TI {ti:g} ms but TE {te:g} ms: T1-weighted, not FLAIR",
        )
    te_short = te is not None and te <= T1_MAX_ECHO_MS
    if inversion and ti is not None and T1_INVERSION_MS[0] <= ti <= T1_INVERSION_MS[1] and te_short:
        return SequenceClass.T1, (
            f"inversion recovery with TI {ti:g} ms and TE {te:g} ms (MPRAGE-type T1)",
        )
    if inversion and ti is not None:
        return SequenceClass.OTHER, (
            f"inversion recovery with TI {ti:g} ms < {FLAIR_MIN_INVERSION_MS:g}: not FLAIR (STIR or T1)",
        )
    if _SIEMENS_DIFFUSION_SEQUENCE.match(name) and re.search(r"b\d", name):
        return SequenceClass.DWI, (f"sequence name {name!r} is a diffusion EPI",)
    if not inversion:
        t1_reasons = _t1_weighted(dataset, kinds, scanning, description)
        if t1_reasons:
            return SequenceClass.T1, t1_reasons

    # 3. the description, as a last resort
    if _ADC_WORDS.search(description):
        return SequenceClass.ADC, (f"series description {description!r} (no header evidence)",)
    if _FLAIR_WORDS.search(description):
        return SequenceClass.FLAIR, (f"series description {description!r} (no header evidence)",)
    if (
        _T1_WORDS.search(description)
        and not _LOCALIZER_WORDS.search(description)
        and "LOCALIZER" not in kinds
        and not scanning
    ):
        return SequenceClass.T1, (f"series description {description!r} (no header evidence)",)
    if _DWI_WORDS.search(description) and "EP" in scanning:
        return SequenceClass.DWI, (f"series description {description!r} and EPI readout",)
    summary = ", ".join(
        part
        for part in (
            f"ImageType {'/'.join(kinds)}" if kinds else "",
            f"sequence {name}" if name else "",
            f"TI {ti:g} ms" if ti is not None else "",
        )
        if part
    )
    return SequenceClass.OTHER, (f"not diffusion, ADC, FLAIR or T1 ({summary or 'no evidence'})",)
