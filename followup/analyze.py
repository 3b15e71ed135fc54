"""``leukotrack analyze``: one case folder in, the BIDS-derivatives outputs of DESIGN.md §3.3 out.

Everything of a case is first written into a hidden folder beside the target and renamed into place
only when complete (:func:`safeio.atomic_folder`), so a failure leaves no partial output and an earlier
result stays as it was. Re-analysis replaces only the files leukotrack wrote (the user's own files in
``OUT/sub-<case>`` are kept), and an ``OUT/sub-<case>`` holding the results of another input folder
(two patients whose folder names give one case id) is refused with
:class:`~followup.errors.CaseIdCollisionError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from clinical.course import ClinicalCourse, IndexDate, choose_index_date, place_in_time
from clinical.export import EX_COLUMNS, fhir_bundle, sdtm_ex_rows
from clinical.outputs import (
    CSF_COLUMNS,
    PK_COLUMNS,
    TIMELINE_COLUMNS,
    csf_rows,
    exposure_columns,
    pk_covariates,
    pk_rows,
    timeline_rows,
)
from clinical.record import load_clinical
from followup.dicom_seg import SegInputs, write_session_segs
from followup.errors import CaseIdCollisionError, InvalidCaseIdError
from followup.intervals import SESSION_CHANGES
from followup.tsv import write_tsv
from imaging.case import CaseIndex, case_id_from_folder, scan_case
from imaging.edit import mask_onto, mask_share_onto
from imaging.errors import NoImagesFoundError
from imaging.image import MRImage
from imaging.normalize import robust_location_scale
from imaging.pipeline import CaseImages, PipelineParams, SessionImages, process_case
from imaging.quantify import adc_in_mask, lesion_count, lesion_volumes, pure_lesion_adc
from imaging.regions import Region
from imaging.register import resample
from imaging.template import template_map
from imaging.track import (
    UNCERTAINTY_FIELDS,
    LesionSpread,
    TrackedSession,
    TrackingParams,
    track_lesions,
)
from imaging.uncertainty import (
    FootprintReading,
    UncertaintyParams,
    change_estimate,
    estimate,
    footprint_reading,
    hidden_restricted_ml,
    hidden_restricted_share,
    missed_lesions,
    rim_share,
)
from imaging.units import mm3_to_ml
from imaging.walk import walk_files
from safeio import atomic_folder, write_text

__all__ = [
    "LESION_COLUMNS",
    "OUTPUT_LAYOUT",
    "SESSION_COLUMNS",
    "AnalysisResult",
    "analyze_case",
    "check_case_identity",
    "input_hashes",
    "software_version",
    "valid_case_id",
]

Progress = Callable[[str], None]

_PARTS = ("left", "right", *(r.column for r in Region))
#: sessions.tsv's uncertainty columns: the level, each measure's interval, each change with its
#: interval and noise label.
UNCERTAINTY_COLUMNS = [
    "uncertainty_level",
    *(f"{m}_ci_{end}" for m in SESSION_CHANGES for end in ("low", "high")),
    *(
        column
        for change, label in SESSION_CHANGES.values()
        for column in (change, f"{change}_ci_low", f"{change}_ci_high", label)
    ),
]

#: sessions.tsv: the columns of DESIGN.md §3.3 first, then leukotrack's own.
SESSION_COLUMNS = [
    "case_id",
    "session_id",
    "study_date",
    "day",
    "flair_lesion_volume_ml",
    "dwi_lesion_volume_ml",
    "flair_lesion_count",
    "dwi_lesion_count",
    "dwi_lesion_adc_mean_um2s",
    "nawm_adc_mean_um2s",
    "radc",
    *(f"flair_lesion_volume_{p}_ml" for p in _PARTS),
    *(f"dwi_lesion_volume_{p}_ml" for p in _PARTS),
    "flair_lesion_adc_mean_um2s",
    "flair_lesion_radc",
    "brain_volume_ml",
    "has_flair",
    "has_dwi",
    "adc_source",
    "registration_to_baseline_mask_dice",
    "dwi_input",
    "template_fit_quality",
    "template_fit_ok",
    "skull_stripped",
    *UNCERTAINTY_COLUMNS,
]
#: lesions.tsv: the columns of DESIGN.md §3.3 first, then leukotrack's own.
LESION_COLUMNS = [
    "case_id",
    "lesion_id",
    "session_id",
    "day",
    "source",
    "volume_ml",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "hemisphere",
    "change",
    "region",
    "related_ids",
    *UNCERTAINTY_FIELDS,
]
_DSEG_DWI_OFFSET = 1000
_CASE_ID = re.compile(r"[A-Za-z0-9]+")
#: Version of the output folder's layout; a batch re-analyses cases written under an older one.
#: 2: adds the session images and per-source lesion labels resampled onto the baseline grid.
#: 3: adds the DICOM SEG objects of each session (DICOM input).
#: 4: lesion identifiers unique per session through simultaneous splits and merges; a closing row
#:    (volume 0, ``resolved`` or ``merged``) for every identifier that ends (imaging/track.py).
#: 5: adds measurement_context.json and each session's ADC on its own grid, from which a reader's
#:    lesion edits are re-measured (followup/corrections.py).
#: 6: adds each measure's 95 % interval and each change's interval and noise label (sessions.tsv,
#:    lesions.tsv) and the draws behind them (provenance.json ``uncertainty``; imaging/uncertainty.py).
OUTPUT_LAYOUT = 6
#: What re-measurement after a reader's edit needs of the analysis (followup/corrections.py).
CONTEXT_NAME = "measurement_context.json"


def software_version() -> str:
    """The installed leukotrack version."""
    try:
        return version("leukotrack")
    except PackageNotFoundError:
        return "unknown"


def input_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (relative path -> hex digest), in sorted order.

    Symlinked folders and files are followed as the loaders follow them (:func:`imaging.walk.walk_files`),
    so a changed file in a session linked in from elsewhere changes the fingerprint.
    """
    hashes = {}
    for path in walk_files(root, skip_hidden=False):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        hashes[path.relative_to(root).as_posix()] = digest.hexdigest()
    return hashes


@dataclass
class AnalysisResult:
    """What :func:`analyze_case` wrote: the case folder and the two tables as rows."""

    case_id: str
    folder: Path
    sessions: list[dict[str, Any]]
    lesions: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def check_case_identity(folder: Path, case_dir: Path, hashes: dict[str, str] | None = None) -> None:
    """Refuse to write ``folder`` (``OUT/sub-<case>``) for ``case_dir`` when it holds the results of
    another input folder.

    The same input folder, or a moved one with identical files (``hashes``: sha256 by relative path,
    as :func:`input_hashes` gives), may replace its results. A folder without a readable
    provenance.json tells no identity (a cut one is repaired by re-analysis).

    Raises
    ------
    CaseIdCollisionError
        When another input folder wrote ``folder``.
    """
    try:
        provenance = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return
    previous = provenance.get("case_dir") if isinstance(provenance, dict) else None
    if not previous or Path(previous) == Path(case_dir).resolve():
        return
    if hashes is not None and provenance.get("input_sha256") == hashes:
        return
    case_id = folder.name.removeprefix("sub-")
    raise CaseIdCollisionError(
        f"{folder} holds the results of another input folder ({previous}); {case_dir} would get "
        f"the same case id {case_id!r} and overwrite them. Give this case its own id "
        f"(`leukotrack analyze {case_dir} --case-id NEWID`) or rename one of the two folders; "
        "nothing was written"
    )


