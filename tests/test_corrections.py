"""A reader's lesion corrections (issue 15): the edit operations on phantoms with anisotropic voxels,
and the corrected outputs of the analysed sample case (re-measured, re-tracked, marked corrected, the
automatic result kept, undo restoring it byte for byte, a failed edit leaving nothing behind, a batch
re-run keeping the corrections, the audit exportable)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage as ndi
from sqlalchemy import text
from typer.testing import CliRunner

from followup.cli import app
from followup.corrections import (
    AUTOMATIC_FOLDER,
    LesionEdit,
    apply_edit,
    read_corrections,
    stored_edits,
    undo_last,
)
from followup.errors import CorrectionError
from followup.store import Store
from imaging.edit import erase_lesion, grow_region, paint_sphere, sphere, world_to_voxel
from imaging.errors import EditError
from imaging.image import MRImage

CASE = "sub-indexcase"
_FULL = np.ones((3, 3, 3), bool)


# ---------------------------------------------------------------------------- phantoms
def _grid(shape=(23, 17, 9), spacing=(0.9, 1.1, 3.3)) -> MRImage:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 5.0, -7.0)
    return MRImage(np.zeros(shape, np.uint8), affine)


def test_erase_removes_exactly_the_lesion_at_the_point_on_an_anisotropic_grid():
    grid = _grid()
    data = np.zeros(grid.shape, np.uint8)
    data[2:6, 3:7, 1:4] = 1  # 48 voxels
    data[12:15, 10:12, 5:8] = 1  # 18 voxels, apart
    mask = grid.with_data(data)
    point = grid.voxel_to_world_mm([13, 10.5, 6])
    erased, removed = erase_lesion(mask, point)
    assert removed == 18
    assert np.asarray(erased.data).sum() == 48 and np.asarray(erased.data)[2:6, 3:7, 1:4].all()
    # a click 2.9 mm beside the first lesion (one slice is 3.3 mm) still finds it; 4 mm does not
    beside = grid.voxel_to_world_mm([1, 4, 2]) + np.array([-2.0, 0, 0])
    assert erase_lesion(mask, beside)[1] == 48
    with pytest.raises(EditError, match="no lesion within 3 mm"):
        erase_lesion(mask, grid.voxel_to_world_mm([2, 4, 2]) - np.array([5.0, 0, 0]))


def test_paint_counts_voxel_centres_within_the_radius_in_millimetres():
    grid = _grid()
    point = grid.voxel_to_world_mm([10, 8, 4]) + np.array([0.3, -0.2, 0.5])
    painted, added = paint_sphere(grid, point, 3.0)
    ijk = np.argwhere(np.ones(grid.spatial_shape, bool))
    distance = np.linalg.norm(grid.voxel_to_world_mm(ijk) - point, axis=1)
    assert added == int((distance <= 3.0).sum()) == int(np.asarray(painted.data).sum())
    # the slice axis (3.3 mm) holds two slices of a 3 mm sphere, the 0.9 mm axis six voxels
    extent = np.argwhere(np.asarray(painted.data))
    assert np.ptp(extent[:, 2]) + 1 == 2 and np.ptp(extent[:, 0]) + 1 == 6
    with pytest.raises(EditError, match="outside"):
        paint_sphere(grid, (500.0, 0.0, 0.0), 3.0)


def test_grow_takes_the_bright_region_connected_to_the_seed_within_the_radius():
    grid = _grid()
    data = np.full(grid.shape, 100.0, np.float32)
    data[4:9, 4:8, 2:5] = 260.0  # the lesion: 60 voxels
    data[9:11, 4:6, 2:3] = 240.0  # touching it: 4 more
    data[18:21, 12:15, 6:8] = 300.0  # bright, but not connected
    image = grid.with_data(data)
    seed = grid.voxel_to_world_mm([6, 6, 3])
    region = np.asarray(grow_region(image, seed, 20.0).data) > 0
    assert region.sum() == 64 and not region[18:21, 12:15, 6:8].any()
    sizes = []
    for radius in (5.0, 8.0):  # the radius bounds it
        bounded = np.asarray(grow_region(image, seed, radius).data) > 0
        inside = sphere(grid, seed, radius) & (data > 180)
        labels, _ = ndi.label(inside, structure=_FULL)
        assert bounded.sum() == int((labels == labels[6, 6, 3]).sum())
        sizes.append(int(bounded.sum()))
    assert sizes[0] < sizes[1] == 64
    with pytest.raises(EditError, match="radius that reaches beyond"):  # all lesion: no rim
        grow_region(image, seed, 1.5)
    with pytest.raises(EditError, match="not brighter"):
        grow_region(image, grid.voxel_to_world_mm([15, 2, 1]), 6.0)
    assert world_to_voxel(grid, seed) == pytest.approx([6.0, 6.0, 3.0])


# ------------------------------------------------------------------------ the sample case
def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file leukotrack's tables and masks (not provenance, manifest or audit)."""
    skip = {"provenance.json", ".leukotrack-manifest.json", "corrections.tsv"}
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip and not p.name.endswith("_seg.dcm")
    }


