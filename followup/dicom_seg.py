"""Each session's lesions as DICOM SEG objects beside its NIfTI masks (when the input was DICOM).

Per session, in ``ses-<label>/``:

* ``sub-<case>_ses-<label>_desc-lesions_seg.dcm``: the FLAIR lesions on the session's FLAIR series
  (the DWI lesions on the DWI series when the session has no FLAIR);
* ``sub-<case>_ses-<label>_desc-dwilesions_seg.dcm``: the DWI lesions on the DWI series (b1000
  planes), with the scanner's ADC map as a further source, when the session also has a FLAIR.

Each object lies on the grid of the series the mask was computed on, so its segments are the
``space-orig`` NIfTI masks voxel for voxel and no resampling is involved. One segment per tracked
lesion: the lesion's voxels on that grid are those the baseline-space label map (``lesions.tsv``)
gives them through the session's registration, and mask voxels that fall between labels take the
label of the nearest labelled voxel of their own connected lesion. Voxels of a connected lesion that
no tracked lesion reaches (too small to track in baseline space) form one untracked segment, so the
segments together are exactly the NIfTI mask.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from scipy import ndimage as ndi

from imaging.dicom.seg import LesionSegment, lesion_segmentation, source_datasets, stable_uid
from imaging.engines import EngineInfo
from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.pipeline import SessionImages
from imaging.register import resample
from imaging.track import TrackedSession

__all__ = ["SEG_SERIES_NUMBERS", "SegInputs", "orig_lesion_labels", "write_session_segs"]

log = logging.getLogger(__name__)

#: SeriesNumber of the segmentation objects, by lesion source.
SEG_SERIES_NUMBERS = {"flair": 9901, "dwi": 9902}
_PREFIX = {"flair": "F", "dwi": "D"}
_FULL = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class SegInputs:
    """What the SEG objects of one session are made of.

    Attributes
    ----------
    masks : dict
        Source (``flair``, ``dwi``) -> (binary lesion mask on the series' own grid, (4, 4) matrix
        mapping that grid's world to baseline world).
    source_files : dict
        Role (``flair``, ``dwi``, ``adc``) -> the DICOM files of the series (empty for NIfTI input).
    dwi_b_value_s_mm2 : float, optional
        The b-value of the DWI trace the DWI lesions were found on.
    corrected : bool
        The masks hold a reader's corrections (said in the series description).
    only : tuple of str, optional
        Write the objects of these sources alone (the others are left as they are); all by default.
    """

    masks: dict[str, tuple[MRImage, NDArray[np.float64]]]
    source_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    dwi_b_value_s_mm2: float | None = None
    corrected: bool = False
    only: tuple[str, ...] | None = None

    @classmethod
    def of_session(cls, images: SessionImages) -> SegInputs:
        """The inputs of a session as the pipeline made it."""
        masks = {}
        if images.flair_result is not None:
            masks["flair"] = (images.flair_result.lesion_mask, images.to_baseline)
        if images.dwi_result is not None:
            masks["dwi"] = (images.dwi_result.lesion_mask, images.dwi_to_baseline)
        bvals = images.b1000.bvals_s_mm2 if images.b1000 is not None else None
        return cls(masks, dict(images.source_files), bvals[0] if bvals else None)


def orig_lesion_labels(
    mask: MRImage, tracked: TrackedSession | None, mask_to_baseline: NDArray[np.float64]
) -> tuple[NDArray[np.uint16], list[int], bool]:
    """The tracked lesion numbers of a mask's voxels, on the mask's own grid.

    Parameters
    ----------
    mask : MRImage
        Binary lesion mask, shape (I, J, K), on the grid it was segmented on.
    tracked : TrackedSession or None
        The session's tracked labels in baseline space (value ``n`` is lesion ``F00n``/``D00n``).
    mask_to_baseline : ndarray of shape (4, 4)
        Mask world (RAS+, mm) to baseline world.

    Returns
    -------
    labels : ndarray of shape (I, J, K), uint16
        Lesion number per mask voxel; 0 outside the mask and on untracked voxels.
    numbers : list of int
        The lesion numbers present, ascending.
    untracked : bool
        Whether some mask voxels belong to no tracked lesion.
    """
    inside = np.asarray(mask.data) > 0
    labels = np.zeros(inside.shape, np.uint16)
    if tracked is not None and inside.any():
        looked = resample(tracked.labels, mask, mask_to_baseline, interpolation="nearest")
        labels = np.where(inside, np.asarray(looked.data), 0).astype(np.uint16)
    components, _ = ndi.label(inside, _FULL)
    spacing = mask.spacing_mm
    for number, box in enumerate(ndi.find_objects(components), start=1):
        if box is None:
            continue
        piece = components[box] == number
        own = np.where(piece, labels[box], 0)
        gaps = piece & (own == 0)
        if not gaps.any() or not own.any():
            continue
        _, nearest = ndi.distance_transform_edt(own == 0, sampling=spacing, return_indices=True)
        filled = own[tuple(nearest)]
        labels[box][gaps] = filled[gaps]
    numbers = sorted(int(v) for v in np.unique(labels) if v > 0)
    untracked = bool((inside & (labels == 0)).any())
    return labels, numbers, untracked


def _segments(
    source: str, numbers: list[int], untracked: bool, lineage: str
) -> list[LesionSegment]:
    prefix = _PREFIX[source]
    segments = [
        LesionSegment(
            label=f"{prefix}{n:03d}",
            source=source,  # type: ignore[arg-type]
            tracking_id=f"{prefix}{n:03d}",
            tracking_uid=stable_uid("lesion", lineage, f"{prefix}{n:03d}"),
        )
        for n in numbers
    ]
    if untracked:
        segments.append(LesionSegment(label=f"{prefix}-untracked", source=source))  # type: ignore[arg-type]
    return segments


def _segment_numbers(
    labels: NDArray[np.uint16], inside: NDArray[np.bool_], numbers: list[int]
) -> NDArray[np.uint16]:
    """Lesion numbers to segment numbers 1..N; untracked mask voxels get N + 1."""
    lookup = np.zeros(int(labels.max(initial=0)) + 1, np.uint16)
    for segment, number in enumerate(numbers, start=1):
        lookup[number] = segment
    segments = lookup[labels]
    segments[inside & (labels == 0)] = len(numbers) + 1
    return segments


_Choice = tuple[Callable[[], list[Dataset]], Callable[[], list[Dataset]]]


def _source_choices(source: str, inputs: SegInputs) -> list[_Choice]:
    """Which series a segmentation may reference, preferred first (read lazily).

    FLAIR lesions: the FLAIR series. DWI lesions: the DWI series' b1000 planes with the scanner ADC
    as a further source; failing that (several images per plane, say), the scanner ADC alone.
    """
    files = inputs.source_files
    if source == "flair":
        return [(lambda: source_datasets(files["flair"]), list)]
    b_high = inputs.dwi_b_value_s_mm2
    adc = files.get("adc", ())
    choices: list[_Choice] = [
        (
            lambda: source_datasets(files["dwi"], b_value_s_mm2=b_high),
            (lambda: source_datasets(adc)) if adc else list,
        )
    ]
    if adc:
        choices.append((lambda: source_datasets(adc), list))
    return choices


def write_session_segs(
    folder: Path,
    stem: str,
    inputs: SegInputs,
    tracked: dict[str, TrackedSession | None],
    *,
    lineage: str,
    software_version: str,
    engines: dict[str, EngineInfo] | None = None,
) -> dict[str, str]:
    """Write the session's DICOM SEG objects into ``folder``; return a note per object not written.

    Parameters
    ----------
    folder : Path
        The session's output folder (``ses-<label>``).
    stem : str
        ``sub-<case>_ses-<label>``.
    inputs : SegInputs
        The session's masks and the DICOM files of its series (:meth:`SegInputs.of_session`).
    tracked : dict
        The session's tracked labels by source (``flair``, ``dwi``).
    lineage : str
        What makes Tracking UIDs unique to this patient's lesions: the baseline study's UID.
    software_version : str
        leukotrack's version.
    engines : dict, optional
        The engines that made the lesions, by source (algorithm identification).
    """
    notes: dict[str, str] = {}
    wanted = [
        (source, *inputs.masks[source])
        for source in ("flair", "dwi")
        if source in inputs.masks and inputs.source_files.get(source)
    ]
    for source, mask, to_baseline in wanted:
        name = "lesions" if source == wanted[0][0] else f"{source}lesions"
        if inputs.only is not None and source not in inputs.only:
            continue
        path = folder / f"{stem}_desc-{name}_seg.dcm"
        labels, numbers, untracked = orig_lesion_labels(mask, tracked.get(source), to_baseline)
        if not numbers and not untracked:
            notes[path.name] = f"no {source} lesion in this session: no DICOM SEG written"
            continue
        segment_map = mask.with_data(
            _segment_numbers(labels, np.asarray(mask.data) > 0, numbers), sequence="OTHER"
        )
        problems = []
        for sources, further in _source_choices(source, inputs):
            try:
                segmentation = lesion_segmentation(
                    segment_map,
                    _segments(source, numbers, untracked, lineage),
                    sources(),
                    further_sources=further(),
                    series_number=SEG_SERIES_NUMBERS[source],
                    series_description=(
                        f"leukotrack {source.upper()} lesions"
                        f"{', corrected' if inputs.corrected else ''} (research use)"
                    ),
                    software_version=software_version,
                    engine=(engines or {}).get(source),
                    uid_parts=(lineage, stem, name, software_version, _digest(labels)),
                )
                break
            except (ImagingError, ValueError) as error:
                problems.append(str(error))
        else:
            notes[path.name] = "DICOM SEG not written: " + "; ".join(problems)
            log.warning("%s: %s", stem, notes[path.name])
            continue
        segmentation.save_as(path)
    return notes


def _digest(labels: NDArray[np.uint16]) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()