def valid_case_id(case_id: str) -> str:
    """``case_id`` if it is a BIDS label (letters and digits only).

    Raises
    ------
    InvalidCaseIdError
        Otherwise, with the label leukotrack would make of it.
    """
    if not _CASE_ID.fullmatch(case_id):
        suggestion = re.sub(r"[^A-Za-z0-9]", "", case_id) or "case1"
        raise InvalidCaseIdError(
            f"case id {case_id!r}: use letters and digits only (a BIDS label), e.g. {suggestion!r}"
        )
    return case_id


def save_mask(image: MRImage, path: Path) -> None:
    """A mask or label map as NIfTI (uint8, or uint16 above 255; sform = qform = its affine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(image.data)
    nifti = nib.Nifti1Image(
        data.astype(np.uint16 if data.max(initial=0) > 255 else np.uint8), image.affine
    )
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_sform(image.affine, code=1)
    nifti.set_qform(image.affine, code=1)
    nib.save(nifti, path)


def source_measures(mask: MRImage, to_mni: np.ndarray, *, prefix: str) -> dict[str, Any]:
    """Volumes (total, by hemisphere and region) and count of one source's lesion mask.

    ``to_mni`` maps the mask's world to MNI (the template's hemispheres and regions are warped onto
    the mask's grid through it). The analysis and the re-measurement after a reader's edit both
    measure through here.
    """
    row: dict[str, Any] = lesion_volumes(
        mask,
        template_map(mask, "hemispheres", to_mni),
        template_map(mask, "regions", to_mni),
        prefix=prefix,
    )
    row[f"{prefix}_count"] = lesion_count(mask)
    return row


def dwi_measures(
    adc_um2s: MRImage,
    dwi_mask: MRImage,
    nawm_adc_um2s: float,
    flair_mask: MRImage | None,
    dwi_to_flair: np.ndarray,
    *,
    flair_share: float = 0.5,
) -> dict[str, float]:
    """Lesion ADC (um2/s) and rADC of the DWI lesions, and of the FLAIR lesions seen on the ADC grid.

    ``dwi_to_flair`` maps the DWI world to the FLAIR's (4, 4); ``nawm_adc_um2s`` is the reference
    of rADC (nan when unknown). The FLAIR lesions' ADC is read in the ADC voxels that FLAIR lesion
    fills to at least ``flair_share`` (0.5: mostly lesion; the partial-volume band reads it at 0.7
    and 0.3).
    """
    lesion_adc = adc_in_mask(adc_um2s, dwi_mask)
    ok = nawm_adc_um2s > 0
    row = {
        "nawm_adc_mean_um2s": nawm_adc_um2s,
        "dwi_lesion_adc_mean_um2s": lesion_adc,
        "radc": lesion_adc / nawm_adc_um2s if ok else math.nan,
    }
    if flair_mask is not None:
        # the ADC voxels mostly inside a FLAIR lesion: a thick ADC voxel whose centre lies in a
        # lesion but which holds mostly normal tissue is not the lesion's ADC (on 2 x 2 x 4 mm ADC
        # maps the centre rule read the FLAIR lesions' rADC 0.03-0.12 too high)
        share = np.asarray(mask_share_onto(flair_mask, adc_um2s, dwi_to_flair).data)
        inside = (share >= flair_share).astype(np.uint8)
        flair_adc = adc_in_mask(adc_um2s, adc_um2s.with_data(inside))
        row["flair_lesion_adc_mean_um2s"] = flair_adc
        row["flair_lesion_radc"] = flair_adc / nawm_adc_um2s if ok else math.nan
    return row


def _session_row(case: CaseImages, images: SessionImages, index_date: IndexDate) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case_id": case.case_id,
        "session_id": images.label,
        "study_date": images.study_date.isoformat() if images.study_date else "",
        "day": index_date.day(images.study_date) if images.study_date else "",
        "has_flair": int(images.flair is not None),
        "has_dwi": int(images.b1000 is not None),
        "adc_source": images.adc_source,
        "dwi_input": images.dwi_kind,
    }
    fit = case.template
    flair, dwi = images.flair_result, images.dwi_result
    if flair is not None and images.flair is not None:
        row.update(source_measures(flair.lesion_mask, case.to_mni(images), prefix="flair_lesion"))
        if images.flair_brain is not None:
            brain = np.count_nonzero(np.asarray(images.flair_brain.data))
            row["brain_volume_ml"] = mm3_to_ml(brain * images.flair.voxel_volume_mm3)
    if dwi is not None and images.b1000 is not None:
        to_mni = case.to_mni(images, dwi=images.flair is not None)
        row.update(source_measures(dwi.lesion_mask, to_mni, prefix="dwi_lesion"))
        if "brain_volume_ml" not in row and images.dwi_brain is not None:  # a DWI-only session
            brain = np.count_nonzero(np.asarray(images.dwi_brain.data))
            row["brain_volume_ml"] = mm3_to_ml(brain * images.b1000.voxel_volume_mm3)
    if dwi is not None and images.b1000 is not None and images.adc is not None:
        row.update(
            dwi_measures(
                images.adc,
                dwi.lesion_mask,
                _nawm_adc(images),
                flair.lesion_mask if flair is not None and images.flair is not None else None,
                images.dwi_to_reference,
            )
        )
    registration = images.registrations.get("reference_to_baseline", {})
    row["registration_to_baseline_mask_dice"] = registration.get("mask_dice", "")
    if fit.quality is not None:  # every session's priors come through the baseline's fit
        row["template_fit_quality"] = round(fit.quality.brain_dice, 4)
        row["template_fit_ok"] = int(fit.quality.ok)
    row["skull_stripped"] = int(fit.stripped)
    return row


def _mask_ml(mask: MRImage | None) -> float:
    """Volume of a mask (mL; nan for None)."""
    if mask is None:
        return math.nan
    return mm3_to_ml(float(np.count_nonzero(np.asarray(mask.data))) * mask.voxel_volume_mm3)


@dataclass
class _Spread:
    """One session's measures on each perturbed draw, at the partial-volume band's two cuts and
    the further SDs, by sessions.tsv column (imaging/uncertainty.py)."""

    draws: dict[str, list[float]]
    bands: dict[str, tuple[float, float]]
    other_sd: dict[str, float]
    #: A session's own band where it is wider than the band its changes use (by column).
    session_bands: dict[str, tuple[float, float]] = field(default_factory=dict)


def _spread(images: SessionImages, settings: UncertaintyParams) -> _Spread | None:
    """The session's measures on its perturbed draws (None when intervals are off)."""
    if not images.draws:
        return None
    draws: dict[str, list[float]] = {m: [] for m in SESSION_CHANGES}
    for draw in images.draws:
        draws["flair_lesion_volume_ml"].append(_mask_ml(draw.flair_mask))
        draws["dwi_lesion_volume_ml"].append(_mask_ml(draw.dwi_mask))
        radc = {"radc": math.nan, "flair_lesion_radc": math.nan}
        if draw.adc_um2s is not None and draw.dwi_mask is not None:
            radc.update(
                dwi_measures(
                    draw.adc_um2s,
                    draw.dwi_mask,
                    draw.nawm_adc_um2s,
                    draw.flair_mask,
                    draw.dwi_to_reference,
                )
            )
        draws["radc"].append(radc["radc"])
        draws["flair_lesion_radc"].append(radc["flair_lesion_radc"])
    bands: dict[str, tuple[float, float]] = {}
    session_bands: dict[str, tuple[float, float]] = {}
    for source, (inner, outer) in images.bands.items():
        bands[f"{source}_lesion_volume_ml"] = (_mask_ml(inner), _mask_ml(outer))
    nawm = _nawm_adc(images)
    # the share of each ADC voxel the session's FLAIR lesion fills, for the FLAIR-lesion rADC's
    # two-tissue fit and the DWI volume's hidden restricted tissue
    filled = (
        mask_share_onto(images.flair_result.lesion_mask, images.adc, images.dwi_to_reference)
        if images.adc is not None and images.flair_result is not None
        else None
    )
    if images.adc is not None and images.dwi_result is not None and "dwi" in images.bands:
        inner, outer = images.bands["dwi"]
        cuts = [dwi_measures(images.adc, m, nawm, None, np.eye(4))["radc"] for m in (inner, outer)]
        bands["radc"] = (cuts[0], cuts[1])
        if "flair" in images.bands:
            # the band at both grids: the FLAIR lesion's own 0.7 / 0.3 cuts, each read in the ADC
            # voxels it fills to 0.7 / 0.3 (an ADC voxel is 10-20 FLAIR voxels)
            cuts = [
                dwi_measures(
                    images.adc,
                    images.dwi_result.lesion_mask,
                    nawm,
                    m,
                    images.dwi_to_reference,
                    flair_share=share,
                )["flair_lesion_radc"]
                for m, share in zip(images.bands["flair"], (0.7, 0.3), strict=True)
            ]
            bands["flair_lesion_radc"] = (cuts[0], cuts[1])
            # the session's band reaches down to the lower end of the lesion tissue's own ADC
            # (the fit's interval): on 4-5 mm ADC maps even the voxels a small lesion fills to
            # 0.7 hold normal tissue, and a small lesion fills few voxels to fit. Not its
            # changes': the two cuts' change is the ambiguity of the change of the reading itself
            # (also when no ADC voxel is filled to 0.7: a small load's 0.7 cut reads nothing)
            if filled is not None:
                pure = pure_lesion_adc(images.adc, filled, nawm).lower(settings.z) / nawm
                below_inner = not math.isfinite(cuts[0]) or pure < cuts[0]
                if math.isfinite(pure) and math.isfinite(cuts[1]) and below_inner:
                    session_bands["flair_lesion_radc"] = (max(pure, 0.0), cuts[1])
    other_sd = {
        f"{source}_lesion_volume_ml": mm3_to_ml(sd * image.voxel_volume_mm3)
        for source, image in (("flair", images.flair), ("dwi", images.b1000))
        if image is not None and (sd := images.probability_sd_voxels.get(source, 0.0))
    }
    if images.dwi_volume_band is not None:
        # the session's DWI volume: its band on the ADC deficit, the outer end extended by the
        # restricted tissue of FLAIR lesions beyond its reach. Not its changes': on the report
        # set the deficit band and the hidden tissue in the change band narrowed the change of
        # the smallest load (0.18 -> 0.04 mL) to a false "decrease" (README, *Uncertainty*)
        inner, outer = images.dwi_volume_band
        hidden = (
            _hidden_restricted_ml(images, nawm, filled, settings.z)
            if settings.hidden_restricted and filled is not None
            else 0.0
        )
        session_bands["dwi_lesion_volume_ml"] = (_mask_ml(inner), _mask_ml(outer) + hidden)
    bands = {k: v for k, v in bands.items() if all(map(math.isfinite, v))}
    return _Spread(draws, bands, other_sd, session_bands)


