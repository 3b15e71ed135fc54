"""One patient, all sessions: bias correction, registration, template priors and lesion segmentation.

Spaces and transforms (4x4, RAS+ mm, each mapping a point of one world to the corresponding point of
another):

* ``reference`` of a session: its FLAIR, or its b=0 image when the session has no FLAIR;
* ``baseline``: the reference of the first session that has a FLAIR (else the first session);
* ``to_baseline``: session reference world -> baseline world (from a rigid registration);
* ``dwi_to_reference``: DWI world -> session reference world (rigid, within the session);
* ``baseline_to_mni``: baseline world -> MNI (affine template fit).

Registration runs on N4-corrected images. FLAIR-to-FLAIR registrations are brain-masked and start
from the brains' centres of mass; DWI-to-FLAIR registrations start from identity (same scanner frame
within a session) with the b=0 image as the fixed image and no masks, which was the most accurate
set-up on the sample case (see README, *Registration*).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, time
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
from imaging.case import CaseIndex, Session
from imaging.diffusion import adc_from_dwi, split_dwi
from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.register import Registration, RegistrationParams, register
from imaging.segment import (
    DwiLesionParams,
    DwiLesionResult,
    FlairLesionParams,
    FlairLesionResult,
    segment_dwi_lesions,
    segment_flair_lesions,
)
from imaging.sequence import SequenceClass
from imaging.template import (
    TEMPLATE_REGISTRATION,
    FitQualityLimits,
    TemplateFit,
    fit_template,
)

__all__ = ["CaseImages", "PipelineParams", "SessionImages", "process_case"]

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
    flair: FlairLesionParams = field(default_factory=FlairLesionParams)
    dwi: DwiLesionParams = field(default_factory=DwiLesionParams)
    #: Minimum b-value (s/mm2) of the diffusion-weighted volume used for lesions.
    min_high_b_s_mm2: float = 500.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, nested."""
        return asdict(self)


@dataclass
class SessionImages:
    """What the pipeline found and made for one session (``None`` where a sequence is missing)."""

    label: str
    study_date: date | None
    study_time: time | None
    study_uid: str | None
    flair: MRImage | None = None
    b0: MRImage | None = None
    b1000: MRImage | None = None
    adc: MRImage | None = None
    adc_source: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    #: DICOM files of the series used, by role (``flair``, ``dwi``, ``adc``); empty for NIfTI input.
    source_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    flair_brain: MRImage | None = None
    dwi_brain: MRImage | None = None
    flair_wm_prior: MRImage | None = None
    dwi_wm_prior: MRImage | None = None
    flair_result: FlairLesionResult | None = None
    dwi_result: DwiLesionResult | None = None
    to_baseline: NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    dwi_to_reference: NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> MRImage:
        """The session's reference image (FLAIR, else b=0)."""
        image = self.flair if self.flair is not None else self.b0
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

    def to_mni(self, session: SessionImages, *, dwi: bool = False) -> NDArray[np.float64]:
        """Session reference (or DWI) world -> MNI."""
        matrix = self.template.registration.matrix @ session.to_baseline
        return matrix @ session.dwi_to_reference if dwi else matrix


def _load_session(session: Session, params: PipelineParams) -> SessionImages:
    result = SessionImages(
        label=session.label,
        study_date=session.study_date,
        study_time=session.study_time,
        study_uid=session.study_uid,
    )
    flair_entry = session.pick(SequenceClass.FLAIR)
    if flair_entry is not None:
        flair = flair_entry.load()
        result.flair = flair.volume(0) if flair.n_volumes > 1 else flair
        result.sources["flair"] = flair_entry.source
        result.source_files["flair"] = flair_entry.paths
    dwi_entry = session.pick(SequenceClass.DWI)
    if dwi_entry is not None:
        b0, b1000, high_b = split_dwi(dwi_entry.load(), params.min_high_b_s_mm2)
        result.b0, result.b1000 = b0, b1000
        result.sources["dwi"] = dwi_entry.source
        result.source_files["dwi"] = dwi_entry.paths
        adc_entry = session.pick(SequenceClass.ADC)
        adc = adc_entry.load() if adc_entry is not None else None
        if adc is not None and adc.same_grid(b0):
            result.adc, result.adc_source = adc, "scanner"
            result.sources["adc"] = adc_entry.source if adc_entry else ""
            result.source_files["adc"] = adc_entry.paths if adc_entry else ()
        else:
            if adc is not None:
                result.notes.append("the scanner ADC is on another grid than the DWI; recomputed")
            result.adc, result.adc_source = adc_from_dwi(b0, b1000, high_b), "computed"
    return result


