"""``leukotrack analyze``: one case folder in, the BIDS-derivatives outputs of DESIGN.md §3.3 out.

Everything of a case is first written into a hidden folder beside the target and renamed into place
only when complete, so a failure leaves no partial output (and an earlier result stays as it was).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from imaging.case import CaseIndex, scan_case
from imaging.image import MRImage
from imaging.pipeline import CaseImages, PipelineParams, SessionImages, process_case
from imaging.quantify import adc_in_mask, as_cell, lesion_count, lesion_volumes
from imaging.regions import Region
from imaging.register import resample
from imaging.track import TrackedSession, TrackingParams, track_lesions
from imaging.units import mm3_to_ml

__all__ = [
    "LESION_COLUMNS",
    "SESSION_COLUMNS",
    "AnalysisResult",
    "analyze_case",
    "input_hashes",
    "software_version",
]

Progress = Callable[[str], None]

_PARTS = ("left", "right", *(r.column for r in Region))
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
]
_DSEG_DWI_OFFSET = 1000


def software_version() -> str:
    """The installed leukotrack version."""
    try:
        return version("leukotrack")
    except PackageNotFoundError:
        return "unknown"


def input_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (relative path -> hex digest), in sorted order."""
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
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


@contextlib.contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed to it when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield work
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
        work.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _write_tsv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([as_cell(row.get(column)) for column in columns])


def _save_mask(image: MRImage, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(image.data)
    nifti = nib.Nifti1Image(
        data.astype(np.uint16 if data.max(initial=0) > 255 else np.uint8), image.affine
    )
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_sform(image.affine, code=1)
    nifti.set_qform(image.affine, code=1)
    nib.save(nifti, path)


def _to_baseline(mask: MRImage, baseline: MRImage, baseline_to_mask_world: np.ndarray) -> MRImage:
    warped = resample(
        mask.with_data(np.asarray(mask.data, np.float32)), baseline, baseline_to_mask_world
    )
    return warped.with_data((np.asarray(warped.data) >= 0.5).astype(np.uint8), sequence="OTHER")


def _session_row(case: CaseImages, images: SessionImages, index_date: date) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case_id": case.case_id,
        "session_id": images.label,
        "study_date": images.study_date.isoformat() if images.study_date else "",
        "day": (images.study_date - index_date).days if images.study_date else "",
        "has_flair": int(images.flair is not None),
        "has_dwi": int(images.b1000 is not None),
        "adc_source": images.adc_source,
    }
    fit = case.template
    flair, dwi = images.flair_result, images.dwi_result
    if flair is not None and images.flair is not None:
        to_mni = case.to_mni(images)
        row.update(
            lesion_volumes(
                flair.lesion_mask,
                fit.prior(images.flair, "hemispheres", to_mni=to_mni),
                fit.prior(images.flair, "regions", to_mni=to_mni),
                prefix="flair_lesion",
            )
        )
        row["flair_lesion_count"] = lesion_count(flair.lesion_mask)
        if images.flair_brain is not None:
            brain = np.count_nonzero(np.asarray(images.flair_brain.data))
            row["brain_volume_ml"] = mm3_to_ml(brain * images.flair.voxel_volume_mm3)
    if dwi is not None and images.b1000 is not None and images.adc is not None:
        to_mni = case.to_mni(images, dwi=images.flair is not None)
        row.update(
            lesion_volumes(
                dwi.lesion_mask,
                fit.prior(images.b1000, "hemispheres", to_mni=to_mni),
                fit.prior(images.b1000, "regions", to_mni=to_mni),
                prefix="dwi_lesion",
            )
        )
        row["dwi_lesion_count"] = lesion_count(dwi.lesion_mask)
        nawm = adc_in_mask(images.adc, dwi.nawm_mask)
        lesion_adc = adc_in_mask(images.adc, dwi.lesion_mask)
        row["nawm_adc_mean_um2s"] = nawm
        row["dwi_lesion_adc_mean_um2s"] = lesion_adc
        row["radc"] = lesion_adc / nawm if nawm > 0 else math.nan
        if flair is not None and images.flair is not None:
            on_dwi = resample(
                flair.lesion_mask.with_data(np.asarray(flair.lesion_mask.data, np.float32)),
                images.b1000,
                images.dwi_to_reference,
            )
            flair_on_dwi = on_dwi.with_data((np.asarray(on_dwi.data) >= 0.5).astype(np.uint8))
            flair_adc = adc_in_mask(images.adc, flair_on_dwi)
            row["flair_lesion_adc_mean_um2s"] = flair_adc
            row["flair_lesion_radc"] = flair_adc / nawm if nawm > 0 else math.nan
    registration = images.registrations.get("reference_to_baseline", {})
    row["registration_to_baseline_mask_dice"] = registration.get("mask_dice", "")
    return row