#: ``1 - rADC`` of pure restricted tissue when the session has no DWI lesion to measure it on:
#: rADC 0.5 (toxic leukoencephalopathy 0.40-0.48, acute infarcts about 0.5-0.6; see
#: ``exposure-and-biomarkers.md`` section 3.2).
DEFAULT_PURE_DEFICIT = 0.5
#: The pure deficit is never taken below the engine's own cut, ``1 - DwiLesionParams.radc_max``.
MIN_PURE_DEFICIT = 0.25


def _pure_deficit(images: SessionImages, nawm_adc_um2s: float) -> float:
    """``1 - rADC`` of the session's pure restricted tissue: its DWI lesions' restricted half
    (:data:`DEFAULT_PURE_DEFICIT` without one), at least :data:`MIN_PURE_DEFICIT`."""
    pure = DEFAULT_PURE_DEFICIT
    if images.adc is not None and images.dwi_result is not None and nawm_adc_um2s > 0:
        lesion = np.asarray(images.dwi_result.lesion_mask.data) > 0
        if lesion.any():
            own = 1.0 - np.asarray(images.adc.data, np.float64)[lesion] / nawm_adc_um2s
            pure = float(np.median(own[own >= np.median(own)]))  # the lesions' restricted half
    return max(pure, MIN_PURE_DEFICIT)


def _restricted_ml(
    images: SessionImages,
    nawm_adc_um2s: float,
    lesion_share: MRImage,
    reached: MRImage | None,
    pure_deficit: float,
    *,
    upper_z: float | None = None,
) -> float:
    """The restricted tissue the session's ADC reads where ``lesion_share`` (a lesion seen
    elsewhere, as its share of each ADC voxel) lies beyond ``reached``, mL; with ``upper_z`` the
    upper end of its ``upper_z`` interval (:func:`imaging.uncertainty.hidden_restricted_ml`; 0
    when a part is missing)."""
    adc_noise = _radc_and_noise(images, nawm_adc_um2s)
    if adc_noise is None or reached is None or images.dwi_brain is None:
        return 0.0
    radc, deficit_sd = adc_noise
    return hidden_restricted_ml(
        radc,
        lesion_share,
        reached,
        images.dwi_brain,
        pure_deficit=pure_deficit,
        deficit_sd=deficit_sd,
        z=upper_z if upper_z is not None else 2.0,
        upper=upper_z is not None,
    )


