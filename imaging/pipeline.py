"""One patient, all sessions: bias correction, registration, template priors and lesion segmentation.

Spaces and transforms (4x4, RAS+ mm, each mapping a point of one world to the corresponding point of
another):

* ``reference`` of a session: its FLAIR, or its DWI reference when the session has no FLAIR;
* ``dwi reference``: the b=0 image, or the trace when the series has no b=0 (trace + ADC exports);
* ``baseline``: the reference of the first session that has a FLAIR (else the first session);
* ``to_baseline``: session reference world -> baseline world (from a rigid registration);
* ``dwi_to_reference``: DWI world -> session reference world (rigid, within the session);
* ``baseline_to_mni``: baseline world -> MNI (affine template fit).

Registration runs on N4-corrected images. FLAIR-to-FLAIR registrations are brain-masked and start
from the brains' centres of mass; DWI-to-FLAIR registrations start from identity (same scanner frame
within a session) with the b=0 image as the fixed image and no masks, which was the most accurate
set-up on the sample case (see README, *Registration*). Without a b=0 the trace is the fixed image
(mutual information does not need the same contrast).

DWI input kinds (:mod:`imaging.diffusion`): b=0 + trace (+ scanner ADC), trace + scanner ADC, or
the trace alone. A DWI series with fewer than ``min_registration_slices`` voxels along an axis (a
2-slice test series) cannot be bias-corrected or registered: in a session with a FLAIR it is taken as
aligned (same scanner frame) with a note; as the only image of a session it raises
:class:`~imaging.errors.SeriesTooSmallError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.bias import N4Params, correct_bias
from imaging.brain import (
    BrainEstimateParams,
    estimate_brain,
    estimate_brain_checked,
    head_mask,
)
from imaging.case import CaseIndex, SeriesEntry, Session
from imaging.diffusion import adc_from_dwi, dwi_input_kind, split_dwi
from imaging.engines import (
    BUILTIN_DWI,
    BUILTIN_FLAIR,
    DwiEngine,
    DwiInputs,
    EngineError,
    EngineInfo,
    FlairEngine,
    FlairInputs,
    LesionMap,
    available_engines,
    dwi_engine,
    flair_engine,
)
from imaging.errors import ImageContentError, ImagingError, SeriesTooSmallError
from imaging.image import MRImage
from imaging.lesion_prior import lesion_prior_on
from imaging.normalize import NormalizationError
from imaging.quantify import adc_in_mask, nawm_for_adc
from imaging.register import Registration, RegistrationParams, register, resample
from imaging.segment import DwiLesionParams, FlairLesionParams
from imaging.sequence import SequenceClass
from imaging.template import (
    TEMPLATE_REGISTRATION,
    FitQualityLimits,
    TemplateFit,
    fit_template,
)
from imaging.uncertainty import (
    Draw,
    UncertaintyParams,
    adc_deficit,
    brain_centre_mm,
    grid_motion,
    noise_sd,
    partial_volume_masks,
    perturbed_image,
    probability_sd_voxels,
    rigid_jitter,
)

__all__ = [
    "CaseImages",
    "PipelineParams",
    "SessionImages",
    "check_signal",
    "engine_infos",
    "parse_engine_choice",
    "process_case",
]

Progress = Callable[[str], None]

#: FLAIR to FLAIR across sessions: same contrast, brain-masked, at a 2 mm working resolution.
SESSION_REGISTRATION = RegistrationParams(
    shrink_factors=(2, 1),
    smoothing_sigmas_mm=(2.0, 1.0),
    learning_rate=0.5,
    iterations=100,
    sampling_fraction=0.2,
    working_spacing_mm=2.0,
)
#: DWI b=0 (fixed) to FLAIR of the same session: small motion, identity start.
DWI_REGISTRATION = RegistrationParams(
    shrink_factors=(2, 1),
    smoothing_sigmas_mm=(2.0, 1.0),
    learning_rate=0.5,
    iterations=100,
    sampling_fraction=0.1,
)


@dataclass(frozen=True)
class PipelineParams:
    """Every setting of the per-case pipeline; recorded with the results."""

    n4: N4Params = field(default_factory=N4Params)
    brain_estimate: BrainEstimateParams = field(default_factory=BrainEstimateParams)
    template_registration: RegistrationParams = TEMPLATE_REGISTRATION
    template_fit_limits: FitQualityLimits = field(default_factory=FitQualityLimits)
    session_registration: RegistrationParams = SESSION_REGISTRATION
    dwi_registration: RegistrationParams = DWI_REGISTRATION
    #: Lesion engines by registry name (:mod:`imaging.engines`).
    flair_engine: str = BUILTIN_FLAIR
    dwi_engine: str = BUILTIN_DWI
    #: Parameters of the built-in engines.
    flair: FlairLesionParams = field(default_factory=FlairLesionParams)
    dwi: DwiLesionParams = field(default_factory=DwiLesionParams)
    #: Minimum b-value (s/mm2) of the diffusion-weighted (trace) volume used for lesions.
    min_high_b_s_mm2: float = 500.0
    #: A DWI series needs at least this many voxels along every axis to be bias-corrected and
    #: registered (the coarsest pyramid level halves it; N4 and ITK's registration fail below).
    min_registration_slices: int = 8
    #: Per-measurement intervals (:mod:`imaging.uncertainty`); ``UncertaintyParams.level("off")``
    #: skips them.
    uncertainty: UncertaintyParams = field(default_factory=UncertaintyParams)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, nested."""
        return asdict(self)


