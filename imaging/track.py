"""Follow lesions from session to session in baseline space.

Each session's lesion mask (FLAIR or DWI, tracked separately) is warped into the baseline grid and cut
into 26-connected lesions. A lesion is matched to the lesions of the previous session (of the same
source) that it overlaps:

* no overlap: **new** (a new identifier);
* one previous lesion, which overlaps nothing else: the same identifier, **enlarging** (volume up by
  at least ``change_fraction``), **shrinking** (down by at least ``change_fraction``) or **stable**;
* several previous lesions: **merged** (the identifier of the largest of them);
* one previous lesion overlapping several: **split** (the largest part keeps the identifier);
* a previous lesion that nothing overlaps: a **resolved** row with volume 0.

The first session's lesions are **baseline**. The vocabulary and the 30 % threshold follow the
lesion-wise taxonomy proposed for MS lesion follow-up (disappearing, new, merging, splitting,
enlarging >= 30 %, shrinking >= 30 %, stable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.image import MRImage
from imaging.regions import Hemisphere, Region
from imaging.units import mm3_to_ml

__all__ = ["TrackedSession", "TrackingParams", "track_lesions"]

_FULL = np.ones((3, 3, 3), bool)
#: Voxel codes of the change maps.
CHANGE_CODES = {"persistent": 1, "appeared": 2, "disappeared": 3}


@dataclass(frozen=True)
class TrackingParams:
    """Settings of :func:`track_lesions`.

    Attributes
    ----------
    change_fraction : float
        Relative volume change that makes a lesion enlarging or shrinking (0.3 = 30 %).
    min_lesion_volume_mm3 : float
        Pieces smaller than this after warping to baseline space are dropped (resampling crumbs).
    """

    change_fraction: float = 0.3
    min_lesion_volume_mm3: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return asdict(self)


@dataclass
class TrackedSession:
    """The tracked lesions of one session: label map, change map and one row per lesion."""

    session_id: str
    labels: MRImage
    change_map: MRImage | None
    rows: list[dict[str, Any]] = field(default_factory=list)


def _majority(labels: NDArray[Any], where: NDArray[np.bool_], names: dict[int, str]) -> str:
    values = labels[where]
    values = values[values > 0]
    if values.size == 0:
        return ""
    counts = np.bincount(values.astype(np.int64))
    present = [name for value, name in names.items() if value < counts.size and counts[value] > 0]
    if len(present) > 1 and names is _HEMISPHERE_NAMES:
        return (
            "bilateral"
            if counts[1:].min() / counts[1:].max() > 0.2
            else names[int(np.argmax(counts))]
        )
    return names.get(int(np.argmax(counts)), "")


_HEMISPHERE_NAMES = {int(h): h.name.lower() for h in Hemisphere}
_REGION_NAMES = {int(r): r.column for r in Region}


def track_lesions(
    masks: list[tuple[str, MRImage | None]],
    *,
    source: str,
    hemispheres: MRImage,
    regions: MRImage,
    params: TrackingParams | None = None,
) -> list[TrackedSession]:
    """Track the lesions of one source across sessions.

    Parameters
    ----------
    masks : list of (session_id, MRImage or None)
        Binary lesion masks on the baseline grid, in session order; ``None`` where the session lacks
        the sequence (it is skipped: a lesion is compared with the last session that measured it).
    source : {"flair", "dwi"}
        Used in the lesion identifiers (``F001``, ``D001``).
    hemispheres, regions : MRImage
        Label maps on the baseline grid.
    params : TrackingParams, optional

    Returns
    -------
    list of TrackedSession
        One per measured session, with rows ``lesion_id, session_id, source, volume_ml,
        centroid_{x,y,z}_mm`` (baseline world, RAS), ``hemisphere, region, change, related_ids``.
    """
    params = params or TrackingParams()
    prefix = {"flair": "F", "dwi": "D"}.get(source, source[:1].upper())
    hemi = np.asarray(hemispheres.data)
    region = np.asarray(regions.data)
    sessions: list[TrackedSession] = []
    previous: tuple[NDArray[np.int32], dict[int, int], dict[int, float]] | None = None
    next_id = 1
    for session_id, mask in masks:
        if mask is None:
            continue
        voxel_mm3 = mask.voxel_volume_mm3
        components, count = ndi.label(np.asarray(mask.data) > 0, structure=_FULL)
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        keep = np.flatnonzero(sizes * voxel_mm3 >= params.min_lesion_volume_mm3)
        keep = keep[keep > 0]
        relabel = np.zeros(count + 1, dtype=np.int32)
        relabel[keep] = np.arange(1, keep.size + 1)
        components = relabel[components]
        count = int(keep.size)
        volumes = {
            c: float(np.count_nonzero(components == c)) * voxel_mm3 for c in range(1, count + 1)
        }
        ids: dict[int, int] = {}
        changes: dict[int, str] = {}
        related: dict[int, list[int]] = {c: [] for c in range(1, count + 1)}
        resolved: list[int] = []
        if previous is None:
            for c in range(1, count + 1):
                ids[c], changes[c] = next_id, "baseline"
                next_id += 1
        else:
            before, before_ids, before_volumes = previous
            pairs = (
                np.unique(np.stack([components.ravel(), before.ravel()]), axis=1)
                if count
                else np.empty((2, 0), dtype=np.int64)
            )
            pairs = pairs[:, (pairs[0] > 0) & (pairs[1] > 0)]
            parents: dict[int, list[int]] = {c: [] for c in range(1, count + 1)}
            children: dict[int, list[int]] = {p: [] for p in before_ids}
            for c, p in pairs.T:
                parents[int(c)].append(int(p))
                children[int(p)].append(int(c))
            for c in range(1, count + 1):
                mine = parents[c]
                if not mine:
                    ids[c], changes[c] = next_id, "new"
                    next_id += 1
                elif len(mine) > 1:
                    largest = max(mine, key=lambda p: before_volumes[p])
                    ids[c], changes[c] = before_ids[largest], "merged"
                    related[c] = [before_ids[p] for p in mine if p != largest]
                else:
                    parent = mine[0]
                    siblings = children[parent]
                    if len(siblings) > 1:
                        keeper = max(siblings, key=lambda s: volumes[s])
                        if c == keeper:
                            ids[c] = before_ids[parent]
                        else:
                            ids[c] = next_id
                            next_id += 1
                        changes[c] = "split"
                        related[c] = [before_ids[parent]]
                    else:
                        ids[c] = before_ids[parent]
                        ratio = volumes[c] / before_volumes[parent]
                        if ratio >= 1 + params.change_fraction:
                            changes[c] = "enlarging"
                        elif ratio <= 1 - params.change_fraction:
                            changes[c] = "shrinking"
                        else:
                            changes[c] = "stable"
            resolved = [p for p, kids in children.items() if not kids]
        label_map = np.zeros(components.shape, dtype=np.uint16)
        rows = []
        for c in range(1, count + 1):
            where = components == c
            label_map[where] = ids[c]
            centre = mask.voxel_to_world_mm(np.argwhere(where).mean(axis=0))
            rows.append(
                {
                    "lesion_id": f"{prefix}{ids[c]:03d}",
                    "session_id": session_id,
                    "source": source,
                    "volume_ml": round(mm3_to_ml(volumes[c]), 4),
                    "centroid_x_mm": round(float(centre[0]), 2),
                    "centroid_y_mm": round(float(centre[1]), 2),
                    "centroid_z_mm": round(float(centre[2]), 2),
                    "hemisphere": _majority(hemi, where, _HEMISPHERE_NAMES),
                    "region": _majority(region, where, _REGION_NAMES),
                    "change": changes[c],
                    "related_ids": ";".join(f"{prefix}{r:03d}" for r in related[c]),
                }
            )
        change_map = None
        if previous is not None:
            before, before_ids, _ = previous
            before_any, now_any = before > 0, components > 0
            codes = np.zeros(components.shape, dtype=np.uint8)
            codes[before_any & now_any] = CHANGE_CODES["persistent"]
            codes[now_any & ~before_any] = CHANGE_CODES["appeared"]
            codes[before_any & ~now_any] = CHANGE_CODES["disappeared"]
            change_map = mask.with_data(codes, sequence="OTHER", bvals_s_mm2=None)
            for p in resolved:
                where = before == p
                centre = mask.voxel_to_world_mm(np.argwhere(where).mean(axis=0))
                rows.append(
                    {
                        "lesion_id": f"{prefix}{before_ids[p]:03d}",
                        "session_id": session_id,
                        "source": source,
                        "volume_ml": 0.0,
                        "centroid_x_mm": round(float(centre[0]), 2),
                        "centroid_y_mm": round(float(centre[1]), 2),
                        "centroid_z_mm": round(float(centre[2]), 2),
                        "hemisphere": _majority(hemi, where, _HEMISPHERE_NAMES),
                        "region": _majority(region, where, _REGION_NAMES),
                        "change": "resolved",
                        "related_ids": "",
                    }
                )
        sessions.append(
            TrackedSession(
                session_id=session_id,
                labels=mask.with_data(label_map, sequence="OTHER", bvals_s_mm2=None),
                change_map=change_map,
                rows=sorted(rows, key=lambda r: r["lesion_id"]),
            )
        )
        previous = (components, ids, volumes)
    return sessions