def _radc_and_noise(images: SessionImages, nawm_adc_um2s: float) -> tuple[MRImage, float] | None:
    """The session's rADC map and the SD of one voxel's deficit in normal white matter (None when
    the DWI, its brain or its normal white matter is missing)."""
    if (
        images.adc is None
        or images.dwi_result is None
        or images.dwi_brain is None
        or images.dwi_nawm_mask is None
        or not nawm_adc_um2s > 0
    ):
        return None
    adc = np.asarray(images.adc.data, np.float64)
    radc = images.adc.with_data((adc / nawm_adc_um2s).astype(np.float32), sequence="OTHER")
    nawm = np.asarray(images.dwi_nawm_mask.data) > 0
    normal = adc[nawm & (adc > 0)] / nawm_adc_um2s
    if normal.size < 10:
        return None
    _, deficit_sd, _ = robust_location_scale(normal, n_trim_iterations=0)
    return radc, deficit_sd


def _hidden_restricted_share(images: SessionImages, z: float) -> MRImage | None:
    """The most restricted tissue each ADC voxel of the session's FLAIR lesions may hold next to a
    DWI lesion, beyond its volume band's reach (:func:`imaging.uncertainty.hidden_restricted_share`;
    None when a part is missing)."""
    nawm = _nawm_adc(images)
    adc_noise = _radc_and_noise(images, nawm)
    if (
        adc_noise is None
        or images.dwi_volume_band is None
        or images.adc is None
        or images.dwi_brain is None
    ):
        return None
    radc, deficit_sd = adc_noise
    reached = images.dwi_volume_band[1]
    # the voxels right around the band, and the FLAIR lesion beyond it
    share = np.asarray(rim_share(radc, reached, images.dwi_brain, deficit_sd=deficit_sd).data)
    if images.flair_result is not None:
        filled = mask_share_onto(
            images.flair_result.lesion_mask, images.adc, images.dwi_to_reference
        )
        share = np.maximum(share, np.asarray(filled.data))
    return hidden_restricted_share(
        radc,
        radc.with_data(share.astype(np.float32), sequence="OTHER"),
        reached,
        images.dwi_brain,
        pure_deficit=_pure_deficit(images, nawm),
        deficit_sd=deficit_sd,
        z=z,
    )


def _hidden_restricted_ml(
    images: SessionImages, nawm_adc_um2s: float, flair_share: MRImage, z: float
) -> float:
    """The most restricted tissue the FLAIR lesions may hold beyond the DWI volume band's reach,
    mL: the upper end of its ``z`` interval (``flair_share``: the FLAIR lesion's share of each ADC
    voxel). The band's outer end holds what the ADC cannot rule out."""
    reached = images.dwi_volume_band[1] if images.dwi_volume_band is not None else None
    pure = _pure_deficit(images, nawm_adc_um2s)
    return _restricted_ml(images, nawm_adc_um2s, flair_share, reached, pure, upper_z=z)


def _dwi_unseen(before: SessionImages, after: SessionImages) -> tuple[float, float]:
    """The restricted tissue each session's ADC reads where only the other session found a DWI
    lesion, mL: ``(in before, in after)``, the change's reach down and up
    (:func:`imaging.uncertainty.change_estimate`). Each lesion is carried onto the other
    session's ADC grid as its share of each voxel; lesions that touch that session's band (seen
    there too) are left out."""
    out = []
    for seer, other in ((after, before), (before, after)):
        band = other.bands.get("dwi")
        if seer.dwi_result is None or other.adc is None or band is None:
            out.append(0.0)
            continue
        # the other session's DWI world -> baseline -> the seer's DWI world
        to_seer = np.linalg.inv(seer.dwi_to_baseline) @ other.dwi_to_baseline
        share = mask_share_onto(seer.dwi_result.lesion_mask, other.adc, to_seer)
        missed = missed_lesions(share, band[1])
        pure = _pure_deficit(seer, _nawm_adc(seer))
        out.append(_restricted_ml(other, _nawm_adc(other), missed, band[1], pure))
    return out[0], out[1]


def _interval_cells(
    row: dict[str, Any], spread: _Spread | None, settings: UncertaintyParams
) -> None:
    """Fill a session row's ``*_ci_low`` and ``*_ci_high`` from its spread."""
    for measure in SESSION_CHANGES:
        value = row.get(measure)
        if spread is None or not isinstance(value, float | int) or not math.isfinite(value):
            continue
        found = estimate(
            float(value),
            spread.draws[measure],
            band=spread.session_bands.get(measure, spread.bands.get(measure)),
            band_weight=settings.band_weight,
            other_sd=math.hypot(
                spread.other_sd.get(measure, 0.0),
                settings.volume_relative_sd * float(value) if measure.endswith("_ml") else 0.0,
            ),
            z=settings.z,
            non_negative=measure.endswith("_ml"),
            band_centred=measure in settings.band_centred,
        )
        row[f"{measure}_ci_low"], row[f"{measure}_ci_high"] = found.low, found.high


def _flair_radc_footprints(before: SessionImages, after: SessionImages) -> tuple[float, float]:
    """The FLAIR-lesion rADC's change read on one lesion footprint in both sessions:
    ``(on before's FLAIR lesions, on after's)`` (nan when a part is missing).

    Each session reads its own FLAIR lesions; when the segmentations differ (a lesion found on one
    scan only, a boundary drawn elsewhere) the change holds the difference of the footprints as
    well as the tissue's. Read on the same footprint, each session's ADC measures the same tissue.
    """

    def read(reader: SessionImages, lesions: SessionImages) -> float:
        if (
            reader.adc is None
            or reader.dwi_result is None
            or lesions.flair_result is None
            or lesions.flair is None
        ):
            return math.nan
        # the reader's ADC world -> its reference -> baseline -> the lesions' FLAIR world
        to_flair = np.linalg.inv(lesions.to_baseline) @ reader.dwi_to_baseline
        return dwi_measures(
            reader.adc,
            reader.dwi_result.lesion_mask,
            _nawm_adc(reader),
            lesions.flair_result.lesion_mask,
            to_flair,
        )["flair_lesion_radc"]

    return (
        read(after, before) - read(before, before),
        read(after, after) - read(before, after),
    )


def _change_reach(
    measure: str, change: float, before: SessionImages, after: SessionImages
) -> tuple[float, float]:
    """How much further down and up a change may lie, whole (``change_estimate(reach=...)``):
    the DWI volume's lesions seen in one session only (:func:`_dwi_unseen`), the FLAIR-lesion
    rADC's change on either session's footprint (:func:`_flair_radc_footprints`)."""
    if measure == "dwi_lesion_volume_ml":
        return _dwi_unseen(before, after)
    if measure == "flair_lesion_radc":
        readings = [c for c in _flair_radc_footprints(before, after) if math.isfinite(c)]
        if readings:
            return max(0.0, change - min(readings)), max(0.0, max(readings) - change)
    return 0.0, 0.0


