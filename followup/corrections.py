"""A reader's lesion corrections: erase a false lesion, paint or grow a missed one, reject a session.

Corrections are edits, never overwrites. Each edit names a session, a source (``flair``, ``dwi``), an
action, a point in baseline space (RAS+, mm) where the reader pointed, who made it, when and why. The
results store keeps them (:class:`followup.store.models.LesionEdit`), and :func:`rederive` turns a
case's automatic outputs plus its active edits into corrected outputs:

1. the first time, the automatic tables, masks, label maps and SEG objects are copied into
   ``sub-<case>/automatic/``, which later re-derivations start from and which is never changed;
2. every active edit, in order, is applied to the automatic lesion mask of its session on that
   session's own grid (:mod:`imaging.edit`); the edit's before/after volume is recorded;
3. each edited session is measured again through the same functions as the analysis
   (:func:`followup.analyze.source_measures`, :func:`followup.analyze.dwi_measures`), and each edited
   source is tracked again over all sessions (:func:`imaging.track.track_lesions`);
4. sessions.tsv (columns ``corrected``, ``rejected``), lesions.tsv (column ``corrected``), timeline.tsv,
   the masks, label maps, change maps and DICOM SEG objects (series description "corrected") are
   written again, with ``corrections.tsv`` (every edit, undone ones included) as the audit trail; all in
   one atomic replacement of the case folder.

With no active edit left (every edit undone), the automatic files are put back as they were. A batch
re-run re-analyses a case and then re-derives it with the store's edits, so corrections survive it.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from followup.analyze import (
    CONTEXT_NAME,
    dwi_measures,
    save_mask,
    session_timeline_row,
    software_version,
    source_measures,
    write_session_labels,
)
from followup.dicom_seg import SegInputs, write_session_segs
from followup.errors import CorrectionError
from followup.intervals import SESSION_CHANGES
from followup.results import finite
from followup.tsv import write_tsv
from imaging.edit import erase_lesion, grow_region, mask_onto, paint_sphere
from imaging.engines import EngineInfo
from imaging.errors import EditError
from imaging.image import MRImage
from imaging.template import template_map
from imaging.track import TrackedSession, TrackingParams, track_lesions
from imaging.units import mm3_to_ml
from safeio import MANIFEST_NAME, atomic_folder, read_manifest

if TYPE_CHECKING:
    from followup.store import Store

__all__ = [
    "AUTOMATIC_FOLDER",
    "CORRECTIONS_NAME",
    "CORRECTION_COLUMNS",
    "EDIT_ACTIONS",
    "LesionEdit",
    "Rederived",
    "apply_edit",
    "lesion_at",
    "lesion_point",
    "read_corrections",
    "reapply",
    "rederive",
    "stored_edits",
    "undo_last",
]

#: The actions a reader can take. ``reject`` takes the source of the session out of measurement.
EDIT_ACTIONS = ("erase", "paint", "grow", "reject")
#: The folder, inside ``sub-<case>``, holding the automatic result once a case is corrected.
AUTOMATIC_FOLDER = "automatic"
#: The audit trail written beside the corrected tables.
CORRECTIONS_NAME = "corrections.tsv"
CORRECTION_COLUMNS = [
    "edit_id",
    "at_utc",
    "author",
    "session_id",
    "source",
    "action",
    "lesion_id",
    "x_mm",
    "y_mm",
    "z_mm",
    "radius_mm",
    "reason",
    "volume_before_ml",
    "volume_after_ml",
    "status",
    "undone_utc",
    "undone_by",
]
_SOURCES = ("flair", "dwi")
_TABLES = ("sessions.tsv", "lesions.tsv", "timeline.tsv", "provenance.json")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class LesionEdit:
    """One correction by a reader.

    Attributes
    ----------
    session_id, source : str
        The session (``ses-<label>``) and lesion source (``flair``, ``dwi``) edited.
    action : {"erase", "paint", "grow", "reject"}
        Erase the lesion at the point; paint a sphere of ``radius_mm`` there; grow the bright region
        around the point within ``radius_mm``; reject the session's source from measurement.
    author, reason : str
        Who made the edit and why (both required).
    point_mm : tuple of float, optional
        Baseline-space point (RAS+, mm); required except for ``reject``.
    radius_mm : float, optional
        Sphere radius (``paint``) or largest extent (``grow``), mm.
    lesion_id : str
        The lesion identifier the reader saw at the point (for the audit; the point decides).
    """

    session_id: str
    source: str
    action: str
    author: str
    reason: str
    point_mm: tuple[float, float, float] | None = None
    radius_mm: float | None = None
    lesion_id: str = ""
    at_utc: datetime = field(default_factory=_now)
    edit_id: int | None = None
    undone_utc: datetime | None = None
    undone_by: str = ""
    volume_before_ml: float | None = None
    volume_after_ml: float | None = None
    #: Why an edit stored earlier no longer applies to a re-analysed case (empty when it does).
    not_applied: str = ""

    @property
    def active(self) -> bool:
        """Not undone."""
        return self.undone_utc is None

    def check(self) -> LesionEdit:
        """The edit itself when complete.

        Raises
        ------
        CorrectionError
            Naming what is missing or wrong.
        """
        problems = []
        if self.action not in EDIT_ACTIONS:
            problems.append(f"action {self.action!r} is not one of {', '.join(EDIT_ACTIONS)}")
        if self.source not in _SOURCES:
            problems.append(f"source {self.source!r} is not flair or dwi")
        if not self.author.strip():
            problems.append("say who makes the edit (author)")
        if not self.reason.strip():
            problems.append("say why (reason): the audit trail keeps it")
        if self.action != "reject":
            point = self.point_mm
            if point is None or len(point) != 3 or not all(math.isfinite(v) for v in point):
                problems.append(f"{self.action} needs a point (x, y, z mm in baseline space)")
        if self.action in ("paint", "grow"):
            radius = self.radius_mm
            if radius is None or not math.isfinite(radius) or not 0 < radius <= 50:
                problems.append(f"{self.action} needs a radius between 0 and 50 mm")
        if problems:
            raise CorrectionError(f"{self.session_id} {self.source}: " + "; ".join(problems))
        return self

    def row(self) -> dict[str, Any]:
        """The edit as a corrections.tsv row."""
        x, y, z = self.point_mm if self.point_mm is not None else (None, None, None)
        return {
            "edit_id": self.edit_id,
            "at_utc": self.at_utc.isoformat(timespec="seconds"),
            "author": self.author,
            "session_id": self.session_id,
            "source": self.source,
            "action": self.action,
            "lesion_id": self.lesion_id,
            "x_mm": x,
            "y_mm": y,
            "z_mm": z,
            "radius_mm": self.radius_mm,
            "reason": self.reason,
            "volume_before_ml": self.volume_before_ml,
            "volume_after_ml": self.volume_after_ml,
            "status": (
                "undone"
                if not self.active
                else f"not applied: {self.not_applied}"
                if self.not_applied
                else "active"
            ),
            "undone_utc": self.undone_utc.isoformat(timespec="seconds") if self.undone_utc else "",
            "undone_by": self.undone_by,
        }


@dataclass
class Rederived:
    """What :func:`rederive` did: the edits with their volumes, and how long it took."""

    edits: list[LesionEdit]
    seconds: float
    changed: list[tuple[str, str]] = field(default_factory=list)


def read_corrections(folder: Path) -> list[dict[str, str]]:
    """The audit trail of a case folder (corrections.tsv), empty when never corrected."""
    path = Path(folder) / CORRECTIONS_NAME
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ----------------------------------------------------------------------------------- files
def _read_tsv(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = list(reader)
        return rows, list(reader.fieldnames or [])


def _is_automatic(name: str) -> bool:
    """Files a correction changes (and the automatic folder keeps)."""
    return (
        name in _TABLES
        or name.endswith("_seg.dcm")
        or "lesion_mask" in name
        or "lesions_dseg" in name
        or "change_mask" in name
    )


def _ours(folder: Path) -> list[str]:
    """The files the analysis wrote (the manifest), relative, without the automatic copy."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise CorrectionError(
            f"{folder} has no manifest of the files leukotrack wrote; re-analyse the case with "
            "this version before correcting it"
        )
    return sorted(n for n in manifest if not n.startswith(f"{AUTOMATIC_FOLDER}/"))


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _context(folder: Path) -> dict[str, Any]:
    try:
        context = json.loads((folder / CONTEXT_NAME).read_text())
    except (OSError, ValueError) as error:
        raise CorrectionError(
            f"{folder} has no readable {CONTEXT_NAME} (written from output layout 5 on); "
            "re-analyse the case with this version before correcting it"
        ) from error
    return dict(context)


