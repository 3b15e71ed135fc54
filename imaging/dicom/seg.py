"""Lesion masks as DICOM Segmentation objects (highdicom), for PACS viewers such as OHIF and Slicer.

A segmentation is built on the grid of the series it was computed on (the session's FLAIR, or its
DWI), from an integer label map in which value ``n`` is the ``n``-th :class:`LesionSegment`. Every
segment carries a coded category and type (SNOMED CT "Morphologically abnormal structure" /
"Lesion", in cerebral white matter), the algorithm that made it, and, for a tracked lesion, a
Tracking ID (the lesion id of ``lesions.tsv``, e.g. ``F003``) and a Tracking UID derived from the case
and the lesion id, so the same lesion has the same UID in every session's object.

highdicom places each frame by its plane position and links it to the source image at the same
position; :func:`lesion_segmentation` checks that every frame found its source, so a mask that is not
on the source series' grid is an error rather than an object that PACS would overlay in the wrong
place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from imaging.dicom.frames import frames_from_dataset
from imaging.dicom.series import read_images
from imaging.engines import EngineInfo
from imaging.errors import GeometryError, ImagingError
from imaging.image import MRImage

__all__ = [
    "LesionSegment",
    "SegReferenceError",
    "lesion_segmentation",
    "source_datasets",
    "stable_uid",
]

#: What each lesion source is, in words (segment descriptions).
SOURCE_WORDS = {
    "flair": "FLAIR hyperintense white-matter lesion",
    "dwi": "white-matter lesion with restricted diffusion (DWI b1000 bright, ADC low)",
}
#: Algorithm families (DICOM CID 7162): robust z-score thresholds with hysteresis on FLAIR; DWI
#: lesions from b1000 and ADC together.
#: Namespace of leukotrack's name-based UIDs (fixed: changing it changes every Tracking UID).
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "leukotrack")
_FAMILIES = {"flair": codes.cid7162.HistogramAnalysis, "dwi": codes.cid7162.MultispectralProcessing}


def _algorithm(
    source: str, software_version: str, engine: EngineInfo | None
) -> hd.AlgorithmIdentificationSequence:
    """Algorithm identification: the engine's name, version, family and scalar parameters."""
    if engine is None:
        return hd.AlgorithmIdentificationSequence(
            name=f"leukotrack {source} lesion segmentation",
            version=software_version,
            family=_FAMILIES[source],
        )
    family = getattr(codes.cid7162, engine.dicom_family, _FAMILIES[source])
    parameters = {
        key: str(value)[:64]
        for key, value in sorted(engine.parameters.items())
        if isinstance(value, str | int | float | bool)
    }
    parameters.update(
        {f"sha256:{name}"[:64]: digest for name, digest in engine.model_sha256.items()}
    )
    return hd.AlgorithmIdentificationSequence(
        name=f"leukotrack {engine.name}"[:64],
        version=f"{engine.version} (leukotrack {software_version})"[:64],
        family=family,
        source="leukotrack",
        parameters=parameters or None,
    )


#: Type 2 patient and study attributes highdicom copies from the source into the segmentation;
#: exports from PACS often leave some out.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class SegReferenceError(GeometryError):
    """A segmentation's frames do not lie on the planes of the source series it should reference."""


@dataclass(frozen=True)
class LesionSegment:
    """One segment: a tracked lesion (``tracking_id`` set) or the untracked remainder of a mask.

    Attributes
    ----------
    label : str
        Segment label shown by viewers (``F003``, ``D001``, ``F-untracked``).
    source : {"flair", "dwi"}
        The sequence the lesion was segmented on.
    tracking_id : str or None
        The lesion id of ``lesions.tsv``; ``None`` for voxels no tracked lesion claims.
    tracking_uid : str or None
        A UID that names this lesion across sessions (see :func:`stable_uid`).
    """

    label: str
    source: Literal["flair", "dwi"]
    tracking_id: str | None = None
    tracking_uid: str | None = None

    @property
    def description(self) -> str:
        """Free-text description of the segment."""
        words = SOURCE_WORDS[self.source]
        if self.tracking_id is None:
            return f"{words}: voxels of the mask that no tracked lesion claims"
        return f"{words} {self.tracking_id}"