def _change_cells(
    rows: list[dict[str, Any]],
    spreads: list[_Spread | None],
    settings: UncertaintyParams,
    sessions: list[SessionImages] | None = None,
) -> None:
    """Fill each session row's changes from the previous session that measured the same thing,
    with their intervals and noise labels (paired draws, imaging.uncertainty.change_estimate).
    With ``sessions`` (the rows' images), the DWI volume's and the FLAIR-lesion rADC's changes
    also reach over what the two sessions' segmentations differ by (:func:`_change_reach`)."""
    for measure, (change, label) in SESSION_CHANGES.items():
        before: tuple[float, _Spread, int] | None = None
        for index, (row, spread) in enumerate(zip(rows, spreads, strict=True)):
            value = row.get(measure)
            if not isinstance(value, float | int) or not math.isfinite(value) or spread is None:
                continue
            if before is not None:
                reach = (0.0, 0.0)
                if sessions is not None:
                    reach = _change_reach(
                        measure, float(value) - before[0], sessions[before[2]], sessions[index]
                    )
                found = change_estimate(
                    before[0],
                    float(value),
                    before[1].draws[measure],
                    spread.draws[measure],
                    band_before=before[1].bands.get(measure),
                    band_after=spread.bands.get(measure),
                    band_weight=settings.band_weight,
                    other_sd=math.hypot(
                        before[1].other_sd.get(measure, 0.0),
                        spread.other_sd.get(measure, 0.0),
                        settings.change_relative_sd * (before[0] + float(value)) / 2
                        if measure.endswith("_ml")
                        else 0.0,
                    ),
                    z=settings.z,
                    reach=reach,
                    draws_centred=measure in settings.draws_centred,
                )
                row[change] = found.value
                row[f"{change}_ci_low"], row[f"{change}_ci_high"] = found.low, found.high
                row[label] = found.label
            before = (float(value), spread, index)


def _nawm_adc(images: SessionImages) -> float:
    """Mean ADC (um2/s) of the session's normal-appearing white matter (nan without one)."""
    if images.adc is None or images.dwi_nawm_mask is None:
        return math.nan
    return adc_in_mask(images.adc, images.dwi_nawm_mask)


def _track(case: CaseImages) -> dict[str, list[TrackedSession]]:
    baseline = case.baseline.reference
    fit = case.template
    hemispheres = fit.prior(baseline, "hemispheres")
    regions = fit.prior(baseline, "regions")
    settings = case.params.uncertainty
    tracked = {}
    for source in ("flair", "dwi"):
        masks: list[tuple[str, MRImage | None]] = []
        spreads: list[LesionSpread | None] = []
        for images in case.sessions:
            result = images.flair_result if source == "flair" else images.dwi_result
            if result is None:
                masks.append((images.label, None))
                spreads.append(None)
                continue
            to_baseline = images.to_baseline if source == "flair" else images.dwi_to_baseline
            inverse = np.linalg.inv(to_baseline)
            masks.append(
                (images.label, mask_onto(result.lesion_mask, baseline, inverse, as_fraction=True))
            )
            spreads.append(_lesion_spread(images, source, baseline, inverse, settings))
        tracked[source] = track_lesions(
            masks,
            source=source,
            hemispheres=hemispheres,
            regions=regions,
            params=TrackingParams(),
            spreads=spreads,
        )
    return tracked


def _lesion_spread(
    images: SessionImages,
    source: str,
    baseline: MRImage,
    inverse: np.ndarray,
    settings: UncertaintyParams,
) -> LesionSpread | None:
    """A session's perturbed masks of one source carried onto the baseline grid through each draw's
    jittered registration, and its band cuts through the registration itself."""
    drawn = [
        (draw.flair_mask, draw.to_baseline)
        if source == "flair"
        else (draw.dwi_mask, draw.dwi_to_baseline)
        for draw in images.draws
    ]
    if not drawn or source not in images.bands or any(mask is None for mask, _ in drawn):
        return None
    inner, outer = images.bands[source]
    # a DWI lesion's own volume: its band on the ADC deficit, as the session's DWI volume's (its
    # changes keep the trace's band, as the session's do)
    volume_band = None
    reach_mm = LesionSpread.volume_band_reach_mm
    if source == "dwi" and images.dwi_volume_band is not None:
        reach_mm += max(images.dwi_volume_band[1].spacing_mm)  # its rim: one DWI voxel further
        low, high = (
            np.asarray(mask_onto(m, baseline, inverse).data) > 0 for m in images.dwi_volume_band
        )
        # its outer end also holds the restricted tissue the voxels around it and its FLAIR
        # lesion may hold beyond the band's reach, as the session's volume's does
        hidden = (
            _hidden_restricted_share(images, settings.z) if settings.hidden_restricted else None
        )
        if hidden is not None:
            rim = np.asarray(mask_onto(hidden, baseline, inverse, as_fraction=True).data)
            volume_band = (low, np.minimum(high + rim, 1.0))
        else:
            volume_band = (low, high)
    return LesionSpread(
        read=_footprint_reader(images, source, baseline),
        volume_band=volume_band,
        volume_band_reach_mm=reach_mm,
        draws=[
            np.asarray(mask_onto(mask, baseline, np.linalg.inv(matrix)).data) > 0
            for mask, matrix in drawn
            if mask is not None
        ],
        inner=np.asarray(mask_onto(inner, baseline, inverse).data) > 0,
        outer=np.asarray(mask_onto(outer, baseline, inverse).data) > 0,
        z=settings.z,
        band_weight=settings.band_weight,
        volume_relative_sd=settings.volume_relative_sd,
        change_relative_sd=settings.change_relative_sd,
    )


def _footprint_reader(
    images: SessionImages, source: str, baseline: MRImage
) -> Callable[[NDArray[np.bool_]], FootprintReading] | None:
    """What the session's own image reads over a lesion footprint on the baseline grid
    (:func:`imaging.uncertainty.footprint_reading`): its FLAIR for FLAIR lesions, its ADC map (the
    trace without one) for DWI lesions; ``None`` when the image or its brain mask is missing."""
    if source == "flair":
        image, brain, to_baseline, bright = (
            images.flair,
            images.flair_brain,
            images.to_baseline,
            True,
        )
        found = images.flair_result
    else:
        bright = images.adc is None
        image = images.b1000 if bright else images.adc
        brain, to_baseline, found = images.dwi_brain, images.dwi_to_baseline, images.dwi_result
    if image is None or brain is None:
        return None
    own = found.lesion_mask if found is not None else None

    def read(footprint: NDArray[np.bool_]) -> FootprintReading:
        share = mask_share_onto(baseline.with_data(footprint.astype(np.uint8)), image, to_baseline)
        return footprint_reading(image, share, brain, exclude=own, bright=bright)

    return read


