"""The segmentation seam: what a FLAIR or DWI lesion engine receives, returns and declares.

An engine is any object with an ``info`` (:class:`EngineInfo`) and a ``segment`` method that maps
:class:`FlairInputs` or :class:`DwiInputs` to a :class:`LesionMap` on the grid of its main image.
The pipeline registers the images, fits the template and resamples the priors *before* the engine
runs, and estimates normal-appearing white matter (for rADC) *after* it, outside the engine, so every
engine is measured the same way. Nothing here knows which engine is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import GeometryError, ImagingError
from imaging.image import MRImage
from imaging.units import mm3_to_ml

__all__ = [
    "DwiEngine",
    "DwiInputs",
    "EngineError",
    "EngineInfo",
    "FlairEngine",
    "FlairInputs",
    "LesionMap",
    "file_sha256",
]

_FULL = np.ones((3, 3, 3), dtype=bool)


class EngineError(ImagingError):
    """An engine is unknown, unavailable, or returned something off the contract."""


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a model or data file an engine depends on."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is, recorded with every result it makes.

    Attributes
    ----------
    name : str
        Registry name (``--engine``), e.g. ``"local-contrast"``.
    version : str
        The method's own version; bumped whenever its output may change.
    source : str
        ``"flair"`` or ``"dwi"``.
    parameters : dict
        Every setting, JSON-ready.
    model_sha256 : dict
        sha256 of each model or data file the engine reads (file name -> hex digest).
    method : str
        One or two sentences for the report's methods text.
    dicom_family : str
        Attribute of ``highdicom.sr.codes.cid7162`` (DICOM CID 7162, segmentation algorithm family).
    uses_t1 : bool
        The engine reads the session's T1 (:attr:`FlairInputs.t1`) when there is one; the pipeline
        registers the T1 to the FLAIR only then.
    """

    name: str
    version: str
    source: str
    parameters: dict[str, Any] = field(default_factory=dict)
    model_sha256: dict[str, str] = field(default_factory=dict)
    method: str = ""
    dicom_family: str = "ArtificialIntelligence"
    uses_t1: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (provenance.json, batch fingerprint)."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "parameters": dict(self.parameters),
            "model_sha256": dict(self.model_sha256),
            "method": self.method,
            "dicom_family": self.dicom_family,
            "uses_t1": self.uses_t1,
        }


@dataclass(frozen=True)
class FlairInputs:
    """What a FLAIR engine receives: every image on the FLAIR grid, shape (I, J, K).

    Attributes
    ----------
    flair : MRImage
        Bias-corrected FLAIR.
    brain_mask : MRImage
        uint8 brain mask (parenchyma, ventricles and sulci).
    wm_prior, gm_prior : MRImage
        Template white- and grey-matter probabilities (0..1), registered.
    lesion_prior : MRImage or None
        Lesion frequency (0..1) in template space, registered, when the caller has one.
    t1 : MRImage or None
        The session's T1-weighted image registered onto the FLAIR grid, when there is one.
    to_mni : ndarray, shape (4, 4), or None
        FLAIR world -> MNI world (the template fit), for engines that compare a voxel with its
        mirror across the midsagittal plane; None when the FLAIR already is in MNI space.
    """

    flair: MRImage
    brain_mask: MRImage
    wm_prior: MRImage
    gm_prior: MRImage | None = None
    lesion_prior: MRImage | None = None
    t1: MRImage | None = None
    to_mni: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class DwiInputs:
    """What a DWI engine receives: every image on the DWI grid, shape (I, J, K).

    Attributes
    ----------
    trace : MRImage
        Diffusion-weighted (trace) volume at ``b_value_s_mm2`` (>= 500 s/mm2).
    b_value_s_mm2 : float
        Its b-value, s/mm2.
    adc_um2s : MRImage or None
        ADC map in um2/s, or None when the session has no ADC and no b=0 to compute one.
    brain_mask : MRImage
        uint8 brain mask.
    wm_prior : MRImage
        Template white-matter probability (0..1), registered.
    """

    trace: MRImage
    b_value_s_mm2: float
    adc_um2s: MRImage | None
    brain_mask: MRImage
    wm_prior: MRImage


@dataclass(frozen=True)
class LesionMap:
    """An engine's answer, on the grid of its main image.

    Attributes
    ----------
    lesion_mask : MRImage
        uint8, 1 = lesion (the engine's own decision, e.g. lesion fraction >= 0.5).
    probability : MRImage or None
        float32 lesion probability or fraction 0..1, when the engine gives one.
    details : dict
        Scalar diagnostics for provenance.json (thresholds measured on this image, ...).
    maps : dict
        Further images by name (e.g. ``"zscore"``), for inspection; never written by default.
    """

    lesion_mask: MRImage
    probability: MRImage | None = None
    details: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, MRImage] = field(default_factory=dict)

    @property
    def volume_ml(self) -> float:
        """Total lesion volume, mL."""
        mask = self.lesion_mask
        return mm3_to_ml(float(np.count_nonzero(mask.data)) * mask.voxel_volume_mm3)

    @property
    def n_lesions(self) -> int:
        """Number of 26-connected lesions."""
        return int(ndi.label(np.asarray(self.lesion_mask.data) > 0, structure=_FULL)[1])

    def checked(self, like: MRImage, engine: str) -> LesionMap:
        """This map, after checking it is a binary mask on the grid of ``like``.

        Raises
        ------
        EngineError
            When the engine broke the contract (another grid, non-binary values).
        """
        mask = self.lesion_mask
        if mask.data.ndim != 3 or not mask.same_grid(like):
            raise EngineError(
                f"engine {engine!r} returned a mask of shape {mask.shape} off the input grid "
                f"{like.shape}; report this to the engine's authors"
            )
        values = np.unique(np.asarray(mask.data))
        if not set(values.tolist()) <= {0, 1}:
            raise EngineError(f"engine {engine!r} returned a non-binary mask (values {values[:5]})")
        if self.probability is not None and not self.probability.same_grid(like):
            raise GeometryError(f"engine {engine!r} returned a probability map off the input grid")
        return self


@runtime_checkable
class FlairEngine(Protocol):
    """A FLAIR lesion engine."""

    @property
    def info(self) -> EngineInfo:
        """Name, version, parameters and model files."""
        ...

    def segment(self, inputs: FlairInputs) -> LesionMap:
        """Lesions of one session's FLAIR, on the FLAIR grid."""
        ...


@runtime_checkable
class DwiEngine(Protocol):
    """A DWI lesion engine (restricted diffusion)."""

    @property
    def info(self) -> EngineInfo:
        """Name, version, parameters and model files."""
        ...

    def segment(self, inputs: DwiInputs) -> LesionMap:
        """Lesions of one session's DWI, on the DWI grid."""
        ...