def _bias_correct(images: SessionImages, params: PipelineParams) -> None:
    if images.flair is not None:
        images.flair, _ = correct_bias(images.flair, head_mask(images.flair), params=params.n4)
    if images.b0 is not None and images.b1000 is not None:
        images.b0, field_b0 = correct_bias(images.b0, head_mask(images.b0), params=params.n4)
        corrected = np.asarray(images.b1000.data, dtype=np.float32) / np.asarray(field_b0.data)
        images.b1000 = images.b1000.with_data(corrected)


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
    # a session or a baseline without FLAIR: register the b=0 images or the b=0 to the FLAIR
    moving = baseline.flair if baseline.flair is not None else baseline.b0
    assert moving is not None and images.b0 is not None
    fit = register(images.b0, moving, initial=None, params=params.dwi_registration)
    images.to_baseline = fit.matrix  # fixed = this session's b=0: its world -> baseline world
    images.registrations["reference_to_baseline"] = fit.to_dict()


def _register_dwi(images: SessionImages, params: PipelineParams) -> None:
    if images.b0 is None or images.flair is None:
        return  # without FLAIR the b=0 is the reference itself
    fit: Registration = register(
        images.b0, images.flair, initial=np.eye(4), params=params.dwi_registration
    )
    images.dwi_to_reference = fit.matrix  # fixed = b=0: DWI world -> FLAIR world
    images.registrations["dwi_to_reference"] = fit.to_dict()


def _segment(case: CaseImages, images: SessionImages) -> None:
    fit, params = case.template, case.params
    if images.flair is not None:
        to_mni = case.to_mni(images)
        images.flair_brain = fit.prior(images.flair, "brain", to_mni=to_mni)
        if fit.stripped:  # a stripped FLAIR: nothing outside its own foreground is brain
            own = estimate_brain(images.flair, params=params.brain_estimate, stripped=True)
            inside = (np.asarray(images.flair_brain.data) > 0) & (np.asarray(own.data) > 0)
            images.flair_brain = images.flair_brain.with_data(inside.astype(np.uint8))
        images.flair_wm_prior = fit.prior(images.flair, "wm", to_mni=to_mni)
        images.flair_result = segment_flair_lesions(
            images.flair, images.flair_brain, images.flair_wm_prior, params=params.flair
        )
    if images.b1000 is not None and images.adc is not None:
        to_mni = case.to_mni(images, dwi=images.flair is not None)
        images.dwi_brain = fit.prior(images.b1000, "brain", to_mni=to_mni)
        images.dwi_wm_prior = fit.prior(images.b1000, "wm", to_mni=to_mni)
        images.dwi_result = segment_dwi_lesions(
            images.b1000, images.adc, images.dwi_brain, images.dwi_wm_prior, params=params.dwi
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
    sessions: list[SessionImages] = []
    for session in case.sessions:
        say(f"{session.label}: loading")
        images = _load_session(session, params)
        if images.flair is None and images.b0 is None:
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
    result = CaseImages(case.case_id, sessions, baseline, template, params)
    baseline_brain = template.prior(baseline.reference, "brain")
    for images in sessions:
        say(f"{images.label}: registration")
        _register_to_baseline(images, baseline, baseline_brain, params)
        _register_dwi(images, params)
        say(f"{images.label}: segmentation")
        _segment(result, images)
    return result