def _dataset_description(out: Path) -> None:
    path = out / "dataset_description.json"
    if path.exists():
        return
    description = {
        "Name": "leukotrack lesion follow-up",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "leukotrack",
                "Version": software_version(),
                "Description": "FLAIR and DWI white-matter lesion segmentation, measurement and "
                "tracking. Research use only, not for diagnosis.",
            }
        ],
    }
    write_text(path, json.dumps(description, indent=2) + "\n")


def session_timeline_row(row: dict[str, Any]) -> dict[str, Any]:
    """The timeline.tsv row of one sessions.tsv row (its volumes in words)."""
    sequences = [name for name, flag in (("FLAIR", "has_flair"), ("DWI", "has_dwi")) if row[flag]]
    volumes = [
        f"{name} lesions {row[column]:.2f} mL"
        for name, column in (("FLAIR", "flair_lesion_volume_ml"), ("DWI", "dwi_lesion_volume_ml"))
        if isinstance(row.get(column), float) and math.isfinite(row[column])
    ]
    return {
        "case_id": row["case_id"],
        "kind": "session",
        "item": row["session_id"],
        "date": row["study_date"],
        "day": row["day"],
        "detail": "; ".join(["MRI " + ", ".join(sequences), *volumes]),
    }


_TIMELINE_ORDER = ("event", "session", "lab", "administration", "held", "drug_on", "drug_off")


def _timeline(
    session_rows: list[dict[str, Any]],
    course: ClinicalCourse | None,
    index_date: IndexDate,
    case_id: str,
) -> list[dict[str, Any]]:
    rows = [session_timeline_row(row) for row in session_rows if row["study_date"]]
    if course is not None:
        rows += timeline_rows(course, index_date, case_id)
    rows.sort(key=lambda r: (r["date"], _TIMELINE_ORDER.index(r["kind"]), str(r["item"])))
    return rows


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2, default=str) + "\n")


def analyze_case(
    case_dir: Path,
    out_dir: Path,
    *,
    params: PipelineParams | None = None,
    progress: Progress | None = None,
    index: CaseIndex | None = None,
    processed: CaseImages | None = None,
    index_rule: str | None = None,
    provenance_extra: dict[str, Any] | None = None,
    allow_mixed_patients: bool = False,
    case_id: str | None = None,
) -> AnalysisResult:
    """Analyse one case folder and write ``out_dir/sub-<case>`` (atomically).

    The case may hold images, clinical files (patient.csv, exposures.csv, events.csv, labs.csv) or
    both. ``index`` (from :func:`imaging.case.scan_case`) and ``processed`` (from
    :func:`imaging.pipeline.process_case`) skip those steps when the caller already has them.
    ``index_rule`` overrides the index date of patient.csv (``first_mri``, ``first_dose``,
    ``symptom_onset``, ``admission``, ``drug_stop`` or a date); ``day`` counts from it everywhere.
    ``provenance_extra`` is merged into provenance.json (the batch runner's input fingerprint, and
    the inputs' sha256 it has already computed). ``allow_mixed_patients`` accepts studies of several
    patients in the case folder (recorded in provenance.json); by default they are refused.
    ``case_id`` replaces the id made of the folder name (letters and digits only).

    Raises
    ------
    ImagingError
        On unreadable or incomplete images, or studies of several patients
        (:class:`~imaging.errors.MixedPatientsError`); nothing is written then.
    ClinicalError
        On malformed clinical files (every problem with its line); nothing is written then.
    CaseIdCollisionError
        When ``out_dir/sub-<case>`` holds the results of another input folder; nothing is written.
    InvalidCaseIdError
        When ``case_id`` is not letters and digits only.
    OutputError
        Full or read-only disk, or files leukotrack did not write in the way (ForeignFilesError);
        nothing is written then.
    """
    params = params or PipelineParams()
    say = progress or (lambda _message: None)
    case_dir = Path(case_dir)
    if case_id is not None:
        valid_case_id(case_id)
    record = load_clinical(case_dir)
    if processed is None and index is None:
        try:
            index = scan_case(case_dir, allow_mixed_patients=allow_mixed_patients)
        except NoImagesFoundError:
            if record is None:
                raise
    if case_id is not None:
        index = dataclasses.replace(index, case_id=case_id) if index is not None else None
        processed = dataclasses.replace(processed, case_id=case_id) if processed else None
    else:
        known = processed or index
        case_id = known.case_id if known is not None else case_id_from_folder(case_dir)
    hashes = (provenance_extra or {}).get("input_sha256") or input_hashes(case_dir)
    subject = f"sub-{case_id}"
    out_dir = Path(out_dir)
    check_case_identity(
        out_dir / subject, case_dir, hashes
    )  # before hours of work, and again below
    started = datetime.now(UTC)
    case = processed or (process_case(index, params=params, progress=say) if index else None)
    say("measuring and tracking")
    dated = [s.study_date for s in case.sessions if s.study_date is not None] if case else []
    first_mri, last_mri = (min(dated), max(dated)) if dated else (None, None)
    course = (
        place_in_time(record, first_mri=first_mri, horizon=last_mri, folder=case_dir)
        if record is not None
        else None
    )
    index_date = choose_index_date(course, first_mri=first_mri, override=index_rule)
    session_rows = (
        [_session_row(case, images, index_date) for images in case.sessions] if case else []
    )
    spreads: list[_Spread | None] = []
    if case is not None:
        settings = case.params.uncertainty
        spreads = [_spread(images, settings) for images in case.sessions]
        for row, spread in zip(session_rows, spreads, strict=True):
            row["uncertainty_level"] = settings.name
            _interval_cells(row, spread, settings)
        _change_cells(session_rows, spreads, settings, case.sessions)
    drug_columns: list[str] = []
    if course is not None:
        for row in session_rows:
            if row["study_date"]:
                extra = exposure_columns(course, date.fromisoformat(row["study_date"]))
                row.update(extra)
                drug_columns += [c for c in extra if c not in drug_columns]
    days = {row["session_id"]: row["day"] for row in session_rows}
    tracked = _track(case) if case else {"flair": [], "dwi": []}
    lesion_rows = [
        {"case_id": case_id, "day": days[t.session_id], **row}
        for source in ("flair", "dwi")
        for t in tracked[source]
        for row in t.rows
    ]
    lesion_rows.sort(key=lambda r: (r["source"] != "flair", r["lesion_id"], float(r["day"] or 0)))
    say("writing")
    check_case_identity(out_dir / subject, case_dir, hashes)
    with atomic_folder(out_dir / subject, adopt_marker="provenance.json") as work:
        write_tsv(work / "sessions.tsv", session_rows, SESSION_COLUMNS + drug_columns)
        write_tsv(work / "lesions.tsv", lesion_rows, LESION_COLUMNS)
        write_tsv(
            work / "timeline.tsv",
            _timeline(session_rows, course, index_date, case_id),
            TIMELINE_COLUMNS,
        )
        pk = pk_rows(course, index_date, case_id, until=last_mri) if course else []
        write_tsv(work / "pk.tsv", pk, PK_COLUMNS)
        write_tsv(
            work / "csf.tsv", csf_rows(course, index_date, case_id) if course else [], CSF_COLUMNS
        )
        if course is not None and course.administrations:
            write_tsv(work / "ex.tsv", sdtm_ex_rows(course, case_id), EX_COLUMNS)
            _write_json(work / "medication_administrations.fhir.json", fhir_bundle(course, case_id))
        seg_notes = _write_images(work, subject, case, tracked) if case is not None else {}
        if case is not None:
            _write_json(work / CONTEXT_NAME, _measurement_context(case, subject))
        provenance: dict[str, Any] = {
            "software": {"name": "leukotrack", "version": software_version()},
            "python": platform.python_version(),
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "case_dir": str(case_dir.resolve()),
            "layout": index.layout if index else ("processed" if case else "clinical files only"),
            "index_date": index_date.on.isoformat(),
            "index_date_rule": index_date.rule,
            "output_layout": OUTPUT_LAYOUT,
        }
        if index is not None:
            provenance["patients"] = index.patients_record()
            provenance["allow_mixed_patients"] = index.mixed_patients_allowed
        if course is not None and record is not None:
            covariates = pk_covariates(course)
            provenance["clinical"] = {
                "files": list(record.files),
                "day0_for_day_numbers": course.day0.isoformat() if course.day0 else None,
                "notes": course.notes,
                "warnings": list(record.warnings),
                "pk_covariates": covariates.__dict__,
                "pk_covariates_assumed": covariates.assumed(),
            }
        if case is not None:
            provenance.update(_imaging_provenance(case, params))
            provenance["uncertainty"] = _uncertainty_provenance(case, spreads)
            if seg_notes:
                provenance["dicom_seg_notes"] = seg_notes
        provenance.update(provenance_extra or {})
        provenance["input_sha256"] = hashes
        _write_json(work / "provenance.json", provenance)
    _dataset_description(out_dir)
    return AnalysisResult(
        case_id,
        out_dir / subject,
        session_rows,
        lesion_rows,
        list(record.warnings if record else []),
    )