@pytest.fixture
def corrected_case(analyzed_samples: Path, tmp_path: Path) -> tuple[Store, Path]:
    """A copy of the analysed sample case with a store of its own."""
    out = tmp_path / "out"
    shutil.copytree(analyzed_samples / CASE, out / CASE)
    store = Store(out)
    store.ingest_case(out / CASE, Path("sample_scans/indexcase"), None)
    yield store, out / CASE
    store.close()


def _dwi_lesion_at(folder: Path, session: str, lesion_id: str) -> tuple[tuple[float, ...], str]:
    """A voxel of a tracked DWI lesion (baseline world, mm), and the session's native mask path."""
    label = session.removeprefix("ses-")
    labels = nib.load(
        folder / f"ses-{label}" / f"{CASE}_ses-{label}_space-baseline_desc-dwilesions_dseg.nii.gz"
    )
    where = np.argwhere(np.asarray(labels.dataobj) == int(lesion_id[1:]))
    centre = where[np.argmin(np.linalg.norm(where - where.mean(axis=0), axis=1))]
    point = labels.affine[:3, :3] @ centre + labels.affine[:3, 3]
    return tuple(
        float(v) for v in point
    ), f"ses-{label}/dwi/{CASE}_ses-{label}_space-orig_desc-dwilesion_mask.nii.gz"


