"""Lesion tracking on phantoms with known answers (anisotropic grid, non-cubic shape)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from followup.dicom_seg import orig_lesion_labels
from followup.results import lesion_courses
from imaging.image import MRImage
from imaging.track import TrackingParams, track_lesions

SHAPE = (30, 24, 12)
AFFINE = np.diag([1.0, 1.2, 3.0, 1.0])  # 3.6 mm3 voxels


def _mask(*boxes: tuple[slice, slice, slice]) -> MRImage:
    data = np.zeros(SHAPE, np.uint8)
    for box in boxes:
        data[box] = 1
    return MRImage(data, AFFINE)


def _track(*masks):
    hemispheres = _mask((slice(0, 15), slice(None), slice(None)))
    hemi = np.asarray(hemispheres.data).copy()
    hemi[15:] = 2
    regions = MRImage(np.full(SHAPE, 2, np.uint8), AFFINE)
    sessions = [(f"ses-{i}", m) for i, m in enumerate(masks)]
    return track_lesions(
        sessions,
        source="flair",
        hemispheres=MRImage(hemi, AFFINE),
        regions=regions,
        params=TrackingParams(min_lesion_volume_mm3=1.0),
    )


def _rows(tracked):
    return {(r["session_id"], r["lesion_id"]): r for t in tracked for r in t.rows}


A = (slice(2, 6), slice(2, 6), slice(2, 4))  # 32 voxels, left
B = (slice(20, 24), slice(2, 6), slice(2, 4))  # right


def test_baseline_stable_enlarging_shrinking_and_resolved():
    grown = (slice(2, 8), slice(2, 6), slice(2, 4))  # 48 voxels: +50 %
    tracked = _track(
        _mask(A, B),
        _mask(A, B),
        _mask(grown, (slice(20, 22), slice(2, 6), slice(2, 4))),
        _mask(grown),
    )
    rows = _rows(tracked)
    assert rows[("ses-0", "F001")]["change"] == "baseline"
    assert rows[("ses-0", "F001")]["volume_ml"] == pytest.approx(32 * 3.6 / 1000)
    assert rows[("ses-0", "F001")]["hemisphere"] == "left"
    assert rows[("ses-0", "F002")]["hemisphere"] == "right"
    assert rows[("ses-1", "F001")]["change"] == "stable"
    assert rows[("ses-2", "F001")]["change"] == "enlarging"
    assert rows[("ses-2", "F002")]["change"] == "shrinking"  # 16 of 32 voxels
    assert rows[("ses-3", "F002")]["change"] == "resolved"
    assert rows[("ses-3", "F002")]["volume_ml"] == 0.0
    change = np.asarray(tracked[3].change_map.data)
    assert (change == 3).sum() == 16  # the resolved lesion's voxels disappeared
    assert (change == 1).sum() == 48


def test_new_merged_and_split_lesions():
    left, right = (slice(2, 6), slice(2, 6), slice(2, 4)), (slice(9, 13), slice(2, 6), slice(2, 4))
    bridge = (slice(2, 13), slice(2, 6), slice(2, 4))
    new = (slice(20, 24), slice(15, 20), slice(6, 9))
    tracked = _track(_mask(left, right), _mask(bridge, new), _mask(left, right, new))
    rows = _rows(tracked)
    assert rows[("ses-1", "F001")]["change"] == "merged"
    assert rows[("ses-1", "F001")]["related_ids"] == "F002"
    assert rows[("ses-1", "F003")]["change"] == "new"
    split = [r for (s, _), r in rows.items() if s == "ses-2" and r["change"] == "split"]
    assert sorted(r["lesion_id"] for r in split) == ["F001", "F004"]
    assert all(r["related_ids"] == "F001" for r in split)
    assert rows[("ses-2", "F003")]["change"] == "stable"
    labels = np.asarray(tracked[2].labels.data)
    assert set(np.unique(labels)) == {0, 1, 3, 4}


def test_sessions_without_the_sequence_are_skipped():
    tracked = _track(_mask(A), None, _mask(A))
    assert [t.session_id for t in tracked] == ["ses-0", "ses-2"]
    assert tracked[1].rows[0]["change"] == "stable"


def test_centroid_is_in_world_millimetres():
    tracked = _track(_mask(A))
    row = tracked[0].rows[0]
    # voxel centre of A: (3.5, 3.5, 2.5) -> x 3.5, y 4.2, z 7.5 mm
    assert (row["centroid_x_mm"], row["centroid_y_mm"], row["centroid_z_mm"]) == (3.5, 4.2, 7.5)


# --- Identifiers through splits, merges and both at once -------------------------------------------
# Boxes span y 2..5 and z 2..3 unless said otherwise, so a box x[a:b] holds (b - a) * 8 voxels; pieces
# of one session are kept apart by at least one empty x plane.


def _x(start: int, stop: int, y: slice = slice(2, 6)) -> tuple[slice, slice, slice]:
    return (slice(start, stop), y, slice(2, 4))


def _track_all(*sessions: list[tuple[slice, slice, slice]]):
    masks = [_mask(*boxes) for boxes in sessions]
    tracked = _track(*masks)
    _assert_consistent(tracked, masks)
    return tracked


def _assert_consistent(tracked, masks) -> None:
    """The invariants every tracked case holds, whatever happened to its lesions.

    Per session: identifiers unique; the label map holds exactly the identifiers of the rows with a
    volume, each as one 26-connected lesion of that volume; the DICOM SEG lesion numbers of the
    session's own mask (identity registration) are the same identifiers.
    """
    for session, mask in zip(tracked, masks, strict=True):
        ids = [r["lesion_id"] for r in session.rows]
        assert len(ids) == len(set(ids)), f"{session.session_id}: identifier used twice: {ids}"
        labels = np.asarray(session.labels.data)
        present = {int(r["lesion_id"][1:]): r for r in session.rows if r["volume_ml"] > 0}
        assert set(np.unique(labels)) - {0} == set(present)
        for number, row in present.items():
            lesion = labels == number
            assert ndi.label(lesion, structure=np.ones((3, 3, 3)))[1] == 1
            assert row["volume_ml"] == pytest.approx(lesion.sum() * 3.6 / 1000, abs=1e-4)
        for row in session.rows:
            if row["volume_ml"] == 0:
                assert row["change"] in {"resolved", "merged"}
        numbers = orig_lesion_labels(mask, session, np.eye(4))[1]
        assert numbers == sorted(present)


def _changes(tracked, session: int) -> dict[str, tuple[str, str, float]]:
    """lesion_id -> (change, related_ids, volume in voxels) of one session."""
    return {
        r["lesion_id"]: (r["change"], r["related_ids"], round(r["volume_ml"] * 1000 / 3.6))
        for r in tracked[session].rows
    }


def test_a_lesion_that_splits_while_one_part_merges_with_a_neighbour():
    # A (80 voxels) splits: its larger part (56, all from A) stays alone, its smaller end (16 voxels of
    # A) joins B (16 of B's 24). Before the fix both lesions of ses-1 were F001 (the larger part kept A's
    # identifier as a split, the merged lesion took it as the identifier of its largest parent).
    a, b = _x(2, 12), _x(14, 17)
    tracked = _track_all([a, b], [_x(2, 9), _x(10, 16)], [_x(2, 9), _x(10, 18)], [_x(2, 18)])
    assert _changes(tracked, 0) == {"F001": ("baseline", "", 80), "F002": ("baseline", "", 24)}
    assert _changes(tracked, 1) == {"F001": ("split", "F001", 56), "F002": ("merged", "F001", 48)}
    assert _changes(tracked, 2) == {"F001": ("stable", "", 56), "F002": ("enlarging", "", 64)}
    # Both join up: the joined lesion continues as the one it holds more of (F002, 64 of 128 voxels,
    # F001 56), and F001 ends with a merged row of volume 0 naming the lesion it went into.
    assert _changes(tracked, 3) == {"F001": ("merged", "F002", 0), "F002": ("merged", "F001", 128)}
    labels = np.asarray(tracked[1].labels.data)
    assert (labels[2:9, 2:6, 2:4] == 1).all() and (labels[10:16, 2:6, 2:4] == 2).all()


def test_a_split_part_that_takes_most_of_the_lesion_into_a_merge():
    # A (80) splits into 24 voxels alone and 56 that join B (24): the merged lesion holds most of A and
    # continues as F001; the lone part is a new identifier split from F001; B's identifier ends merged.
    a, b = _x(2, 12), _x(14, 17)
    tracked = _track_all([a, b], [_x(2, 5), _x(6, 17)], [_x(2, 5), _x(6, 17)])
    assert _changes(tracked, 1) == {
        "F001": ("merged", "F002", 88),
        "F002": ("merged", "F001", 0),
        "F003": ("split", "F001", 24),
    }
    assert _changes(tracked, 2) == {"F001": ("stable", "", 88), "F003": ("stable", "", 24)}


def test_a_merged_lesion_that_then_splits_over_four_sessions():
    left = (slice(2, 6), slice(8, 14), slice(5, 8))  # 72 voxels
    right = (slice(9, 12), slice(8, 14), slice(5, 8))  # 54 voxels
    bridge = (slice(2, 12), slice(8, 14), slice(5, 8))  # 180
    part_1, part_2 = (
        (slice(2, 7), slice(8, 14), slice(5, 8)),
        (slice(8, 12), slice(8, 14), slice(5, 8)),
    )
    new = (slice(20, 25), slice(15, 20), slice(2, 5))  # 75
    tracked = _track_all([left, right], [bridge], [part_1, part_2, new], [part_1, part_2, new])
    assert _changes(tracked, 1) == {"F001": ("merged", "F002", 180), "F002": ("merged", "F001", 0)}
    # The merged lesion splits: the larger part (90 voxels) keeps F001, the other (72) is new to the
    # tracking; identifiers that ended (F002) never come back.
    assert _changes(tracked, 2) == {
        "F001": ("split", "F001", 90),
        "F003": ("split", "F001", 72),
        "F004": ("new", "", 75),
    }
    assert _changes(tracked, 3) == {
        "F001": ("stable", "", 90),
        "F003": ("stable", "", 72),
        "F004": ("stable", "", 75),
    }


def test_a_lesion_touching_two_lesions_that_both_go_on():
    # A and B (64 voxels each) each shrink to 40, and a thin piece between them (24 voxels) shares 8
    # voxels with each. A and B continue; the piece broke off both (before the fix it took F001 as a
    # "merged" lesion while A's remainder kept F001 too).
    thin = slice(3, 5)
    tracked = _track_all(
        [_x(2, 10), _x(12, 20)], [_x(2, 7), _x(8, 14, thin), _x(15, 20)], [_x(2, 7), _x(15, 20)]
    )
    assert _changes(tracked, 1) == {
        "F001": ("split", "F001", 40),
        "F002": ("split", "F002", 40),
        "F003": ("split", "F001;F002", 24),
    }
    assert _changes(tracked, 2) == {
        "F001": ("stable", "", 40),
        "F002": ("stable", "", 40),
        "F003": ("resolved", "", 0),
    }


def test_a_lesion_that_resolves_and_comes_back_is_new_and_linked_to_its_earlier_self():
    a, b = _x(2, 8), _x(14, 20)
    tracked = _track_all([a, b], [a], [a, b], [a, b], [a])
    assert _changes(tracked, 1) == {"F001": ("stable", "", 48), "F002": ("resolved", "", 0)}
    assert _changes(tracked, 2) == {"F001": ("stable", "", 48), "F003": ("new", "F002", 48)}
    assert _changes(tracked, 3) == {"F001": ("stable", "", 48), "F003": ("stable", "", 48)}
    # Resolved once, F002 is not reported again; F003 resolves at the same place and is linked to both.
    assert _changes(tracked, 4) == {"F001": ("stable", "", 48), "F003": ("resolved", "", 0)}
    elsewhere = _track_all([a, b], [a], [a, _x(22, 26)])
    assert _changes(elsewhere, 2)["F003"] == ("new", "", 32)
    # One lesion coming back over the places of two that resolved is linked to both.
    c = _x(24, 28)
    both = _track_all([a, b, c], [c], [_x(2, 20), c])
    assert _changes(both, 1) == {
        "F001": ("resolved", "", 0),
        "F002": ("resolved", "", 0),
        "F003": ("stable", "", 32),
    }
    assert _changes(both, 2) == {"F003": ("stable", "", 32), "F004": ("new", "F001;F002", 144)}


def test_lesion_course_ends_with_merged_for_a_lesion_absorbed_by_another():
    # Issue 15: a lesion absorbed by a merge kept its last own state ("enlarging") as its last change.
    a, b = _x(2, 8), _x(10, 13)
    tracked = _track_all([a, b], [a, _x(10, 15)], [_x(2, 15)])
    lesions = pd.DataFrame(
        [dict(r, day=day) for day, t in zip((0, 3, 8), tracked, strict=True) for r in t.rows]
    )
    courses = lesion_courses(lesions, [t.session_id for t in tracked], 0).set_index("lesion")
    assert courses.loc["F002", "changes"] == "baseline > enlarging > merged"
    assert courses.loc["F002", "last_change"] == "merged"
    assert courses.loc["F002", "last_day"] == 3  # last seen on its own
    assert courses.loc["F001", "changes"] == "baseline > stable > merged"
    assert courses.loc["F001", "last_ml"] == pytest.approx(104 * 3.6 / 1000)


def _turned(affine: np.ndarray, degrees: float, shift_mm: tuple[float, float, float]) -> np.ndarray:
    """``affine`` turned by ``degrees`` about z and y through the grid centre, then shifted."""
    angle = np.deg2rad(degrees)
    cz, sz = np.cos(angle), np.sin(angle)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cz, 0.0, sz], [0.0, 1.0, 0.0], [-sz, 0.0, cz]])
    centre = affine[:3, :3] @ ((np.array([40, 36, 16]) - 1) / 2.0) + affine[:3, 3]
    turn = np.eye(4)
    turn[:3, :3] = rz @ ry
    turn[:3, 3] = centre - turn[:3, :3] @ centre + np.asarray(shift_mm)
    return turn @ affine


def test_a_lesion_carried_onto_a_turned_grid_keeps_its_volume():
    """Small ellipsoid lesions on a 0.9 x 1.1 x 3.3 mm grid carried onto the same grid turned by
    12 degrees and shifted by part of a voxel (a follow-up session carried onto the baseline): the
    lesion fractions keep each lesion's native volume within 1 %; the cut at 0.5 loses over 2 %."""
    from imaging.edit import mask_onto

    native_affine = np.diag([0.9, 1.1, 3.3, 1.0])
    shape = (40, 36, 16)
    ijk = np.indices(shape).astype(float)
    world = np.einsum("ij,jklm->iklm", native_affine[:3, :3], ijk)
    data = np.zeros(shape, np.uint8)
    centres = [(9.0, 9.0, 20.0), (26.0, 27.0, 26.0)]
    radii = [(4.0, 3.0, 7.0), (5.5, 4.5, 8.0)]
    for centre, radius in zip(centres, radii, strict=True):
        inside = sum(((world[a] - centre[a]) / radius[a]) ** 2 for a in range(3)) <= 1.0
        data[inside] = 1
    native = MRImage(data, native_affine)
    labels, _ = ndi.label(data, structure=np.ones((3, 3, 3)))
    native_mm3 = [float((labels == n).sum()) * 0.9 * 1.1 * 3.3 for n in (1, 2)]
    baseline = MRImage(np.zeros(shape, np.uint8), _turned(native_affine, 12.0, (0.4, -0.3, 1.2)))
    fraction = mask_onto(native, baseline, as_fraction=True)  # both grids in one world
    cut = mask_onto(native, baseline)
    assert np.asarray(fraction.data).dtype == np.float32
    regions = MRImage(np.full(shape, 2, np.uint8), baseline.affine)

    def volumes(mask: MRImage) -> list[float]:
        (session,) = track_lesions(
            [("ses-1", mask)],
            source="flair",
            hemispheres=regions,
            regions=regions,
            params=TrackingParams(min_lesion_volume_mm3=1.0),
        )
        found = sorted(r["volume_ml"] * 1000.0 for r in session.rows)
        assert len(found) == 2
        return found

    kept = volumes(fraction)
    lost = volumes(cut)
    for truth, by_fraction, by_cut in zip(sorted(native_mm3), kept, lost, strict=True):
        assert by_fraction == pytest.approx(truth, rel=0.01)
        assert by_cut < 0.98 * truth  # the cut at 0.5 loses the corners: 2.7-2.8 % here