def _uncertainty_provenance(case: CaseImages, spreads: list[_Spread | None]) -> dict[str, Any]:
    """The level and, per session and measure, what the intervals were made of: each draw's
    value, the partial-volume band's two cuts and the further SD (so they can be checked)."""

    def number(value: float) -> float | None:
        return round(value, 6) if math.isfinite(value) else None

    sessions: dict[str, Any] = {}
    for images, spread in zip(case.sessions, spreads, strict=True):
        if spread is None:
            continue
        sessions[images.label] = {
            measure: {
                "draws": [number(v) for v in spread.draws[measure]],
                "band": [number(v) for v in spread.bands[measure]]
                if measure in spread.bands
                else None,
                "session_band": [number(v) for v in spread.session_bands[measure]]
                if measure in spread.session_bands
                else None,
                "other_sd": number(spread.other_sd.get(measure, 0.0)),
            }
            for measure in SESSION_CHANGES
        }
    return {"params": case.params.uncertainty.to_dict(), "sessions": sessions}


def _imaging_provenance(case: CaseImages, params: PipelineParams) -> dict[str, Any]:
    quality = case.template.quality
    return {
        "baseline_session": case.baseline.label,
        "engines": {source: info.to_dict() for source, info in case.engines.items()},
        "template_fit": {
            **(quality.to_dict() if quality is not None else {}),
            "skull_stripped": case.template.stripped,
            "limits": params.template_fit_limits.to_dict(),
        },
        "parameters": {"pipeline": params.to_dict(), "tracking": TrackingParams().to_dict()},
        "sessions": {
            s.label: {
                "sources": s.sources,
                "adc_source": s.adc_source,
                "dwi_input": _dwi_input(s),
                "registrations": s.registrations,
                "to_baseline_ras_mm": np.round(s.to_baseline, 6).tolist(),
                "dwi_to_reference_ras_mm": np.round(s.dwi_to_reference, 6).tolist(),
                "notes": s.notes,
                "image_noise_sd": s.noise_sd,
                "engine_details": {
                    source: result.details
                    for source, result in (("flair", s.flair_result), ("dwi", s.dwi_result))
                    if result is not None
                },
            }
            for s in case.sessions
        },
        "change_map_codes": {"persistent": 1, "appeared": 2, "disappeared": 3},
        "dseg_codes": (
            f"FLAIR lesion n -> n; DWI lesion n -> {_DSEG_DWI_OFFSET} + n (FLAIR wins where both)"
        ),
    }


def _session_stem(subject: str, images: SessionImages) -> tuple[str, str]:
    """(``sub-<case>_ses-<label>``, ``ses-<label>``) of a session."""
    label = images.label.removeprefix("ses-")
    return f"{subject}_ses-{label}", f"ses-{label}"


def _matrix(matrix: np.ndarray) -> list[list[float]]:
    """A (4, 4) matrix as JSON lists at full precision (re-measurement must resample as the
    analysis did, voxel for voxel)."""
    return [[float(v) for v in line] for line in np.asarray(matrix, np.float64)]


def _measurement_context(case: CaseImages, subject: str) -> dict[str, Any]:
    """What followup/corrections.py needs to re-measure a session after a reader's edit: every
    mask's file and transforms (to baseline, to MNI), the ADC and NAWM reference, the DICOM files
    of the series (for the SEG objects) and the baseline grid."""
    baseline = case.baseline.reference
    sessions: dict[str, Any] = {}
    for images in case.sessions:
        stem, folder = _session_stem(subject, images)
        entry: dict[str, Any] = {
            "source_files": {
                k: [str(Path(p).resolve()) for p in v] for k, v in images.source_files.items()
            },
            "dwi_b_value_s_mm2": images.dwi_b_value_s_mm2,
        }
        if images.flair_result is not None and images.flair is not None:
            entry["flair"] = {
                "mask": f"{folder}/anat/{stem}_space-orig_desc-flairlesion_mask.nii.gz",
                "to_baseline": _matrix(images.to_baseline),
                "to_mni": _matrix(case.to_mni(images)),
                "image": f"{folder}/anat/{stem}_space-baseline_FLAIR.nii.gz",
            }
        if images.dwi_result is not None and images.b1000 is not None:
            entry["dwi"] = {
                "mask": f"{folder}/dwi/{stem}_space-orig_desc-dwilesion_mask.nii.gz",
                "to_baseline": _matrix(images.dwi_to_baseline),
                "to_mni": _matrix(case.to_mni(images, dwi=images.flair is not None)),
                "image": f"{folder}/dwi/{stem}_space-baseline_desc-b1000_dwi.nii.gz",
                "adc": f"{folder}/dwi/{stem}_space-orig_ADC.nii.gz"
                if images.adc is not None
                else None,
                "nawm_adc_mean_um2s": _nawm_adc(images),
                "to_flair": _matrix(images.dwi_to_reference),
            }
        sessions[images.label] = entry
    return {
        "version": 1,
        "baseline_session": case.baseline.label,
        "seg_lineage": case.baseline.study_uid or case.case_id,
        "engines": {source: info.to_dict() for source, info in case.engines.items()},
        "baseline_grid": {
            "shape": list(baseline.spatial_shape),
            "affine": _matrix(baseline.affine),
            "to_mni": _matrix(case.template.registration.matrix),
        },
        "sessions": sessions,
    }