def test_erasing_a_dwi_lesion_remeasures_retracks_and_marks_every_output(corrected_case):
    store, folder = corrected_case
    before = _digest(folder)
    sessions = {r["session_id"]: r for r in _tsv(folder / "sessions.tsv")}
    session = "ses-20230322"  # day 8: a lesion new that day
    new = [
        r
        for r in _tsv(folder / "lesions.tsv")
        if r["session_id"] == session and r["source"] == "dwi" and r["change"] == "new"
    ]
    assert new, "the sample case has a new DWI lesion at day 8"
    point, mask_path = _dwi_lesion_at(folder, session, new[0]["lesion_id"])
    # the expected answer, independently: the native component under the point
    native = nib.load(folder / mask_path)
    data = np.asarray(native.dataobj) > 0
    context = json.loads((folder / "measurement_context.json").read_text())
    to_native = np.linalg.inv(np.array(context["sessions"][session]["dwi"]["to_baseline"]))
    ijk = np.linalg.solve(native.affine, to_native @ [*point, 1.0])[:3]
    labels, _ = ndi.label(data, structure=_FULL)
    nearest = np.argwhere(labels > 0)[
        np.argmin(np.linalg.norm(np.argwhere(labels > 0) - ijk, axis=1))
    ]
    component = labels == labels[tuple(nearest)]
    voxel_ml = abs(np.linalg.det(native.affine[:3, :3])) / 1000
    expected_ml = round((data.sum() - component.sum()) * voxel_ml, 4)

    result = apply_edit(
        store,
        folder,
        LesionEdit(
            session,
            "dwi",
            "erase",
            "dr reader",
            "false DWI lesion (test)",
            point_mm=point,
            lesion_id=new[0]["lesion_id"],
        ),
    )
    row = {r["session_id"]: r for r in _tsv(folder / "sessions.tsv")}[session]
    assert float(row["dwi_lesion_volume_ml"]) == pytest.approx(expected_ml, abs=1e-4)
    assert int(row["dwi_lesion_count"]) == int(sessions[session]["dwi_lesion_count"]) - 1
    assert row["corrected"] == "dwi" and row["rejected"] == ""
    assert row["flair_lesion_volume_ml"] == sessions[session]["flair_lesion_volume_ml"]
    assert result.edits[-1].volume_after_ml == pytest.approx(expected_ml, abs=1e-4)
    # the native mask lost exactly that component; the automatic one is kept untouched
    assert (
        np.asarray(nib.load(folder / mask_path).dataobj) > 0
    ).sum() == data.sum() - component.sum()
    assert _digest(folder / AUTOMATIC_FOLDER) == {
        k: v for k, v in before.items() if k in _digest(folder / AUTOMATIC_FOLDER)
    }
    assert (folder / AUTOMATIC_FOLDER / "sessions.tsv").read_bytes() == (
        folder / AUTOMATIC_FOLDER / "sessions.tsv"
    ).read_bytes()
    # tracking: the erased lesion no longer exists that day; rows from that day on are corrected
    lesions = _tsv(folder / "lesions.tsv")
    day8 = [r for r in lesions if r["session_id"] == session and r["source"] == "dwi"]
    assert all(r["change"] != "new" for r in day8) and all(r["corrected"] == "1" for r in day8)
    assert all(r["corrected"] == "" for r in lesions if r["day"] in ("0", "3"))
    # timeline, SEG, store and cohort view say "corrected"
    timeline = [r for r in _tsv(folder / "timeline.tsv") if r["item"] == session]
    assert "corrected" in timeline[0]["detail"]
    label = session.removeprefix("ses-")
    seg = pydicom.dcmread(folder / f"ses-{label}" / f"{CASE}_ses-{label}_desc-dwilesions_seg.dcm")
    assert "corrected" in seg.SeriesDescription
    assert len(seg.SegmentSequence) == int(row["dwi_lesion_count"])
    with store.engine.connect() as connection:
        cohort = connection.execute(
            text("SELECT session_id, corrected FROM cohort WHERE corrected IS NOT NULL")
        ).all()
    assert [tuple(r) for r in cohort] == [(session, "dwi")]
    (edit,) = stored_edits(store, "indexcase")
    assert edit.author == "dr reader" and edit.volume_after_ml == pytest.approx(expected_ml)
    assert read_corrections(folder)[0]["status"] == "active"

    # undo: the automatic result again, byte for byte; the audit keeps the edit, marked undone
    assert undo_last(store, folder, "dr reader") is not None
    assert _digest(folder) == before
    assert not (folder / AUTOMATIC_FOLDER).exists()
    audit = read_corrections(folder)
    assert [a["status"] for a in audit] == ["undone"] and audit[0]["undone_by"] == "dr reader"
    assert stored_edits(store, "indexcase")[0].undone_utc is not None
    assert undo_last(store, folder, "dr reader") is None


def test_an_edit_that_cannot_apply_changes_nothing(corrected_case):
    store, folder = corrected_case
    before = _digest(folder)
    files = sorted(p.name for p in folder.rglob("*"))
    edit = LesionEdit(
        "ses-20230314", "dwi", "erase", "dr reader", "test", point_mm=(0.0, 60.0, 70.0)
    )
    with pytest.raises(CorrectionError, match="no lesion within"):
        apply_edit(store, folder, edit)
    with pytest.raises(CorrectionError, match="say why"):
        apply_edit(store, folder, LesionEdit("ses-20230314", "dwi", "reject", "dr reader", " "))
    assert _digest(folder) == before and sorted(p.name for p in folder.rglob("*")) == files
    assert stored_edits(store, "indexcase") == []


def test_rejecting_a_session_empties_its_measures_and_tracking_skips_it(corrected_case):
    store, folder = corrected_case
    session = "ses-20230317"
    apply_edit(
        store, folder, LesionEdit(session, "flair", "reject", "dr reader", "motion artefact")
    )
    row = {r["session_id"]: r for r in _tsv(folder / "sessions.tsv")}[session]
    assert row["rejected"] == "flair" and row["corrected"] == ""
    assert row["flair_lesion_volume_ml"] == "" and row["flair_lesion_count"] == ""
    assert row["dwi_lesion_volume_ml"] != ""  # the other source stays measured
    rows = [r for r in _tsv(folder / "lesions.tsv") if r["source"] == "flair"]
    assert not [r for r in rows if r["session_id"] == session]
    # day 8 is now compared with day 0, the last session that measured FLAIR
    assert {r["change"] for r in rows if r["day"] == "8"} <= {
        "new",
        "enlarging",
        "stable",
        "shrinking",
        "resolved",
        "merged",
        "split",
    }