def _track(case: CaseImages) -> dict[str, list[TrackedSession]]:
    baseline = case.baseline.reference
    fit = case.template
    hemispheres = fit.prior(baseline, "hemispheres")
    regions = fit.prior(baseline, "regions")
    tracked = {}
    for source in ("flair", "dwi"):
        masks: list[tuple[str, MRImage | None]] = []
        for images in case.sessions:
            if source == "flair" and images.flair_result is not None:
                inverse = np.linalg.inv(images.to_baseline)
                masks.append(
                    (images.label, _to_baseline(images.flair_result.lesion_mask, baseline, inverse))
                )
            elif source == "dwi" and images.dwi_result is not None:
                inverse = np.linalg.inv(images.dwi_to_baseline)
                masks.append(
                    (images.label, _to_baseline(images.dwi_result.lesion_mask, baseline, inverse))
                )
            else:
                masks.append((images.label, None))
        tracked[source] = track_lesions(
            masks, source=source, hemispheres=hemispheres, regions=regions, params=TrackingParams()
        )
    return tracked


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
    handle, name = tempfile.mkstemp(prefix=".dataset_description.", dir=out)
    with os.fdopen(handle, "w") as stream:
        json.dump(description, stream, indent=2)
        stream.write("\n")
    Path(name).replace(path)