def parse_engine_choice(choices: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--engine`` values to engine names by source: ``NAME`` (FLAIR), ``flair=NAME``, ``dwi=NAME``.

    >>> parse_engine_choice(["flair=local-contrast", "dwi=restricted-diffusion"])
    {'flair': 'local-contrast', 'dwi': 'restricted-diffusion'}

    Raises
    ------
    EngineError
        On an unknown source or engine name.
    """
    chosen: dict[str, str] = {}
    known = available_engines()
    for choice in choices:
        source, _, name = choice.rpartition("=")
        source = (source or "flair").strip().lower()
        name = name.strip()
        if source not in known:
            raise EngineError(f"--engine {choice!r}: the source must be flair or dwi")
        if name not in known[source]:
            raise EngineError(
                f"--engine {choice!r}: no {source.upper()} engine {name!r}; choose one of "
                f"{known[source]}"
            )
        chosen[source] = name
    return chosen


def engine_infos(params: PipelineParams) -> dict[str, dict[str, Any]]:
    """What the chosen engines are (name, version, parameters, model files' sha256), by source."""
    return {
        "flair": flair_engine(params.flair_engine, params).info.to_dict(),
        "dwi": dwi_engine(params.dwi_engine, params).info.to_dict(),
    }


@dataclass
class SessionImages:
    """What the pipeline found and made for one session (``None`` where a sequence is missing)."""

    label: str
    study_date: date | None
    study_time: time | None
    study_uid: str | None
    flair: MRImage | None = None
    b0: MRImage | None = None
    #: The diffusion-weighted trace at the series' highest b-value (b >= 500; 1000 usually, but
    #: 800 or 2500 too: see ``dwi_b_value_s_mm2``). The name is kept for the output contracts.
    b1000: MRImage | None = None
    adc: MRImage | None = None
    #: The session's T1-weighted image, as loaded (its own grid); on the FLAIR grid after
    #: :func:`_register_t1` (only when the FLAIR engine uses a T1).
    t1: MRImage | None = None
    t1_on_flair: MRImage | None = None
    #: ``scanner``, ``computed`` (from b=0 and trace) or ``""`` (no ADC: trace alone).
    adc_source: str = ""
    #: b-value of ``b1000``, s/mm2.
    dwi_b_value_s_mm2: float | None = None
    #: ``b0+trace+adc``, ``b0+trace``, ``trace+adc`` or ``trace`` (see :mod:`imaging.diffusion`).
    dwi_kind: str = ""
    #: False when the DWI series is too small to bias-correct and register (taken as aligned).
    dwi_registrable: bool = True
    sources: dict[str, str] = field(default_factory=dict)
    #: DICOM files of the series used, by role (``flair``, ``dwi``, ``adc``); empty for NIfTI input.
    source_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    flair_brain: MRImage | None = None
    dwi_brain: MRImage | None = None
    flair_wm_prior: MRImage | None = None
    dwi_wm_prior: MRImage | None = None
    flair_result: LesionMap | None = None
    dwi_result: LesionMap | None = None
    #: Normal-appearing white matter on the DWI grid (for rADC), estimated outside the engine.
    dwi_nawm_mask: MRImage | None = None
    to_baseline: NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    dwi_to_reference: NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Perturbed re-segmentations (:mod:`imaging.uncertainty`); empty when intervals are off.
    draws: list[Draw] = field(default_factory=list)
    #: The lesion masks cut at the partial-volume band's ends (inner, outer), by source: the
    #: band of the changes, the per-lesion volumes and the rADC.
    bands: dict[str, tuple[MRImage, MRImage]] = field(default_factory=dict)
    #: The DWI lesion cut at the band's ends on the ADC deficit (inner, outer), when there is an
    #: ADC map (:func:`imaging.uncertainty.adc_deficit`): the band of the session's DWI volume.
    dwi_volume_band: tuple[MRImage, MRImage] | None = None
    #: SD of the lesion voxel count from the engine's own probability, by source (0 without one).
    probability_sd_voxels: dict[str, float] = field(default_factory=dict)
    #: Estimated image noise SD (image units) of ``flair``, ``trace`` and ``adc``.
    noise_sd: dict[str, float] = field(default_factory=dict)

    @property
    def dwi_reference(self) -> MRImage | None:
        """The DWI image registrations use: the b=0, else the trace (``None`` without DWI)."""
        return self.b0 if self.b0 is not None else self.b1000

    @property
    def reference(self) -> MRImage:
        """The session's reference image (FLAIR, else the DWI reference)."""
        image = self.flair if self.flair is not None else self.dwi_reference
        if image is None:
            raise ImagingError(f"{self.label}: neither FLAIR nor DWI")
        return image

    @property
    def dwi_to_baseline(self) -> NDArray[np.float64]:
        """DWI world -> baseline world."""
        return self.to_baseline @ self.dwi_to_reference


@dataclass
class CaseImages:
    """All sessions of a case after :func:`process_case`, with the template fit of the baseline."""

    case_id: str
    sessions: list[SessionImages]
    baseline: SessionImages
    template: TemplateFit
    params: PipelineParams
    #: The engines that segmented the case, by source (``flair``, ``dwi``).
    engines: dict[str, EngineInfo] = field(default_factory=dict)
    #: The template brain on the baseline reference's grid (uint8).
    baseline_brain: MRImage | None = None

    def to_mni(self, session: SessionImages, *, dwi: bool = False) -> NDArray[np.float64]:
        """Session reference (or DWI) world -> MNI."""
        matrix = self.template.registration.matrix @ session.to_baseline
        return matrix @ session.dwi_to_reference if dwi else matrix


def _pick(
    session: Session, sequence: SequenceClass, notes: list[str], *, required: bool
) -> SeriesEntry | None:
    """The session's preferred series of one class; a series of that class that cannot be loaded
    is never dropped silently.

    When no series of the class can be loaded but one exists, its named error (e.g.
    :class:`~imaging.errors.MissingSliceError`) is raised for ``required`` classes and noted
    otherwise; when a good one is used beside a broken one, the broken one is noted.
    """
    broken = [s for s in session.series if s.sequence is sequence and s.error is not None]
    picked = session.pick(sequence)
    for entry in broken:
        if picked is not None or not required:
            notes.append(f"{sequence.value} series {entry.description!r} not used: {entry.problem}")
    if picked is None and broken and required:
        error = broken[-1].error
        assert error is not None
        raise type(error)(
            f"{session.label}: the only {sequence.value} series cannot be used: {error}. Or move "
            "that series out of the case folder to analyse the session without it"
        ) from error
    return picked


def check_signal(image: MRImage, where: str) -> None:
    """Refuse a magnitude image (FLAIR, DWI) that holds no signal or is inverted.

    Raises
    ------
    ImageContentError
        When no voxel is finite and non-zero, or more voxels are negative than positive (an inverted
        or non-magnitude image: lesion thresholds would find the wrong tissue).
    """
    data = np.asarray(image.data)
    finite = np.isfinite(data)
    positive = int(np.count_nonzero(finite & (data > 0)))
    negative = int(np.count_nonzero(finite & (data < 0)))
    if positive == 0 and negative == 0:
        raise ImageContentError(
            f"{where}: the {image.sequence.value} image holds no signal (every voxel is 0, NaN or "
            "infinite); convert or export it again"
        )
    if negative > positive:
        raise ImageContentError(
            f"{where}: the {image.sequence.value} image is mostly negative ({negative} negative "
            f"against {positive} positive voxels): inverted, or not a magnitude image. Use the "
            "magnitude image as the scanner wrote it"
        )


def _load(entry: SeriesEntry, role: str, result: SessionImages) -> MRImage:
    image = entry.load()
    result.notes.extend(f"{role}: {note}" for note in image.acquisition.notes)
    return image


def _load_session(
    session: Session, params: PipelineParams, *, want_t1: bool = False
) -> SessionImages:
    result = SessionImages(
        label=session.label,
        study_date=session.study_date,
        study_time=session.study_time,
        study_uid=session.study_uid,
    )
    flair_entry = _pick(session, SequenceClass.FLAIR, result.notes, required=True)
    if flair_entry is not None:
        flair = _load(flair_entry, "flair", result)
        check_signal(flair, f"{session.label} ({flair_entry.source})")
        result.flair = flair.volume(0) if flair.n_volumes > 1 else flair
        result.sources["flair"] = flair_entry.source
        result.source_files["flair"] = flair_entry.paths
    t1_entry = _pick(session, SequenceClass.T1, result.notes, required=False) if want_t1 else None
    if t1_entry is not None and flair_entry is not None:
        t1 = _load(t1_entry, "t1", result)
        result.t1 = t1.volume(0) if t1.n_volumes > 1 else t1
        result.sources["t1"] = t1_entry.source
    dwi_entry = _pick(session, SequenceClass.DWI, result.notes, required=True)
    if dwi_entry is not None:
        dwi = _load(dwi_entry, "dwi", result)
        check_signal(dwi, f"{session.label} ({dwi_entry.source})")
        _load_dwi(result, session, dwi, params)
        result.sources["dwi"] = dwi_entry.source
        result.source_files["dwi"] = dwi_entry.paths
    return result


def _load_dwi(
    result: SessionImages, session: Session, dwi: MRImage, params: PipelineParams
) -> None:
    """Fill the session's DWI fields from whatever the export holds (see :mod:`imaging.diffusion`)."""
    volumes = split_dwi(dwi, params.min_high_b_s_mm2)
    trace, b0 = volumes.trace, volumes.b0
    result.b0, result.b1000, result.dwi_b_value_s_mm2 = b0, trace, volumes.b_value_s_mm2
    thinnest = min(trace.spatial_shape)
    if thinnest < params.min_registration_slices:
        problem = (
            f"{dwi.acquisition.source}: the DWI series has {thinnest} voxels along one axis "
            f"(shape {trace.spatial_shape}), fewer than the {params.min_registration_slices} needed "
            "to bias-correct and register it"
        )
        if result.flair is None:
            raise SeriesTooSmallError(
                f"{problem}; a session without FLAIR cannot be measured from it. Export the whole "
                "DWI series (all slices), or leave this series out of the case folder"
            )
        result.dwi_registrable = False
        result.notes.append(
            f"{problem}: taken as aligned with the FLAIR (same scanner frame), not bias-corrected"
        )
    adc_entry = _pick(session, SequenceClass.ADC, result.notes, required=False)
    adc = _load(adc_entry, "adc", result) if adc_entry is not None else None
    if adc is not None and adc_entry is not None and not adc.same_grid(trace):
        if b0 is not None:
            result.notes.append("the scanner ADC is on another grid than the DWI; recomputed")
            adc = None
        else:
            adc = resample(adc, trace, np.eye(4), interpolation="linear")
            result.notes.append(
                "the scanner ADC is on another grid than the DWI trace and there is no b=0 to "
                "recompute it: resampled onto the trace grid (same scanner frame, linear)"
            )
    if adc is not None and adc_entry is not None:
        result.adc, result.adc_source = adc, "scanner"
        result.sources["adc"] = adc_entry.source
        result.source_files["adc"] = adc_entry.paths
    elif b0 is not None:
        result.adc = adc_from_dwi(b0, trace, volumes.b_value_s_mm2)
        result.adc_source = "computed"
    else:
        result.notes.append(
            f"DWI trace alone (b = {volumes.b_value_s_mm2:g}, no b=0 and no ADC map): DWI lesions "
            "are trace-hyperintense tissue only; restriction cannot be told from T2 "
            "shine-through, so the ADC and rADC columns stay empty"
        )
    result.dwi_kind = dwi_input_kind(
        has_b0=b0 is not None, has_scanner_adc=result.adc_source == "scanner"
    )
    if volumes.b_value_s_mm2 != 1000.0:
        result.notes.append(
            f"DWI trace at b = {volumes.b_value_s_mm2:g} s/mm2: lesion contrast and ADC are "
            "normalised to this session's normal-appearing white matter (z-score, rADC)"
        )


def _bias_correct(images: SessionImages, params: PipelineParams) -> None:
    if images.flair is not None:
        images.flair, _ = correct_bias(images.flair, head_mask(images.flair), params=params.n4)
    if images.b1000 is None or not images.dwi_registrable:
        return
    if images.b0 is not None:  # the field of the b=0 applies to the trace (same coil, same frame)
        images.b0, field_b0 = correct_bias(images.b0, head_mask(images.b0), params=params.n4)
        corrected = np.asarray(images.b1000.data, dtype=np.float32) / np.asarray(field_b0.data)
        images.b1000 = images.b1000.with_data(corrected)
    else:
        images.b1000, _ = correct_bias(images.b1000, head_mask(images.b1000), params=params.n4)


def _register_to_baseline(
    images: SessionImages, baseline: SessionImages, baseline_brain: MRImage, params: PipelineParams
) -> None:
    if images is baseline:
        return
    if images.flair is not None and baseline.flair is not None:
        fit = register(
            baseline.flair,
            images.flair,
            fixed_mask=baseline_brain,
            moving_mask=estimate_brain(images.flair, params=params.brain_estimate),
            params=params.session_registration,
        )
        images.to_baseline = np.asarray(np.linalg.inv(fit.matrix), dtype=np.float64)
        images.registrations["reference_to_baseline"] = fit.to_dict()
        return
    # a session or a baseline without FLAIR: register the DWI references, or the DWI to the FLAIR
    moving = baseline.flair if baseline.flair is not None else baseline.dwi_reference
    fixed = images.dwi_reference
    assert moving is not None and fixed is not None
    fit = register(fixed, moving, initial=None, params=params.dwi_registration)
    images.to_baseline = fit.matrix  # fixed = this session's b=0: its world -> baseline world
    images.registrations["reference_to_baseline"] = fit.to_dict()


def _register_dwi(images: SessionImages, params: PipelineParams) -> None:
    fixed = images.dwi_reference
    if fixed is None or images.flair is None:
        return  # without FLAIR the DWI reference is the session reference itself
    if not images.dwi_registrable:
        images.registrations["dwi_to_reference"] = {"skipped": "DWI series too small; identity"}
        return
    fit: Registration = register(
        fixed, images.flair, initial=np.eye(4), params=params.dwi_registration
    )
    images.dwi_to_reference = fit.matrix  # fixed = b=0 (or trace): DWI world -> FLAIR world
    images.registrations["dwi_to_reference"] = {
        **fit.to_dict(),
        "fixed": "b0" if images.b0 is not None else "trace",
    }


def _register_t1(images: SessionImages, params: PipelineParams) -> None:
    """The session's T1 rigidly onto its FLAIR (same session: identity start), resampled there."""
    if images.t1 is None or images.flair is None:
        return
    fit = register(images.flair, images.t1, initial=np.eye(4), params=params.dwi_registration)
    images.registrations["t1_to_flair"] = fit.to_dict()
    images.t1_on_flair = resample(images.t1, images.flair, fit.matrix, interpolation="linear")


def _flair_inputs(
    case: CaseImages, images: SessionImages, flair: MRImage, to_mni: NDArray[np.float64]
) -> FlairInputs:
    """The FLAIR engine's inputs: ``flair`` with the template's priors through ``to_mni``."""
    fit, params = case.template, case.params
    brain = fit.prior(flair, "brain", to_mni=to_mni)
    if fit.stripped:  # a stripped FLAIR: nothing outside its own foreground is brain
        own = estimate_brain(flair, params=params.brain_estimate, stripped=True)
        inside = (np.asarray(brain.data) > 0) & (np.asarray(own.data) > 0)
        brain = brain.with_data(inside.astype(np.uint8))
    return FlairInputs(
        flair=flair,
        brain_mask=brain,
        wm_prior=fit.prior(flair, "wm", to_mni=to_mni),
        gm_prior=fit.prior(flair, "gm", to_mni=to_mni),
        lesion_prior=lesion_prior_on(flair, to_mni),
        t1=images.t1_on_flair,
        to_mni=to_mni,
    )


def _dwi_inputs(
    case: CaseImages,
    images: SessionImages,
    trace: MRImage,
    adc: MRImage | None,
    to_mni: NDArray[np.float64],
) -> DwiInputs:
    """The DWI engine's inputs: ``trace`` and ``adc`` with the template's priors through ``to_mni``."""
    fit = case.template
    return DwiInputs(
        trace=trace,
        b_value_s_mm2=images.dwi_b_value_s_mm2 or 1000.0,
        adc_um2s=adc,
        brain_mask=fit.prior(trace, "brain", to_mni=to_mni),
        wm_prior=fit.prior(trace, "wm", to_mni=to_mni),
    )


def _segment(
    case: CaseImages, images: SessionImages, flair_seg: FlairEngine, dwi_seg: DwiEngine
) -> None:
    params = case.params
    if images.flair is not None:
        inputs = _flair_inputs(case, images, images.flair, case.to_mni(images))
        images.flair_brain, images.flair_wm_prior = inputs.brain_mask, inputs.wm_prior
        images.flair_result = flair_seg.segment(inputs).checked(images.flair, flair_seg.info.name)
    if images.b1000 is not None:
        to_mni = case.to_mni(images, dwi=images.flair is not None)
        dwi_inputs = _dwi_inputs(case, images, images.b1000, images.adc, to_mni)
        images.dwi_brain, images.dwi_wm_prior = dwi_inputs.brain_mask, dwi_inputs.wm_prior
        try:
            result = dwi_seg.segment(dwi_inputs).checked(images.b1000, dwi_seg.info.name)
        except NormalizationError as error:
            if images.dwi_registrable:
                raise
            images.notes.append(f"DWI lesions not measured on the small DWI series: {error}")
            return
        images.dwi_result = result
        if images.adc is not None:
            images.dwi_nawm_mask = nawm_for_adc(
                images.b1000,
                images.adc,
                images.dwi_brain,
                images.dwi_wm_prior,
                result.lesion_mask,
                params=params.dwi.nawm,
                adc_min_um2s=params.dwi.adc_min_um2s,
            )


def _noise_levels(images: SessionImages) -> dict[str, float]:
    """Image noise SD (image units) of the session's FLAIR, trace and ADC, inside the brain."""
    levels: dict[str, float] = {}
    for name, image, brain in (
        ("flair", images.flair, images.flair_brain),
        ("trace", images.b1000, images.dwi_brain),
        ("adc", images.adc, images.dwi_brain),
    ):
        if image is not None and brain is not None:
            levels[name] = noise_sd(image, brain)
    return levels


def _draw(
    case: CaseImages,
    images: SessionImages,
    engines: tuple[FlairEngine, DwiEngine],
    centres_mm: dict[str, NDArray[np.float64]],
    template_jitter: NDArray[np.float64],
    rngs: tuple[np.random.Generator, np.random.Generator],
) -> Draw:
    """One perturbed re-segmentation of a session (module docstring of :mod:`imaging.uncertainty`).

    ``centres_mm``: the brain centres (world mm) the jitters turn about: ``baseline`` (baseline
    world), ``reference`` (this session's reference world), ``flair`` and ``dwi`` (their grids').
    ``rngs``: the draw's generators, one for the session and its FLAIR, one for its DWI, so that a
    session's FLAIR draws are the same with or without a DWI beside it.
    """
    rng, dwi_rng = rngs
    settings = case.params.uncertainty
    flair_seg, dwi_seg = engines
    session_jitter = np.eye(4)
    if images is not case.baseline:
        session_jitter = rigid_jitter(
            rng,
            centres_mm["baseline"],
            settings.session_rotation_deg,
            settings.session_translation_mm,
        )
    to_baseline = session_jitter @ images.to_baseline
    dwi_jitter = np.eye(4)
    if images.flair is not None and images.dwi_registrable and images.dwi_reference is not None:
        dwi_jitter = rigid_jitter(
            dwi_rng,
            centres_mm["reference"],
            settings.session_rotation_deg,
            settings.session_translation_mm,
        )
    dwi_to_reference = dwi_jitter @ images.dwi_to_reference
    to_mni = case.template.registration.matrix @ template_jitter @ to_baseline
    noise = images.noise_sd
    flair_mask = dwi_mask = adc = None
    nawm = math.nan
    if images.flair_result is not None and images.flair is not None:
        assert images.flair_brain is not None
        flair = perturbed_image(
            images.flair,
            images.flair_brain,
            noise_sd_units=settings.noise_scale * noise["flair"],
            motion=grid_motion(rng, images.flair, centres_mm["flair"], settings.pose_rotation_deg),
            rng=rng,
        )
        inputs = _flair_inputs(case, images, flair, to_mni)
        flair_mask = flair_seg.segment(inputs).checked(flair, flair_seg.info.name).lesion_mask
    if images.dwi_result is not None and images.b1000 is not None:
        assert images.dwi_brain is not None
        motion = (
            grid_motion(dwi_rng, images.b1000, centres_mm["dwi"], settings.pose_rotation_deg)
            if images.dwi_registrable
            else np.eye(4)
        )
        trace = perturbed_image(
            images.b1000,
            images.dwi_brain,
            noise_sd_units=settings.noise_scale * noise["trace"],
            motion=motion,
            rng=dwi_rng,
        )
        if images.adc is not None:
            adc = perturbed_image(
                images.adc,
                images.dwi_brain,
                noise_sd_units=settings.noise_scale * noise["adc"],
                motion=motion,
                rng=dwi_rng,
            )
        dwi_to_mni = to_mni @ dwi_to_reference if images.flair is not None else to_mni
        inputs_dwi = _dwi_inputs(case, images, trace, adc, dwi_to_mni)
        try:
            result = dwi_seg.segment(inputs_dwi).checked(trace, dwi_seg.info.name)
            dwi_mask = result.lesion_mask
            if adc is not None:
                nawm_mask = nawm_for_adc(
                    trace,
                    adc,
                    inputs_dwi.brain_mask,
                    inputs_dwi.wm_prior,
                    dwi_mask,
                    params=case.params.dwi.nawm,
                    adc_min_um2s=case.params.dwi.adc_min_um2s,
                )
                nawm = adc_in_mask(adc, nawm_mask)
        except NormalizationError:
            dwi_mask = None
    return Draw(
        flair_mask=flair_mask,
        dwi_mask=dwi_mask,
        adc_um2s=adc,
        nawm_adc_um2s=nawm,
        to_baseline=to_baseline,
        dwi_to_baseline=to_baseline @ dwi_to_reference,
        dwi_to_reference=dwi_to_reference,
    )


def _perturb(case: CaseImages, engines: tuple[FlairEngine, DwiEngine], progress: Progress) -> None:
    """Every session's perturbed draws and partial-volume bands (``params.uncertainty``)."""
    settings = case.params.uncertainty
    if settings.draws < 2:
        return
    assert case.baseline_brain is not None  # set by process_case before the draws
    rng = np.random.default_rng(settings.seed)
    centre = brain_centre_mm(case.baseline_brain)
    template_jitters = [
        rigid_jitter(rng, centre, settings.template_rotation_deg, settings.template_translation_mm)
        for _ in range(settings.draws)
    ]
    # the draws run on threads: the image maths (ndimage, SimpleITK) releases the GIL, so a
    # 2-core machine runs two at once
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for n, images in enumerate(case.sessions):
            _perturb_session(case, images, engines, centre, template_jitters, pool, n, progress)


def _perturb_session(
    case: CaseImages,
    images: SessionImages,
    engines: tuple[FlairEngine, DwiEngine],
    centre: NDArray[np.float64],
    template_jitters: list[NDArray[np.float64]],
    pool: ThreadPoolExecutor,
    n: int,
    progress: Progress,
) -> None:
    """One session's partial-volume bands and perturbed draws (the ``n``-th session)."""
    settings = case.params.uncertainty
    progress(f"{images.label}: uncertainty ({settings.draws} draws)")
    images.noise_sd = _noise_levels(images)
    for source, image, result, brain in (
        ("flair", images.flair, images.flair_result, images.flair_brain),
        ("dwi", images.b1000, images.dwi_result, images.dwi_brain),
    ):
        if image is None or result is None or brain is None:
            continue
        images.bands[source] = partial_volume_masks(
            image,
            result.lesion_mask,
            brain,
            low=settings.pv_low,
            high=settings.pv_high,
        )
        radc = result.maps.get("radc") if source == "dwi" else None
        if radc is not None:  # the engine measured restriction
            images.dwi_volume_band = partial_volume_masks(
                adc_deficit(radc, brain),
                result.lesion_mask,
                brain,
                low=settings.pv_low,
                high=settings.pv_high,
            )
        images.probability_sd_voxels[source] = probability_sd_voxels(result.probability)
    # each draw its own generator: the same numbers whatever the threads' order
    centres = {
        "baseline": centre,
        "reference": (np.linalg.inv(images.to_baseline) @ np.append(centre, 1.0))[:3],
        **{
            name: brain_centre_mm(brain)
            for name, brain in (("flair", images.flair_brain), ("dwi", images.dwi_brain))
            if brain is not None
        },
    }
    rngs = [
        (
            np.random.default_rng([settings.seed, n, d]),
            np.random.default_rng([settings.seed, n, d, 1]),
        )
        for d in range(settings.draws)
    ]
    images.draws = list(
        pool.map(partial(_draw, case, images, engines, centres), template_jitters, rngs)
    )


def process_case(
    case: CaseIndex, *, params: PipelineParams | None = None, progress: Progress | None = None
) -> CaseImages:
    """Load, correct, register and segment every session of a case.

    Parameters
    ----------
    case : CaseIndex
        From :func:`imaging.case.scan_case`.
    params : PipelineParams, optional
    progress : callable, optional
        Called with a short description before each step (for progress bars).

    Raises
    ------
    ImagingError
        When no session holds a FLAIR or a DWI, or a series cannot be loaded.
    """
    params = params or PipelineParams()
    say = progress or (lambda _message: None)
    flair_seg = flair_engine(params.flair_engine, params)
    dwi_seg = dwi_engine(params.dwi_engine, params)
    engines = {"flair": flair_seg.info, "dwi": dwi_seg.info}
    sessions: list[SessionImages] = []
    for session in case.sessions:
        say(f"{session.label}: loading")
        images = _load_session(session, params, want_t1=flair_seg.info.uses_t1)
        if images.flair is None and images.b1000 is None:
            continue
        say(f"{session.label}: bias correction")
        _bias_correct(images, params)
        sessions.append(images)
    if not sessions:
        raise ImagingError(
            f"{case.root}: no session holds a FLAIR or a DWI series (see `leukotrack inspect`)"
        )
    baseline = next((s for s in sessions if s.flair is not None), sessions[0])
    say(f"{baseline.label}: template registration")
    if baseline.flair is not None:
        baseline_estimate, check = estimate_brain_checked(
            baseline.flair, params=params.brain_estimate
        )
        stripped = check.stripped
        baseline.registrations["skull_strip_check"] = check.to_dict()
    else:  # an EPI b=0 shows little scalp or skull either way: the erosion estimate, no test
        baseline_estimate = estimate_brain(
            baseline.reference, params=params.brain_estimate, stripped=False
        )
        stripped = False
    template = fit_template(
        baseline.reference,
        baseline_estimate,
        params=params.template_registration,
        limits=params.template_fit_limits,
        stripped=stripped,
    )
    baseline.registrations["template_to_reference"] = template.registration.to_dict()
    if stripped:
        baseline.notes.append(
            "the reference image is skull-stripped (no scalp or skull): its own foreground is "
            "the brain"
        )
    if template.quality is not None and not template.quality.ok:
        message = (
            "TEMPLATE FIT BELOW QUALITY: "
            + "; ".join(template.quality.problems)
            + ". The white-matter prior, brain mask and regions may be misplaced: check the "
            "lesion figures of this case by eye."
        )
        for images in sessions:
            images.notes.append(message)
    baseline_brain = template.prior(baseline.reference, "brain")
    result = CaseImages(
        case.case_id, sessions, baseline, template, params, engines, baseline_brain=baseline_brain
    )
    for images in sessions:
        say(f"{images.label}: registration")
        _register_to_baseline(images, baseline, baseline_brain, params)
        _register_dwi(images, params)
        if flair_seg.info.uses_t1:
            _register_t1(images, params)
        say(f"{images.label}: segmentation")
        _segment(result, images, flair_seg, dwi_seg)
    _perturb(result, (flair_seg, dwi_seg), say)
    return result