def test_painted_lesion_is_measured_on_the_session_grid_and_the_cli_exports_the_audit(
    corrected_case, tmp_path
):
    store, folder = corrected_case
    store.close()  # the command line opens the store itself
    session, point = "ses-20230428", (12.0, 8.0, 21.0)
    label = session.removeprefix("ses-")
    mask_path = (
        folder / f"ses-{label}/anat/{CASE}_ses-{label}_space-orig_desc-flairlesion_mask.nii.gz"
    )
    native = nib.load(mask_path)
    context = json.loads((folder / "measurement_context.json").read_text())
    to_native = np.linalg.inv(np.array(context["sessions"][session]["flair"]["to_baseline"]))
    here = (to_native @ [*point, 1.0])[:3]
    ball = sphere(MRImage(np.asarray(native.dataobj), native.affine), here, 4.0)
    expected_added = int((ball & ~(np.asarray(native.dataobj) > 0)).sum())
    voxel_ml = abs(np.linalg.det(native.affine[:3, :3])) / 1000
    before_ml = float(
        {r["session_id"]: r for r in _tsv(folder / "sessions.tsv")}[session][
            "flair_lesion_volume_ml"
        ]
    )

    runner = CliRunner()
    paint = ["correct", str(folder), "--session", session, "--source", "flair", "--action", "paint"]
    result = runner.invoke(
        app,
        [
            *paint,
            *("--at", "12,8,21", "--radius", "4", "--reason", "missed juxtacortical lesion"),
            *("--author", "dr reader"),
        ],
    )
    assert result.exit_code == 0, result.output
    row = {r["session_id"]: r for r in _tsv(folder / "sessions.tsv")}[session]
    assert float(row["flair_lesion_volume_ml"]) == pytest.approx(
        before_ml + expected_added * voxel_ml, abs=2e-4
    )
    audit = tmp_path / "audit.tsv"
    result = runner.invoke(app, ["audit", str(folder), "--out", str(audit)])
    assert result.exit_code == 0, result.output
    (line,) = _tsv(audit)
    assert (line["author"], line["action"], line["reason"]) == (
        "dr reader",
        "paint",
        "missed juxtacortical lesion",
    )
    assert float(line["volume_after_ml"]) == pytest.approx(float(row["flair_lesion_volume_ml"]))
    result = runner.invoke(app, [*paint, "--at", "1,2", "--reason", "x"])
    assert result.exit_code != 0 and "x,y,z" in result.output
    missing = tmp_path / "nowhere" / "sub-x"  # not an analysed case folder: a named error
    for args in (
        ["correct", str(missing), *paint[2:], "--at", "1,2,3", "--reason", "x"],
        ["undo", str(missing)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "IncompleteAnalysisError" in result.output
        assert not missing.parent.exists()  # no store made there
    result = runner.invoke(app, ["undo", str(folder), "--author", "dr reader"])
    assert result.exit_code == 0 and "0 correction(s) left" in result.output


def test_a_batch_rerun_keeps_the_corrections(analyzed_samples, tmp_path, sample_case):
    """A re-analysis (here: the fingerprint of a newer software version) re-applies the edits."""
    from followup.batch import run_batch

    out = tmp_path / "out"
    shutil.copytree(analyzed_samples / CASE, out / CASE)
    store = Store(out)
    try:
        store.ingest_case(out / CASE, sample_case, None)
        point, _ = _dwi_lesion_at(out / CASE, "ses-20230322", "D003")
        apply_edit(
            store,
            out / CASE,
            LesionEdit("ses-20230322", "dwi", "erase", "dr reader", "false lesion", point_mm=point),
        )
        corrected = _tsv(out / CASE / "sessions.tsv")
    finally:
        store.close()
    provenance = json.loads((out / CASE / "provenance.json").read_text())
    provenance["fingerprint"] = "from an older version"
    (out / CASE / "provenance.json").write_text(json.dumps(provenance))
    root = tmp_path / "root"
    root.mkdir()
    (root / "indexcase").symlink_to(sample_case.resolve())
    summary = run_batch(root, out, workers=0)
    assert summary.n_failed == 0 and summary.n_done == 1, [o.error for o in summary.outcomes]
    again = _tsv(out / CASE / "sessions.tsv")
    assert [r["corrected"] for r in again] == [r["corrected"] for r in corrected]
    assert [r["dwi_lesion_count"] for r in again] == [r["dwi_lesion_count"] for r in corrected]
    assert read_corrections(out / CASE)[0]["status"] == "active"
    assert (out / CASE / AUTOMATIC_FOLDER / "sessions.tsv").is_file()