def analyze_case(
    case_dir: Path,
    out_dir: Path,
    *,
    params: PipelineParams | None = None,
    progress: Progress | None = None,
    index: CaseIndex | None = None,
    processed: CaseImages | None = None,
) -> AnalysisResult:
    """Analyse one case folder and write ``out_dir/sub-<case>`` (atomically).

    ``index`` (from :func:`imaging.case.scan_case`) and ``processed`` (from
    :func:`imaging.pipeline.process_case`) skip those steps when the caller already has them.

    Raises
    ------
    ImagingError
        On unreadable or incomplete input; nothing is written then.
    """
    params = params or PipelineParams()
    say = progress or (lambda _message: None)
    case_dir = Path(case_dir)
    index = index or scan_case(case_dir)
    started = datetime.now(UTC)
    case = processed or process_case(index, params=params, progress=say)
    say("measuring and tracking")
    dated = [s.study_date for s in case.sessions if s.study_date is not None]
    index_date = min(dated) if dated else date(1970, 1, 1)
    session_rows = [_session_row(case, images, index_date) for images in case.sessions]
    days = {row["session_id"]: row["day"] for row in session_rows}
    tracked = _track(case)
    lesion_rows = [
        {"case_id": case.case_id, "day": days[t.session_id], **row}
        for source in ("flair", "dwi")
        for t in tracked[source]
        for row in t.rows
    ]
    lesion_rows.sort(key=lambda r: (r["source"] != "flair", r["lesion_id"], float(r["day"] or 0)))
    subject = f"sub-{case.case_id}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say("writing")
    with _atomic_folder(out_dir / subject) as work:
        _write_tsv(work / "sessions.tsv", session_rows, SESSION_COLUMNS)
        _write_tsv(work / "lesions.tsv", lesion_rows, LESION_COLUMNS)
        labels = {source: {t.session_id: t for t in tracked[source]} for source in ("flair", "dwi")}
        for images in case.sessions:
            stem = f"{subject}_ses-{images.label.removeprefix('ses-')}"
            folder = work / f"ses-{images.label.removeprefix('ses-')}"
            if images.flair_result is not None:
                _save_mask(
                    images.flair_result.lesion_mask,
                    folder / "anat" / f"{stem}_space-orig_desc-flairlesion_mask.nii.gz",
                )
            if images.dwi_result is not None:
                _save_mask(
                    images.dwi_result.lesion_mask,
                    folder / "dwi" / f"{stem}_space-orig_desc-dwilesion_mask.nii.gz",
                )
            flair_t = labels["flair"].get(images.label)
            dwi_t = labels["dwi"].get(images.label)
            if flair_t is None and dwi_t is None:
                continue
            template = (flair_t or dwi_t).labels  # type: ignore[union-attr]
            dseg = np.zeros(template.spatial_shape, dtype=np.uint16)
            if dwi_t is not None:
                dwi_labels = np.asarray(dwi_t.labels.data)
                dseg[dwi_labels > 0] = dwi_labels[dwi_labels > 0] + _DSEG_DWI_OFFSET
            if flair_t is not None:  # FLAIR labels take precedence where both overlap
                flair_labels = np.asarray(flair_t.labels.data)
                dseg[flair_labels > 0] = flair_labels[flair_labels > 0]
            _save_mask(
                template.with_data(dseg), folder / f"{stem}_space-baseline_desc-lesions_dseg.nii.gz"
            )
            legend = sorted({int(v) for v in np.unique(dseg) if v > 0})
            with (folder / f"{stem}_space-baseline_desc-lesions_dseg.tsv").open("w") as handle:
                handle.write("index\tname\tsource\n")
                for value in legend:
                    source = "dwi" if value > _DSEG_DWI_OFFSET else "flair"
                    number = value - _DSEG_DWI_OFFSET if source == "dwi" else value
                    handle.write(
                        f"{value}\t{'D' if source == 'dwi' else 'F'}{number:03d}\t{source}\n"
                    )
            for source, t in (("flair", flair_t), ("dwi", dwi_t)):
                if t is not None and t.change_map is not None:
                    _save_mask(
                        t.change_map,
                        folder / f"{stem}_space-baseline_desc-{source}change_mask.nii.gz",
                    )
        provenance = {
            "software": {"name": "leukotrack", "version": software_version()},
            "python": platform.python_version(),
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "case_dir": str(case_dir.resolve()),
            "layout": index.layout,
            "index_date": index_date.isoformat(),
            "index_date_rule": "first MRI",
            "baseline_session": case.baseline.label,
            "parameters": {"pipeline": params.to_dict(), "tracking": TrackingParams().to_dict()},
            "sessions": {
                s.label: {
                    "sources": s.sources,
                    "adc_source": s.adc_source,
                    "registrations": s.registrations,
                    "to_baseline_ras_mm": np.round(s.to_baseline, 6).tolist(),
                    "dwi_to_reference_ras_mm": np.round(s.dwi_to_reference, 6).tolist(),
                    "notes": s.notes,
                }
                for s in case.sessions
            },
            "change_map_codes": {"persistent": 1, "appeared": 2, "disappeared": 3},
            "dseg_codes": (
                f"FLAIR lesion n -> n; DWI lesion n -> {_DSEG_DWI_OFFSET} + n (FLAIR wins where both)"
            ),
            "input_sha256": input_hashes(case_dir),
        }
        (work / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    _dataset_description(out_dir)
    return AnalysisResult(case.case_id, out_dir / subject, session_rows, lesion_rows)