def _dwi_input(images: SessionImages) -> dict[str, Any] | None:
    """What the session's DWI export held and what the DWI lesion measurement could use."""
    if images.b1000 is None:
        return None
    details = images.dwi_result.details if images.dwi_result is not None else {}
    return {
        "kind": images.dwi_kind,
        "trace_b_value_s_mm2": images.dwi_b_value_s_mm2,
        "adc_source": images.adc_source or "none",
        "registered_to_flair": images.dwi_registrable if images.flair is not None else None,
        "restriction_checked": images.dwi_result is not None and images.adc is not None,
        **{k: details[k] for k in ("seed_z_used", "gm_ceiling_z", "seed_radc_max") if k in details},
    }


def _save_scalar(image: MRImage, path: Path) -> None:
    """A display copy of an image: int16 with a scale factor (nibabel picks it), sform = qform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nifti = nib.Nifti1Image(np.asarray(image.data, np.float32), image.affine)
    nifti.set_data_dtype(np.int16)
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_sform(image.affine, code=1)
    nifti.set_qform(image.affine, code=1)
    nib.save(nifti, path)


def _write_baseline_images(
    folder: Path, stem: str, images: SessionImages, baseline: MRImage
) -> None:
    """The session's FLAIR, b1000 trace and ADC resampled onto the baseline grid (for viewing).

    One voxel then means the same tissue in every session, so a viewer can show all sessions at one
    slice position. ADC keeps its unit (um2/s); intensities are not normalised.
    """
    from_baseline = np.asarray(np.linalg.inv(images.to_baseline), np.float64)
    dwi_from_baseline = np.asarray(np.linalg.inv(images.dwi_to_baseline), np.float64)
    wanted = (
        (images.flair, from_baseline, "anat", "FLAIR"),
        (images.b1000, dwi_from_baseline, "dwi", "desc-b1000_dwi"),
        (images.adc, dwi_from_baseline, "dwi", "ADC"),
    )
    for image, baseline_to_image, kind, suffix in wanted:
        if image is None:
            continue
        moved = resample(image, baseline, baseline_to_image, interpolation="linear")
        _save_scalar(moved, folder / kind / f"{stem}_space-baseline_{suffix}.nii.gz")


def _write_images(
    work: Path, subject: str, case: CaseImages, tracked: dict[str, list[TrackedSession]]
) -> dict[str, dict[str, str]]:
    """Write every session's images, masks, labels and DICOM SEG; return the SEG notes by session."""
    labels = {source: {t.session_id: t for t in tracked[source]} for source in ("flair", "dwi")}
    seg_notes: dict[str, dict[str, str]] = {}
    for images in case.sessions:
        stem = f"{subject}_ses-{images.label.removeprefix('ses-')}"
        folder = work / f"ses-{images.label.removeprefix('ses-')}"
        _write_baseline_images(folder, stem, images, case.baseline.reference)
        notes = write_session_segs(
            folder,
            stem,
            SegInputs.of_session(images),
            {source: labels[source].get(images.label) for source in ("flair", "dwi")},
            lineage=case.baseline.study_uid or case.case_id,
            software_version=software_version(),
            engines=case.engines,
        )
        if notes:
            seg_notes[images.label] = notes
        if images.flair_result is not None:
            save_mask(
                images.flair_result.lesion_mask,
                folder / "anat" / f"{stem}_space-orig_desc-flairlesion_mask.nii.gz",
            )
        if images.dwi_result is not None:
            save_mask(
                images.dwi_result.lesion_mask,
                folder / "dwi" / f"{stem}_space-orig_desc-dwilesion_mask.nii.gz",
            )
            if images.adc is not None:  # the lesion ADC of a re-measurement needs it as measured
                adc = images.adc.to_nifti()
                adc.set_data_dtype(np.float32)
                nib.save(adc, folder / "dwi" / f"{stem}_space-orig_ADC.nii.gz")
        write_session_labels(
            folder, stem, labels["flair"].get(images.label), labels["dwi"].get(images.label)
        )
    return seg_notes


def write_session_labels(
    folder: Path, stem: str, flair_t: TrackedSession | None, dwi_t: TrackedSession | None
) -> None:
    """Write a session's tracked labels on the baseline grid: the combined ``desc-lesions_dseg``
    with its legend, one label map per source and the change maps."""
    if flair_t is None and dwi_t is None:
        return
    template = (flair_t or dwi_t).labels  # type: ignore[union-attr]
    dseg = np.zeros(template.spatial_shape, dtype=np.uint16)
    if dwi_t is not None:
        dwi_labels = np.asarray(dwi_t.labels.data, np.uint16)
        dseg[dwi_labels > 0] = dwi_labels[dwi_labels > 0] + _DSEG_DWI_OFFSET
    if flair_t is not None:  # FLAIR labels take precedence where both overlap
        flair_labels = np.asarray(flair_t.labels.data)
        dseg[flair_labels > 0] = flair_labels[flair_labels > 0]
    save_mask(template.with_data(dseg), folder / f"{stem}_space-baseline_desc-lesions_dseg.nii.gz")
    for source, t in (("flair", flair_t), ("dwi", dwi_t)):  # one label map per source, unmixed
        if t is not None:
            save_mask(t.labels, folder / f"{stem}_space-baseline_desc-{source}lesions_dseg.nii.gz")
    entries = []
    for value in sorted({int(v) for v in np.unique(dseg) if v > 0}):
        source = "dwi" if value > _DSEG_DWI_OFFSET else "flair"
        number = value - _DSEG_DWI_OFFSET if source == "dwi" else value
        entries.append(
            {
                "index": value,
                "name": f"{'D' if source == 'dwi' else 'F'}{number:03d}",
                "source": source,
            }
        )
    write_tsv(
        folder / f"{stem}_space-baseline_desc-lesions_dseg.tsv",
        entries,
        ["index", "name", "source"],
    )
    for source, t in (("flair", flair_t), ("dwi", dwi_t)):
        if t is not None and t.change_map is not None:
            save_mask(
                t.change_map, folder / f"{stem}_space-baseline_desc-{source}change_mask.nii.gz"
            )