def test_a_lesion_mask_onto_a_coarser_grid_gives_each_voxel_its_share():
    """A 1 mm FLAIR lesion mask (0.9 x 1.1 x 1.3 mm here) carried onto a 2 x 2 x 5 mm ADC grid turned
    by 12 degrees: each ADC voxel's share of lesion sums to the lesion's volume (within 1 %), and a
    lesion one slice thick (1.3 mm) fills only about a quarter of the 5 mm voxels it crosses,
    which the centre rule of :func:`mask_onto` counts as wholly lesion."""
    from imaging.edit import mask_onto, mask_share_onto

    fine_affine = np.diag([0.9, 1.1, 1.3, 1.0])
    shape = (60, 50, 40)
    ijk = np.indices(shape).astype(float)
    world = np.einsum("ij,jklm->iklm", fine_affine[:3, :3], ijk)
    centre, radii = (24.0, 27.0, 26.0), (9.0, 8.0, 7.0)
    blob = sum(((world[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1
    mask = MRImage(blob.astype(np.uint8), fine_affine)
    coarse = MRImage(
        np.zeros((40, 40, 16), np.uint8),  # covers the whole blob once turned
        _turned(np.diag([2.0, 2.0, 5.0, 1.0]), 12.0, (0.3, 0.7, 1.1)),
    )
    share = np.asarray(mask_share_onto(mask, coarse).data)
    assert share.dtype == np.float32 and share.min() >= 0.0 and share.max() <= 1.0
    volume_mm3 = float(blob.sum()) * 0.9 * 1.1 * 1.3
    assert float(share.sum()) * 2.0 * 2.0 * 5.0 == pytest.approx(volume_mm3, rel=0.01)
    # one 1.3 mm slice of lesion across the whole field
    sheet = np.zeros(shape, np.uint8)
    sheet[:, :, 20] = 1
    flat = MRImage(sheet, fine_affine)
    level_affine = np.diag([2.0, 2.0, 5.0, 1.0])
    level_affine[2, 3] = 1.0  # voxel centres at z = 1, 6, ..., 26 mm: one on the sheet (z = 26)
    level = MRImage(np.zeros((30, 30, 12), np.uint8), level_affine)
    crossed = np.asarray(mask_onto(flat, level).data) > 0
    sheet_share = np.asarray(mask_share_onto(flat, level).data)
    assert crossed.any()
    assert float(sheet_share[crossed].max()) < 0.5
    sheet_mm3 = float(sheet.sum()) * 0.9 * 1.1 * 1.3
    assert float(sheet_share.sum()) * 20.0 == pytest.approx(sheet_mm3, rel=1e-4)
