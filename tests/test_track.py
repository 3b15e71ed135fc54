"""Lesion tracking on phantoms with known answers (anisotropic grid, non-cubic shape)."""

from __future__ import annotations

import numpy as np
import pytest

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