def stable_uid(*parts: str) -> str:
    """A ``2.25.`` UID from a name-based (SHA-1, version 5) UUID of ``parts`` (ISO/IEC 9834-8).

    The same parts always give the same UID, so a lesion keeps its Tracking UID in every session
    and a re-run on the same input and results reproduces its UIDs.

    >>> stable_uid("a", "b") == stable_uid("a", "b") != stable_uid("a", "c")
    True
    >>> stable_uid("a").startswith("2.25.") and len(stable_uid("a")) <= 64
    True
    """
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(31).join(parts)).int}"


def source_datasets(paths: Sequence[Path], *, b_value_s_mm2: float | None = None) -> list[Dataset]:
    """The headers of a series' images, for referencing from a segmentation.

    Parameters
    ----------
    paths : sequence of Path
        The series' files.
    b_value_s_mm2 : float, optional
        For a DWI series stored one file per frame: keep only the frames of this b-value (the volume
        the lesions were drawn on), so that each plane has one source image. A multi-frame file is
        kept whole.

    Raises
    ------
    ImagingError
        When no image (of that b-value) is found.
    """
    identity = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in map(Path, paths))
    return list(_source_headers(identity, b_value_s_mm2))


@lru_cache(maxsize=8)
def _source_headers(
    identity: tuple[tuple[str, int, int], ...], b_value_s_mm2: float | None
) -> tuple[Dataset, ...]:
    """:func:`source_datasets` of files identified by (path, size, modification time), kept for
    the next segmentation of the same series (a reader's corrections rewrite a session's SEG
    objects again and again; the headers are only read, never changed, after this)."""
    paths = [Path(path) for path, _, _ in identity]
    datasets = read_images(paths, headers_only=True)
    if b_value_s_mm2 is not None and len(datasets) > 1:

        def b_of(dataset: Dataset) -> float | None:
            frames = frames_from_dataset(dataset, with_pixels=False)
            return frames[0].b_value if frames else None

        datasets = [
            d for d in datasets if (b := b_of(d)) is not None and abs(b - b_value_s_mm2) < 1.0
        ]
    if not datasets:
        where = paths[0].parent if paths else "?"
        raise ImagingError(f"{where}: no source images to reference from the DICOM SEG")
    for dataset in datasets:
        _share_per_frame_geometry(dataset)
        for keyword in _TYPE2_COPIED:  # absent and empty mean the same for Type 2 attributes
            if keyword not in dataset:
                setattr(dataset, keyword, "")
    return tuple(datasets)


def _share_per_frame_geometry(dataset: Dataset) -> None:
    """Move plane orientation and pixel measures that every frame repeats into the shared groups.

    Siemens XA writes them per frame; highdicom reads them from the shared functional groups only.
    Identical per-frame values and one shared value mean the same; only this in-memory header
    changes.
    """
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return
    if "SharedFunctionalGroupsSequence" not in dataset:
        dataset.SharedFunctionalGroupsSequence = [Dataset()]
    shared = dataset.SharedFunctionalGroupsSequence[0]
    for group in ("PlaneOrientationSequence", "PixelMeasuresSequence"):
        if group in shared or any(group not in frame for frame in per_frame):
            continue
        values = {repr(frame[group].value[0]) for frame in per_frame}
        if len(values) == 1:
            shared[group] = per_frame[0][group]
            for frame in per_frame:
                del frame[group]