def _read_image(path: Path) -> MRImage:
    """An output NIfTI of the analysis (a mask, a label map, an image) as written."""
    return MRImage.from_nifti(cast(nib.Nifti1Image, nib.load(path)))


def _load_mask(path: Path) -> MRImage:
    image = _read_image(path)
    return image.with_data((np.asarray(image.data) > 0).astype(np.uint8))


def _matrix(values: Any) -> NDArray[np.float64]:
    return np.asarray(values, np.float64)


# ------------------------------------------------------------------------------ applying
def _apply(
    edit: LesionEdit, mask: MRImage, source: dict[str, Any], folder: Path
) -> tuple[MRImage, LesionEdit]:
    """One edit on a session's mask (its own grid); the edit gets its before/after volumes.
    ``folder`` holds the images an edit reads (the case folder)."""
    voxel_ml = mm3_to_ml(mask.voxel_volume_mm3)
    before = float(np.count_nonzero(np.asarray(mask.data))) * voxel_ml
    to_baseline = _matrix(source["to_baseline"])
    if edit.action == "reject":
        return mask, replace(edit, volume_before_ml=round(before, 4), volume_after_ml=None)
    assert edit.point_mm is not None
    here = (np.linalg.inv(to_baseline) @ np.append(np.asarray(edit.point_mm, float), 1.0))[:3]
    try:
        if edit.action == "erase":
            mask, _ = erase_lesion(mask, here)
        elif edit.action == "paint":
            mask, _ = paint_sphere(mask, here, float(edit.radius_mm or 0))
        else:  # grow, on the baseline-space image the reader saw, carried to the session's grid
            image = _read_image(folder / source["image"])
            region = grow_region(image, edit.point_mm, float(edit.radius_mm or 0))
            on_grid = mask_onto(region, mask, to_baseline)
            grown = np.asarray(on_grid.data) > 0
            if not grown.any():
                raise EditError("the grown region is smaller than one voxel of the session's grid")
            mask = mask.with_data(((np.asarray(mask.data) > 0) | grown).astype(np.uint8))
    except EditError as error:
        raise CorrectionError(
            f"{edit.session_id} {edit.source} {edit.action}: {error}; nothing was changed"
        ) from error
    after = float(np.count_nonzero(np.asarray(mask.data))) * voxel_ml
    return mask, replace(edit, volume_before_ml=round(before, 4), volume_after_ml=round(after, 4))


