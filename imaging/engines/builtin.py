"""The engines that ship with leukotrack: rule-based FLAIR and DWI lesion segmentation.

Both wrap :mod:`imaging.segment` (the methods are described there) and need no model file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from imaging.engines.base import (
    DwiInputs,
    EngineError,
    EngineInfo,
    FlairInputs,
    LesionMap,
    file_sha256,
)
from imaging.lesion_classifier import (
    CLASSIFIER_META,
    CLASSIFIER_MODEL,
    classifier_settings,
    segment_flair_classifier,
)
from imaging.lesion_mixture import MixtureLesionParams, segment_flair_mixture
from imaging.lesion_prior import LESION_PRIOR_FILE, lesion_prior_sha256
from imaging.segment import (
    DwiLesionParams,
    FlairLesionParams,
    segment_dwi_lesions,
    segment_flair_lesions,
)

__all__ = [
    "BUILTIN_DWI",
    "BUILTIN_FLAIR",
    "CLASSIFIER_FLAIR",
    "MIXTURE_FLAIR",
    "BuiltinDwiEngine",
    "BuiltinFlairEngine",
    "ClassifierFlairEngine",
    "MixtureFlairEngine",
]

#: Registry names of the built-in engines (the defaults).
BUILTIN_FLAIR = "local-contrast"
BUILTIN_DWI = "restricted-diffusion"
#: The second FLAIR engine, kept for comparison (see README, *FLAIR lesion method*).
MIXTURE_FLAIR = "tissue-mixture"
#: The learned FLAIR engine (gradient-boosted trees on synthetic FLAIRs with real lesion shapes).
CLASSIFIER_FLAIR = "voxel-classifier"


class BuiltinFlairEngine:
    """FLAIR lesions by local contrast to normal white matter, seeded with a lesion-frequency prior
    (:func:`segment_flair_lesions`)."""

    version = "2"

    def __init__(self, params: FlairLesionParams | None = None) -> None:
        self.params = params or FlairLesionParams()

    @property
    def info(self) -> EngineInfo:
        """Name, version and every parameter."""
        return EngineInfo(
            name=BUILTIN_FLAIR,
            version=self.version,
            source="flair",
            parameters=self.params.to_dict(),
            model_sha256={LESION_PRIOR_FILE.name: lesion_prior_sha256()},
            method=(
                "FLAIR lesions as voxels brighter than the local normal white matter (in units of "
                "this image's white-matter spread), seeded where they stand out over white and grey "
                "matter with a threshold lowered where MS lesions are frequent (a prior from 27 "
                "expert masks), cut at 0.4 of each lesion's contrast"
            ),
            dicom_family="HistogramAnalysis",
        )

    def segment(self, inputs: FlairInputs) -> LesionMap:
        """Lesions on the FLAIR grid, with the z-score map and the thresholds measured."""
        result = segment_flair_lesions(
            inputs.flair,
            inputs.brain_mask,
            inputs.wm_prior,
            params=self.params,
            lesion_prior=inputs.lesion_prior,
            gm_prior=inputs.gm_prior,
        )
        return LesionMap(
            lesion_mask=result.lesion_mask,
            details={
                "nawm_median": result.nawm_median,
                "nawm_sigma": result.nawm_sigma,
                "gm_ceiling_z": result.gm_ceiling_z,
                "seed_z_used": result.seed_z_used,
            },
            maps={"zscore": result.zscore, "nawm_mask": result.nawm_mask},
        )


class MixtureFlairEngine:
    """FLAIR lesions as the hyperintense outlier class of a per-image Gaussian mixture of the tissues
    (:func:`imaging.lesion_mixture.segment_flair_mixture`)."""

    version = "1"

    def __init__(self, params: MixtureLesionParams | None = None) -> None:
        self.params = params or MixtureLesionParams()

    @property
    def info(self) -> EngineInfo:
        """Name, version, every parameter and the lesion prior's sha256."""
        return EngineInfo(
            name=MIXTURE_FLAIR,
            version=self.version,
            source="flair",
            parameters=self.params.to_dict(),
            model_sha256={LESION_PRIOR_FILE.name: lesion_prior_sha256()},
            method=(
                "FLAIR lesions as the hyperintense outlier class of a Gaussian mixture of CSF, grey "
                "and white matter fitted to this image with the template priors as weights"
            ),
            dicom_family="HistogramAnalysis",
        )

    def segment(self, inputs: FlairInputs) -> LesionMap:
        """Lesions on the FLAIR grid, with the lesion posterior as the probability map."""
        if inputs.gm_prior is None:
            raise EngineError(f"engine {MIXTURE_FLAIR!r} needs the grey-matter prior")
        result = segment_flair_mixture(
            inputs.flair,
            inputs.brain_mask,
            inputs.wm_prior,
            inputs.gm_prior,
            inputs.lesion_prior,
            params=self.params,
        )
        return LesionMap(
            lesion_mask=result.lesion_mask,
            probability=result.probability,
            details={"means": result.means, "sds": result.sds},
        )