def _volume(labels: MRImage, frame_of_reference_uid: str) -> hd.Volume:
    """The label map as a highdicom Volume with one frame per slice (axes slice, row, column).

    The loader stacks DICOM planes as (column, row, slice), so the axes are reversed here.
    """
    data: NDArray[np.integer] = np.asarray(labels.data)
    dtype = np.uint8 if int(data.max(initial=0)) <= np.iinfo(np.uint8).max else np.uint16
    volume = hd.Volume(
        array=data.astype(dtype),
        affine=labels.affine,
        coordinate_system="PATIENT",
        frame_of_reference_uid=frame_of_reference_uid,
        from_reference_convention="RAS",
    )
    return volume.permute_spatial_axes((2, 1, 0))


def lesion_segmentation(
    labels: MRImage,
    segments: Sequence[LesionSegment],
    sources: Sequence[Dataset],
    *,
    further_sources: Sequence[Dataset] = (),
    series_number: int,
    series_description: str,
    software_version: str,
    uid_parts: Sequence[str],
    engine: EngineInfo | None = None,
) -> hd.seg.Segmentation:
    """A binary DICOM Segmentation of ``labels`` referencing ``sources``.

    Parameters
    ----------
    labels : MRImage
        Integer label map, shape (columns, rows, slices) of the source series' grid: value ``n``
        (1-based) is ``segments[n - 1]``, 0 is background.
    segments : sequence of LesionSegment
        One per label value; at least one.
    sources : sequence of Dataset
        The source series' images (headers suffice), one per plane, or one multi-frame image.
    further_sources : sequence of Dataset, optional
        Other images of the same study the segmentation was derived from (e.g. the ADC map).
    series_number : int
        SeriesNumber of the segmentation.
    series_description : str
        SeriesDescription of the segmentation.
    software_version : str
        leukotrack's version (algorithm identification and SoftwareVersions).
    uid_parts : sequence of str
        Strings from which the series and instance UIDs are derived (see :func:`stable_uid`): the
        same inputs and results give the same UIDs.
    engine : EngineInfo, optional
        The engine that made the lesions: its name, version, CID 7162 family and parameters go
        into the algorithm identification (default: leukotrack's own, by source).

    Raises
    ------
    ValueError
        When the label values and the segments do not match.
    SegReferenceError
        When a frame lies on no plane of the source series.
    """
    data = np.asarray(labels.data)
    if not np.issubdtype(data.dtype, np.integer) and data.dtype != np.bool_:
        raise ValueError(f"a label map needs integer values, got {data.dtype}")
    highest = int(data.max(initial=0))
    if not segments or highest > len(segments):
        raise ValueError(f"labels go up to {highest} but {len(segments)} segments are described")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=segment.label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_algorithm(segment.source, software_version, engine),
            anatomic_regions=[codes.SCT.CerebralWhiteMatterStructure],
            tracking_id=segment.tracking_id,
            tracking_uid=segment.tracking_uid,
        )
        for number, segment in enumerate(segments, start=1)
    ]
    for description, segment in zip(descriptions, segments, strict=True):
        description.SegmentDescription = segment.description
    frame_of_reference = str(sources[0].FrameOfReferenceUID)
    segmentation = hd.seg.Segmentation(
        source_images=list(sources),
        further_source_images=list(further_sources) or None,
        pixel_array=_volume(labels, frame_of_reference),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=stable_uid("series", *uid_parts),
        series_number=series_number,
        sop_instance_uid=stable_uid("instance", *uid_parts),
        instance_number=1,
        manufacturer="leukotrack project",
        manufacturer_model_name="leukotrack",
        software_versions=software_version,
        device_serial_number="none",
        content_label="LESIONS",
        content_description="White-matter lesions, research use only",
        series_description=series_description,
    )
    unreferenced = sum(
        1
        for frame in segmentation.PerFrameFunctionalGroupsSequence
        if not frame.get("DerivationImageSequence")
    )
    if unreferenced:
        series = sources[0].get("SeriesDescription", sources[0].SeriesInstanceUID)
        raise SegReferenceError(
            f"{unreferenced} of {segmentation.NumberOfFrames} segmentation frames lie on no plane "
            f"of the source series '{series}': the mask is not on that series' grid"
        )
    return segmentation