def _clear(row: dict[str, Any], source: str) -> None:
    """Empty a session row's measures of a rejected source (never a made-up 0)."""
    for name in list(row):
        if name.startswith(f"{source}_lesion_") or (
            source == "dwi" and (name in ("radc", "nawm_adc_mean_um2s") or "lesion_adc" in name)
        ):
            row[name] = ""
        if source == "dwi" and name.startswith("flair_lesion_") and "adc" in name:
            row[name] = ""
        if source == "dwi" and name == "flair_lesion_radc":
            row[name] = ""


#: The measures of sessions.tsv that a source's mask changes.
_MEASURES_OF = {
    "flair": ("flair_lesion_volume_ml", "flair_lesion_radc"),
    "dwi": ("dwi_lesion_volume_ml", "radc", "flair_lesion_radc"),
}


def _unmeasured_intervals(rows: list[dict[str, Any]], edited: set[tuple[str, str]]) -> None:
    """A reader's mask has no measured uncertainty: empty the intervals of the edited sessions'
    measures, and give their changes (and those of the next session measuring the same thing) as
    plain differences without interval or noise label."""
    for measure in {m for _, source in edited for m in _MEASURES_OF[source]}:
        change, label = SESSION_CHANGES[measure]
        before: float | None = None
        touched = False
        for row in rows:
            hit = any(
                (row["session_id"], k) in edited for k in _SOURCES if measure in _MEASURES_OF[k]
            )
            if hit:
                row[f"{measure}_ci_low"] = row[f"{measure}_ci_high"] = ""
                row[change] = row[f"{change}_ci_low"] = row[f"{change}_ci_high"] = ""
                row[label] = ""
            value = finite(row.get(measure))
            if value is None:
                touched = touched or hit
                continue
            if (hit or touched) and before is not None:
                row[change] = round(value - before, 4)
                row[f"{change}_ci_low"] = row[f"{change}_ci_high"] = ""
                row[label] = ""
            touched, before = hit, value