@lru_cache(maxsize=1)
def _classifier_sha256() -> dict[str, str]:
    """sha256 of the shipped model (2 MB) and its settings, hashed once per process: ``info`` is
    read for provenance, the batch fingerprint, the SEG and the report."""
    return {path.name: file_sha256(path) for path in (CLASSIFIER_MODEL, CLASSIFIER_META)}


class ClassifierFlairEngine:
    """FLAIR lesions by the shipped voxel classifier
    (:func:`imaging.lesion_classifier.segment_flair_classifier`)."""

    version = "1"

    @property
    def info(self) -> EngineInfo:
        """Name, version, threshold and the sha256 of the model, its settings and the lesion prior."""
        settings = classifier_settings()
        return EngineInfo(
            name=CLASSIFIER_FLAIR,
            version=self.version,
            source="flair",
            parameters={
                "threshold": settings["threshold"],
                "min_lesion_mm3": settings["min_lesion_mm3"],
                "features": list(settings["features"]),
                "lightgbm_rounds": settings["rounds"],
            },
            model_sha256={**_classifier_sha256(), LESION_PRIOR_FILE.name: lesion_prior_sha256()},
            method=(
                "FLAIR lesions by a voxel classifier (LightGBM gradient-boosted trees) on contrast "
                "to this image's white and grey matter at several scales and on position (template "
                "priors, lesion frequency from 27 expert masks, depth in the brain, contrast to the "
                "mirror image across the midline), trained on "
                "synthetic FLAIRs built around real MS lesion shapes with randomised contrast"
            ),
            dicom_family="ArtificialIntelligence",
        )

    def segment(self, inputs: FlairInputs) -> LesionMap:
        """Lesions on the FLAIR grid, with the lesion probability."""
        if inputs.gm_prior is None:
            raise EngineError(f"engine {CLASSIFIER_FLAIR!r} needs the grey-matter prior")
        result = segment_flair_classifier(
            inputs.flair,
            inputs.brain_mask,
            inputs.wm_prior,
            inputs.gm_prior,
            inputs.lesion_prior,
            to_mni=inputs.to_mni,
        )
        return LesionMap(
            lesion_mask=result.lesion_mask,
            probability=result.probability,
            details={
                "threshold": result.threshold,
                "wm_level": result.wm_level,
                "gm_level": result.gm_level,
            },
        )


class BuiltinDwiEngine:
    """Restricted-diffusion lesions: trace-bright and ADC-low (:func:`segment_dwi_lesions`)."""

    version = "3"

    def __init__(self, params: DwiLesionParams | None = None) -> None:
        self.params = params or DwiLesionParams()

    @property
    def info(self) -> EngineInfo:
        """Name, version and every parameter."""
        return EngineInfo(
            name=BUILTIN_DWI,
            version=self.version,
            source="dwi",
            parameters=self.params.to_dict(),
            method=(
                "DWI lesions as trace-bright tissue (hysteresis on the trace normalised on "
                f"normal-appearing white matter, in the {self.params.territory.replace('_', ' ')}, "
                "seeds brighter than normal grey matter) with ADC below "
                f"{self.params.radc_max:g} of normal white matter, seeds restricted beyond the "
                "scan's ADC noise, holes a lesion encloses filled; from the trace alone when there "
                "is no ADC (restriction not checked)"
            ),
            dicom_family="MultispectralProcessing",
        )

    def segment(self, inputs: DwiInputs) -> LesionMap:
        """Lesions on the DWI grid."""
        result = segment_dwi_lesions(
            inputs.trace, inputs.adc_um2s, inputs.brain_mask, inputs.wm_prior, params=self.params
        )
        maps = {"zscore": result.zscore}
        if result.radc is not None:  # None for the trace alone (restriction not checked)
            maps["radc"] = result.radc
        return LesionMap(
            lesion_mask=result.lesion_mask,
            details={
                "nawm_trace_median": result.nawm_b1000_median,
                "nawm_trace_sigma": result.nawm_b1000_sigma,
                "adc_used": result.adc_used,
                "gm_ceiling_z": result.gm_ceiling_z,
                "seed_z_used": result.seed_z_used,
                "seed_radc_max": result.seed_radc_max,
            },
            maps=maps,
        )


def builtin_flair(options: Any) -> BuiltinFlairEngine:
    """Factory for the registry: ``options`` has a ``flair`` attribute (FlairLesionParams) or is None."""
    return BuiltinFlairEngine(getattr(options, "flair", None))


def mixture_flair(options: Any) -> MixtureFlairEngine:
    """Factory for the registry (the mixture's own defaults)."""
    return MixtureFlairEngine()


def classifier_flair(options: Any) -> ClassifierFlairEngine:
    """Factory for the registry (the shipped model)."""
    return ClassifierFlairEngine()


def builtin_dwi(options: Any) -> BuiltinDwiEngine:
    """Factory for the registry: ``options`` has a ``dwi`` attribute (DwiLesionParams) or is None."""
    return BuiltinDwiEngine(getattr(options, "dwi", None))