def _measure(
    row: dict[str, Any],
    entry: dict[str, Any],
    masks: dict[str, MRImage | None],
    folder: Path,
) -> None:
    """Measure a session again from its (corrected) masks, as the analysis measured it
    (``folder``: the case folder, holding the session's ADC)."""
    for source in _SOURCES:
        mask = masks.get(source)
        if mask is not None and source in entry:
            row.update(
                source_measures(mask, _matrix(entry[source]["to_mni"]), prefix=f"{source}_lesion")
            )
    dwi = entry.get("dwi")
    if dwi is not None and dwi.get("adc") and masks.get("dwi") is not None:
        adc = _read_image(folder / dwi["adc"])
        nawm = dwi.get("nawm_adc_mean_um2s")
        measures = dwi_measures(
            adc,
            masks["dwi"],  # type: ignore[arg-type]
            float(nawm) if nawm is not None else math.nan,
            masks.get("flair"),
            _matrix(dwi["to_flair"]),
        )
        row.update(measures)


def _baseline_grid(context: dict[str, Any]) -> MRImage:
    grid = context["baseline_grid"]
    return MRImage(np.zeros(tuple(grid["shape"]), np.uint8), _matrix(grid["affine"]))


def _track(
    context: dict[str, Any],
    source: str,
    masks: dict[str, dict[str, MRImage | None]],
    order: list[str],
) -> list[TrackedSession]:
    """Track one source again over every session (as :func:`followup.analyze._track` does)."""
    baseline = _baseline_grid(context)
    to_mni = _matrix(context["baseline_grid"]["to_mni"])
    sequence: list[tuple[str, MRImage | None]] = []
    for session_id in order:
        mask = masks[session_id].get(source)
        entry = context["sessions"][session_id].get(source)
        if mask is None or entry is None:
            sequence.append((session_id, None))
            continue
        inverse = np.linalg.inv(_matrix(entry["to_baseline"]))
        sequence.append((session_id, mask_onto(mask, baseline, inverse, as_fraction=True)))
    return track_lesions(
        sequence,
        source=source,
        hemispheres=template_map(baseline, "hemispheres", to_mni),
        regions=template_map(baseline, "regions", to_mni),
        params=TrackingParams(),
    )


def _timeline(base: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """timeline.tsv with the session rows' volumes of the corrected measures."""
    timeline, _ = _read_tsv(base / "timeline.tsv")
    by_session = {row["session_id"]: row for row in rows}
    out = []
    for line in timeline:
        row = by_session.get(line["item"]) if line["kind"] == "session" else None
        if row is not None:
            numeric = {
                **row,
                "has_flair": row.get("has_flair") == "1",
                "has_dwi": row.get("has_dwi") == "1",
                "flair_lesion_volume_ml": finite(row.get("flair_lesion_volume_ml")),
                "dwi_lesion_volume_ml": finite(row.get("dwi_lesion_volume_ml")),
            }
            detail = session_timeline_row(numeric)["detail"]
            if row.get("corrected") or row.get("rejected"):
                detail += " (corrected by a reader)"
            line = {**line, "detail": detail}
        out.append(line)
    return out


# ---------------------------------------------------------------------------- rederiving
def rederive(folder: Path, edits: Sequence[LesionEdit], *, strict: bool = True) -> Rederived:
    """Re-derive a case folder from its automatic result and a reader's edits (module docstring).

    Parameters
    ----------
    folder : Path
        ``OUT/sub-<case>``, written by ``leukotrack analyze`` (output layout 5 or later).
    edits : sequence of LesionEdit
        Every edit of the case in the order made (undone ones are kept in the audit, not applied).
    strict : bool
        Raise when an edit cannot be applied. False (a batch re-run over a new automatic result)
        skips it instead, and the audit says why.

    Returns
    -------
    Rederived
        The edits with their before/after volumes (mL, the session's source on its own grid).

    Raises
    ------
    CorrectionError
        When an edit cannot be applied (no lesion at the point, say) or the folder lacks what
        re-measurement needs; the folder is unchanged then.
    """
    start = time.perf_counter()
    folder = Path(folder)
    context = _context(folder)
    automatic = folder / AUTOMATIC_FOLDER
    base = automatic if automatic.is_dir() else folder
    names = _ours(folder)
    order = [row["session_id"] for row in _read_tsv(base / "sessions.tsv")[0]]
    for edit in edits:
        edit.check()
        if edit.session_id not in context["sessions"]:
            raise CorrectionError(f"{edit.session_id}: no such session in {folder.name}")
        if edit.active and edit.source not in context["sessions"][edit.session_id]:
            raise CorrectionError(
                f"{edit.session_id} has no {edit.source.upper()} lesion measurement to correct"
            )
    masks: dict[str, dict[str, MRImage | None]] = {s: {} for s in order}
    for session_id in order:
        for source in _SOURCES:
            entry = context["sessions"].get(session_id, {}).get(source)
            if entry is not None:
                masks[session_id][source] = _load_mask(base / entry["mask"])
    applied: list[LesionEdit] = []
    rejected: set[tuple[str, str]] = set()
    edited: set[tuple[str, str]] = set()
    for edit in edits:
        if not edit.active:
            applied.append(edit)
            continue
        entry = context["sessions"][edit.session_id][edit.source]
        mask = masks[edit.session_id][edit.source]
        assert mask is not None
        try:
            mask, done = _apply(edit, mask, entry, folder)
        except CorrectionError as error:
            if strict:
                raise
            applied.append(replace(edit, not_applied=str(error)))
            continue
        masks[edit.session_id][edit.source] = mask
        applied.append(done)
        edited.add((edit.session_id, edit.source))
        if edit.action == "reject":
            rejected.add((edit.session_id, edit.source))
    with atomic_folder(folder, adopt_marker="provenance.json") as work:
        for name in names:
            _copy(folder / name, work / name)
        if base is automatic:
            for path in automatic.rglob("*"):
                if path.is_file() and path.name != MANIFEST_NAME:
                    _copy(path, work / path.relative_to(folder))
        else:
            for name in names:
                if _is_automatic(Path(name).name):
                    _copy(folder / name, work / AUTOMATIC_FOLDER / name)
        if not edited:  # everything undone: the automatic result as it was
            for name in names:
                if _is_automatic(Path(name).name):
                    (work / name).unlink(missing_ok=True)
            for path in (work / AUTOMATIC_FOLDER).rglob("*"):
                if path.is_file():
                    _copy(path, work / path.relative_to(work / AUTOMATIC_FOLDER))
            shutil.rmtree(work / AUTOMATIC_FOLDER)
        seg_notes = {}
        if edited:
            seg_notes = _write_corrected(
                work, folder.name, base, context, order, masks, edited, rejected
            )
        _keep_times(folder, work)
        write_tsv(work / CORRECTIONS_NAME, [e.row() for e in applied], CORRECTION_COLUMNS)
        provenance = json.loads((work / "provenance.json").read_text())
        provenance["corrections"] = {
            "file": CORRECTIONS_NAME,
            "active_edits": sum(e.active for e in applied),
            "undone_edits": sum(not e.active for e in applied),
            "automatic_result": AUTOMATIC_FOLDER if edited else None,
            "rederived_utc": _now().isoformat(timespec="seconds"),
        }
        if seg_notes:
            provenance["corrections"]["dicom_seg_notes"] = seg_notes
        (work / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return Rederived(applied, time.perf_counter() - start, sorted(edited))


def _keep_times(folder: Path, work: Path) -> None:
    """Give every rewritten file whose bytes did not change its old modification time, so that
    readers caching by time (the dashboard, the viewer's URLs) keep what they have."""
    for path in work.rglob("*"):
        old = folder / path.relative_to(work)
        if (
            path.is_file()
            and old.is_file()
            and old.stat().st_size == path.stat().st_size
            and old.stat().st_mtime_ns != path.stat().st_mtime_ns
            and old.read_bytes() == path.read_bytes()
        ):
            shutil.copystat(old, path)


def _write_corrected(
    work: Path,
    subject: str,
    base: Path,
    context: dict[str, Any],
    order: list[str],
    masks: dict[str, dict[str, MRImage | None]],
    edited: set[tuple[str, str]],
    rejected: set[tuple[str, str]],
) -> dict[str, dict[str, str]]:
    """Write every file an edit changes, into the new case folder ``work``; return the notes of
    the DICOM SEG objects not written, by session."""
    seg_notes: dict[str, dict[str, str]] = {}
    rows, columns = _read_tsv(base / "sessions.tsv")
    for extra in ("corrected", "rejected"):
        if extra not in columns:
            columns.append(extra)
    measured = {s: {k: v for k, v in m.items() if (s, k) not in rejected} for s, m in masks.items()}
    first = {
        source: min((order.index(s) for s, k in edited if k == source), default=None)
        for source in _SOURCES
    }
    for row in rows:
        session_id = row["session_id"]
        sources = sorted(k for s, k in edited if s == session_id)
        if sources:
            _measure(row, context["sessions"][session_id], measured[session_id], work)
            for source in sorted(k for s, k in rejected if s == session_id):
                _clear(row, source)
        row["corrected"] = ";".join(k for k in sources if (session_id, k) not in rejected)
        row["rejected"] = ";".join(k for k in sources if (session_id, k) in rejected)
    if any(c in columns for c in (f"{m}_ci_low" for m in SESSION_CHANGES)):
        _unmeasured_intervals(rows, set(edited))
    write_tsv(work / "sessions.tsv", rows, columns)
    write_tsv(work / "timeline.tsv", _timeline(base, rows), _read_tsv(base / "timeline.tsv")[1])
    lesions, lesion_columns = _read_tsv(base / "lesions.tsv")
    if "corrected" not in lesion_columns:
        lesion_columns.append("corrected")
    tracked: dict[str, dict[str, TrackedSession]] = {}
    days = {row["session_id"]: row["day"] for row in rows}
    out_rows = [r for r in lesions if first[r["source"]] is None]
    automatic = {(r["source"], r["session_id"], r["lesion_id"]): r for r in lesions}
    for source in _SOURCES:
        start = first[source]
        if start is None:
            continue
        sessions = _track(context, source, measured, order)
        tracked[source] = {t.session_id: t for t in sessions}
        case_id = rows[0]["case_id"] if rows else ""
        for t in sessions:
            for lesion in t.rows:
                later = order.index(t.session_id) >= start
                kept = automatic.get((source, t.session_id, lesion["lesion_id"]))
                if not later and kept is not None:  # before the first edit: the automatic row,
                    out_rows.append({**kept, "corrected": ""})  # with its measured intervals
                    continue
                out_rows.append(
                    {
                        "case_id": case_id,
                        "day": days.get(t.session_id, ""),
                        **lesion,
                        "corrected": "1" if later else "",
                    }
                )
    out_rows.sort(key=lambda r: (r["source"] != "flair", r["lesion_id"], finite(r["day"]) or 0))
    write_tsv(work / "lesions.tsv", out_rows, lesion_columns)
    for session_id in order:
        entry = context["sessions"][session_id]
        label = session_id.removeprefix("ses-")
        stem, folder = f"{subject}_ses-{label}", work / f"ses-{label}"
        for source in _SOURCES:
            mask = masks[session_id].get(source)
            if (session_id, source) in edited and mask is not None:
                save_mask(mask, work / entry[source]["mask"])
        touched = [s for s in tracked if order.index(session_id) >= (first[s] or 0)]
        if not touched:
            continue
        labels = {}
        for source in _SOURCES:
            if source in tracked:
                labels[source] = tracked[source].get(session_id)
            else:  # the other source keeps its automatic labels: read them back
                labels[source] = _automatic_labels(base, stem, label, source)
        # a later session whose labels and change map come out as they are needs no new files
        # (its DICOM SEG, the slowest to write, depends on its mask and labels only)
        current = {s: _automatic_labels(work, stem, label, s) for s in touched}
        moved = [
            s
            for s in touched
            if (session_id, s) in edited or not _same_labels(current[s], labels[s], maps=False)
        ]
        if not moved and all(_same_labels(current[s], labels[s], maps=True) for s in touched):
            continue
        for name in (
            f"{stem}_space-baseline_desc-lesions_dseg.nii.gz",
            f"{stem}_space-baseline_desc-lesions_dseg.tsv",
            *(f"{stem}_space-baseline_desc-{s}lesions_dseg.nii.gz" for s in touched),
            *(f"{stem}_space-baseline_desc-{s}change_mask.nii.gz" for s in touched),
        ):
            (folder / name).unlink(missing_ok=True)
        write_session_labels(folder, stem, labels.get("flair"), labels.get("dwi"))
        notes = _write_segs(
            folder,
            stem,
            entry,
            masks[session_id],
            labels,
            context,
            tuple(moved),
            tuple(s for s in moved if (session_id, s) not in rejected),
        )
        if notes:
            seg_notes[session_id] = notes
    return seg_notes


def _same_labels(written: TrackedSession | None, new: TrackedSession | None, *, maps: bool) -> bool:
    """Whether a session's new labels (and, with ``maps``, its change map) equal those written."""
    if written is None or new is None:
        return written is None and new is None
    pairs = [(written.labels, new.labels)]
    if maps:
        pairs.append((written.change_map, new.change_map))  # type: ignore[arg-type]
    for old, now in pairs:
        if old is None or now is None:
            if old is not now:
                return False
            continue
        if not np.array_equal(np.asarray(old.data), np.asarray(now.data)):
            return False
    return True


def _automatic_labels(base: Path, stem: str, label: str, source: str) -> TrackedSession | None:
    """A session's tracked labels of one source as written below ``base`` (the automatic result,
    or the case folder being re-derived); None when absent."""
    folder = base / f"ses-{label}"
    path = folder / f"{stem}_space-baseline_desc-{source}lesions_dseg.nii.gz"
    if not path.is_file():
        return None
    change = folder / f"{stem}_space-baseline_desc-{source}change_mask.nii.gz"
    return TrackedSession(
        session_id=f"ses-{label}",
        labels=_read_image(path),
        change_map=_read_image(change) if change.is_file() else None,
    )


def _write_segs(
    folder: Path,
    stem: str,
    entry: dict[str, Any],
    masks: dict[str, MRImage | None],
    labels: dict[str, TrackedSession | None],
    context: dict[str, Any],
    touched: tuple[str, ...],
    only: tuple[str, ...],
) -> dict[str, str]:
    """The session's DICOM SEG objects of the sources ``only`` again (DICOM input only), marked
    corrected, those of the other ``touched`` sources removed; the notes of objects not
    written. ``masks`` holds every source the session measured, rejected ones included (they name
    the objects as the analysis did)."""
    files = {k: tuple(Path(p) for p in v) for k, v in entry.get("source_files", {}).items()}
    if not files:
        return {}
    names = {"flair": "lesions", "dwi": "lesions" if "flair" not in masks else "dwilesions"}
    for source in touched:  # a rejected source keeps no SEG object
        (folder / f"{stem}_desc-{names[source]}_seg.dcm").unlink(missing_ok=True)
    inputs = SegInputs(
        {
            source: (mask, _matrix(entry[source]["to_baseline"]))
            for source, mask in masks.items()
            if mask is not None
        },
        files,
        entry.get("dwi_b_value_s_mm2"),
        corrected=True,
        only=only,
    )
    missing = [str(p) for paths in files.values() for p in paths if not p.is_file()]
    if missing:  # the input moved: no SEG rather than one of the automatic lesions
        return {
            f"{stem}_desc-*_seg.dcm": f"DICOM SEG not rewritten after the correction: the "
            f"session's DICOM files are no longer at {missing[0]} (re-analyse from the input)"
        }
    return write_session_segs(
        folder,
        stem,
        inputs,
        labels,
        lineage=str(context["seg_lineage"]),
        software_version=software_version(),
        engines={k: EngineInfo(**v) for k, v in context.get("engines", {}).items()},
    )


# ------------------------------------------------------------------------- with the store
def _from_row(row: Any) -> LesionEdit:
    """A stored edit (:class:`followup.store.models.StoredEdit`) as a :class:`LesionEdit`."""
    point = None if row.x_mm is None else (row.x_mm, row.y_mm, row.z_mm)
    return LesionEdit(
        session_id=row.session_id,
        source=row.source,
        action=row.action,
        author=row.author,
        reason=row.reason,
        point_mm=point,
        radius_mm=row.radius_mm,
        lesion_id=row.lesion_id or "",
        at_utc=row.at_utc,
        edit_id=row.id,
        undone_utc=row.undone_utc,
        undone_by=row.undone_by or "",
        volume_before_ml=row.volume_before_ml,
        volume_after_ml=row.volume_after_ml,
    )


def stored_edits(store: Store, case_id: str) -> list[LesionEdit]:
    """Every edit of a case in the store, oldest first."""
    return [_from_row(row) for row in store.edit_rows(case_id)]


def _ingest(store: Store, folder: Path) -> None:
    provenance = json.loads((folder / "provenance.json").read_text())
    store.ingest_case(folder, Path(provenance.get("case_dir", folder)), None)


def apply_edit(store: Store, folder: Path, edit: LesionEdit) -> Rederived:
    """Store a reader's edit, re-derive the case folder with it and re-ingest the case.

    The edit is kept only when it could be applied (the store's row is rolled back otherwise, and
    the folder stays as it was).

    Raises
    ------
    CorrectionError
        When the edit is incomplete or cannot be applied.
    """
    folder = Path(folder)
    case_id = folder.name.removeprefix("sub-")
    edit.check()
    earlier = stored_edits(store, case_id)
    with store.new_edit(case_id, edit) as row:
        result = rederive(folder, [*earlier, replace(edit, edit_id=row.id, at_utc=row.at_utc)])
        row.volume_before_ml = result.edits[-1].volume_before_ml
        row.volume_after_ml = result.edits[-1].volume_after_ml
    _ingest(store, folder)
    return result


def undo_last(store: Store, folder: Path, author: str) -> Rederived | None:
    """Undo the newest active edit of a case (kept in the audit, marked undone) and re-derive;
    None when the case has no active edit."""
    folder = Path(folder)
    case_id = folder.name.removeprefix("sub-")
    earlier = {e.edit_id: e for e in stored_edits(store, case_id)}
    with store.undoing(case_id, author or "unknown") as row:
        if row is None:
            return None
        earlier[row.id] = _from_row(row)
        result = rederive(folder, list(earlier.values()))
    _ingest(store, folder)
    return result


def reapply(store: Store, folder: Path) -> Rederived | None:
    """After a re-analysis, apply the case's stored edits to the new automatic result (None when
    the case has none). An edit that no longer applies (the lesion it erased is gone) is skipped
    and corrections.tsv says why."""
    folder = Path(folder)
    edits = stored_edits(store, folder.name.removeprefix("sub-"))
    if not edits:
        return None
    return rederive(folder, edits, strict=False)


# ------------------------------------------------------------------------- pointing at lesions
def _labels_path(folder: Path, session_id: str, source: str) -> Path:
    label = session_id.removeprefix("ses-")
    return (
        Path(folder)
        / f"ses-{label}"
        / f"{Path(folder).name}_ses-{label}_space-baseline_desc-{source}lesions_dseg.nii.gz"
    )


def lesion_point(
    folder: Path, session_id: str, source: str, lesion_id: str
) -> tuple[float, float, float] | None:
    """A point inside a tracked lesion (baseline world, RAS+ mm): its voxel nearest its centroid,
    so that erasing it by name hits it even when it is not convex. None when it has no voxel
    that session."""
    path = _labels_path(folder, session_id, source)
    if not path.is_file() or not lesion_id[1:].isdigit():
        return None
    labels = _read_image(path)
    where = np.argwhere(np.asarray(labels.data) == int(lesion_id[1:]))
    if not len(where):
        return None
    centre = where[np.argmin(np.linalg.norm(where - where.mean(axis=0), axis=1))]
    x, y, z = (round(float(v), 2) for v in labels.voxel_to_world_mm(centre))
    return (x, y, z)


def lesion_at(
    folder: Path, session_id: str, source: str, point_mm: Sequence[float], *, within_mm: float = 3.0
) -> str | None:
    """The tracked lesion (``F001``, ``D003``) at, or within ``within_mm`` of, a baseline-space
    point in a session; None when there is none."""
    path = _labels_path(folder, session_id, source)
    if not path.is_file():
        return None
    labels = _read_image(path)
    data = np.asarray(labels.data)
    if not data.any():
        return None
    where = np.argwhere(data > 0)
    distance = np.linalg.norm(labels.voxel_to_world_mm(where) - np.asarray(point_mm), axis=1)
    nearest = int(np.argmin(distance))
    if distance[nearest] > within_mm:
        return None
    return f"{'F' if source == 'flair' else 'D'}{int(data[tuple(where[nearest])]):03d}"
