"""Follow lesions from session to session in baseline space.

Each session's lesion mask (FLAIR or DWI, tracked separately) is warped into the baseline grid and cut
into 26-connected lesions (pieces under ``min_lesion_volume_mm3`` are dropped). The warp may be
given as the lesion fraction of each baseline voxel (the linear weights, see
:func:`imaging.edit.mask_onto`): a lesion is then the voxels of fraction >= 0.5 and its volume the sum
of the fractions of its voxels and of the partly covered voxels around it, so that a lesion carried
onto the baseline grid keeps its native volume (the cut at 0.5 alone loses its corners). The lesions of a
follow-up session are compared with those of the previous session of the same source that measured
it (a session without the sequence is skipped). Two lesions of consecutive sessions are *related*
when they share at least one voxel.

Identifiers
-----------
Every lesion of a session carries exactly one identifier (``F001``, ``D001``, ...), unique in that
session, and every previous identifier continues in at most one lesion:

1. The overlapping pairs (previous lesion, current lesion) are taken in order of shared voxels,
   largest first (ties: the larger current lesion, then the larger previous lesion, then the lower
   identifier); a pair passes the previous identifier on when neither of its lesions has one yet.
   So a lesion that splits continues in the part holding most of it, and lesions that merge continue
   as the one the merged lesion holds most of, whatever else happens at the same time (a lesion
   that splits while one of its parts merges with a neighbour, a part touching two lesions at once).
2. A current lesion left without an identifier gets a new one. Identifiers are never reused: one
   that ended (resolved, or merged into another lesion) is not given to a later lesion, even at the
   same place.

Change classes
--------------
For each lesion of a follow-up session (``related_ids`` in brackets):

* **new**: it shares no voxel with a previous lesion [the resolved lesions whose last extent it
  overlaps, so a lesion that resolved and came back is linked to its earlier self];
* **merged**: it kept an identifier and shares voxels with several previous lesions [the others];
* **split**: it shares voxels with one previous lesion that also shares voxels with another current
  lesion, or it broke off previous lesions whose identifiers went elsewhere [the previous lesions it
  came from; the part that keeps the identifier names its own];
* **enlarging**, **shrinking**, **stable**: one previous lesion, one current lesion, related to
  nothing else: volume up by at least ``change_fraction``, down by at least it, or neither [empty].
  With measured uncertainty (``spreads``, :mod:`imaging.uncertainty`) the change must also be
  beyond measurement noise: its 95 % interval (paired perturbed draws and the partial-volume band)
  must exclude 0 in the same direction; otherwise the lesion is stable. The ratio rule is then the
  secondary criterion: a change beyond noise of less than ``change_fraction`` stays stable (its
  ``change_beyond_noise`` column says ``increase`` or ``decrease``).

And one row with volume 0 for each previous lesion whose identifier ends in this session:

* **resolved**: it shares no voxel with a current lesion [empty];
* **merged**: its voxels are now part of lesions that carry other identifiers [those lesions].

A closing row's centroid, hemisphere and region are those of the lesion's last extent.

With ``spreads`` each row also carries its volume's 95 % interval, its change from the previous
session and that change's interval and noise label (``increase``, ``decrease``, ``within noise``):
one-to-one lesions from their paired draws, reaching over the change the two sessions' images read
over the lesion's footprint (:func:`_read_change`); a new lesion's change is its volume, a resolved
lesion's the loss of its last volume, each reaching over the share of the lesion's tissue the
other session's image may still hold there (:func:`_held`): a lesion found on one scan only is new
or gone beyond noise only when the other scan shows its tissue is not there. Merged and split rows
get no change interval (their volume is shared with other identifiers).

The first session's lesions are **baseline**. The vocabulary and the 30 % threshold follow the
lesion-wise taxonomy proposed for MS lesion follow-up (disappearing, new, merging, splitting,
enlarging >= 30 %, shrinking >= 30 %, stable). Matching by shared voxels assumes the sessions are
registered to baseline (lesions that moved by more than their own size are new + resolved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.image import MRImage
from imaging.quantify import as_cell
from imaging.regions import Hemisphere, Region
from imaging.uncertainty import (
    Estimate,
    FootprintReading,
    change_estimate,
    change_label,
    estimate,
    label_volumes_mm3,
)
from imaging.units import mm3_to_ml

__all__ = ["LesionSpread", "TrackedSession", "TrackingParams", "track_lesions"]

#: The uncertainty columns of a lesion row (empty without draws).
UNCERTAINTY_FIELDS = (
    "volume_ml_ci_low",
    "volume_ml_ci_high",
    "volume_change_ml",
    "volume_change_ml_ci_low",
    "volume_change_ml_ci_high",
    "change_beyond_noise",
)

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
class LesionSpread:
    """A session's perturbed lesion masks on the baseline grid (:mod:`imaging.uncertainty`).

    Attributes
    ----------
    draws : list of ndarray of bool, shape (I, J, K)
        One mask per draw (draw ``d`` of every session shares its template jitter).
    inner, outer : ndarray of bool, shape (I, J, K)
        The lesion mask cut at the two ends of the partial-volume band.
    volume_band : (ndarray of bool, ndarray of bool or float), optional
        The band of a lesion's own volume when it is not the change's (the DWI lesion's, cut on
        the ADC deficit: :func:`imaging.uncertainty.adc_deficit`; its outer end may be a share of
        each voxel, 0..1, with the rim its FLAIR lesion may hold restricted:
        :func:`imaging.uncertainty.hidden_restricted_share`); its interval is then also
        centred on the band's midpoint (``estimate(band_centred=True)``), as the session's DWI
        volume's is: the engine's value sits at the band's low end.
    volume_band_reach_mm : float
        How far from a lesion the voxels of ``volume_band`` count for it (nearest lesion first,
        :func:`imaging.uncertainty.label_volumes_mm3`): the rim of a DWI lesion's band lies one
        DWI voxel beyond it, up to 4-5 mm through the slices.
    z : float
        Normal quantile of the intervals.
    read : callable, optional
        What the session's own image reads over a footprint on the baseline grid
        (:func:`imaging.uncertainty.footprint_reading`): a lesion only one of two sessions found
        is judged by what the other session's image holds there.
    band_weight, volume_relative_sd, change_relative_sd : float
        As in :class:`imaging.uncertainty.UncertaintyParams`.
    """

    draws: list[NDArray[np.bool_]]
    inner: NDArray[np.bool_]
    outer: NDArray[np.bool_]
    read: Callable[[NDArray[np.bool_]], FootprintReading] | None = None
    volume_band: tuple[NDArray[np.bool_], NDArray[np.bool_ | np.floating[Any]]] | None = None
    volume_band_reach_mm: float = 3.0
    z: float = 1.96
    band_weight: float = 1.0
    volume_relative_sd: float = 0.0
    change_relative_sd: float = 0.0


@dataclass
class _Spread:
    """Per-lesion volumes (mL) of a session's draws and band cuts, column = component number."""

    draws_ml: NDArray[np.float64]
    inner_ml: NDArray[np.float64]
    outer_ml: NDArray[np.float64]
    settings: LesionSpread
    volume_band_ml: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    @classmethod
    def of(cls, spread: LesionSpread, components: NDArray[np.int32], spacing: Any) -> _Spread:
        cuts = [spread.inner, spread.outer]
        volumes_ml = label_volumes_mm3(components, [*spread.draws, *cuts], tuple(spacing)) / 1000.0
        draws = len(spread.draws)
        own = None
        if spread.volume_band is not None:
            band_ml = label_volumes_mm3(
                components,
                list(spread.volume_band),
                tuple(spacing),
                reach_mm=spread.volume_band_reach_mm,
            )
            own = (band_ml[0] / 1000.0, band_ml[1] / 1000.0)
        return cls(volumes_ml[:draws], volumes_ml[draws], volumes_ml[draws + 1], spread, own)

    def volume(self, c: int, volume_ml: float) -> Estimate:
        band = (float(self.inner_ml[c]), float(self.outer_ml[c]))
        if self.volume_band_ml is not None:
            band = (float(self.volume_band_ml[0][c]), float(self.volume_band_ml[1][c]))
        return estimate(
            volume_ml,
            list(self.draws_ml[:, c]),
            band=band,
            band_weight=self.settings.band_weight,
            other_sd=self.settings.volume_relative_sd * volume_ml,
            z=self.settings.z,
            band_centred=self.volume_band_ml is not None,
        )

    def change(
        self, c: int, volume_ml: float, before: _Spread, p: int, before_ml: float
    ) -> Estimate:
        return change_estimate(
            before_ml,
            volume_ml,
            list(before.draws_ml[:, p]),
            list(self.draws_ml[:, c]),
            band_before=(float(before.inner_ml[p]), float(before.outer_ml[p])),
            band_after=(float(self.inner_ml[c]), float(self.outer_ml[c])),
            band_weight=self.settings.band_weight,
            other_sd=self.settings.change_relative_sd * (volume_ml + before_ml) / 2,
            z=self.settings.z,
        )


def _cells(volume: Estimate | None, change: Estimate | None, label: str = "") -> dict[str, Any]:
    """The uncertainty columns of one lesion row (table cells: 4 decimals, empty where unknown)."""
    return {
        "volume_ml_ci_low": as_cell(volume.low if volume else None),
        "volume_ml_ci_high": as_cell(volume.high if volume else None),
        "volume_change_ml": as_cell(change.value if change else None),
        "volume_change_ml_ci_low": as_cell(change.low if change else None),
        "volume_change_ml_ci_high": as_cell(change.high if change else None),
        "change_beyond_noise": label or (change.label if change else ""),
    }


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


@dataclass
class _Lesions:
    """The lesions of one measured session: component map (0 = none, 1..n) and their identifiers."""

    components: NDArray[np.int32]
    volumes_mm3: dict[int, float]
    ids: dict[int, int]
    spread: _Spread | None = None


@dataclass
class _Match:
    """How the lesions of a session relate to those of the previous one."""

    ids: dict[int, int]
    changes: dict[int, str]
    related: dict[int, list[int]]
    #: Previous component -> (change of its closing row, related identifiers), for ended identifiers.
    ended: dict[int, tuple[str, list[int]]]
    #: Current component -> its one previous lesion, for the one-to-one classes (enlarging,
    #: shrinking, stable).
    parent: dict[int, int] = field(default_factory=dict)


def _components(
    mask: MRImage, params: TrackingParams
) -> tuple[NDArray[np.int32], dict[int, float]]:
    """26-connected lesions of ``mask`` (1..n, crumbs dropped) and their volumes (mm3).

    ``mask`` is binary, or a lesion fraction (float, 0..1) whose voxels >= 0.5 form the lesions;
    the volume of a lesion is then the sum of the fractions of its voxels and of the partly covered
    voxels (0 < fraction < 0.5) next to it, each counted for the nearest lesion within one voxel
    diagonal; the crumbs' voxels count for none.
    """
    data = np.asarray(mask.data)
    components, count = ndi.label(data >= 0.5, structure=_FULL)
    voxel_mm3 = mask.voxel_volume_mm3
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes * voxel_mm3 >= params.min_lesion_volume_mm3)
    keep = keep[keep > 0]
    relabel = np.zeros(count + 1, dtype=np.int32)
    relabel[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    labels = relabel[components]
    partial = (data > 0) & (data < 1)
    if not np.issubdtype(data.dtype, np.floating) or not partial.any():
        volumes = {
            int(c): float(sizes[old]) * voxel_mm3
            for c, old in zip(relabel[keep], keep, strict=True)
        }
        return labels, volumes
    weights = np.where((data >= 0.5) & (labels == 0), 0.0, data).astype(np.float32)
    spacing = mask.spacing_mm
    sums = label_volumes_mm3(
        labels, [weights], spacing, reach_mm=float(np.linalg.norm(spacing)) + 1e-6
    )[0]
    return labels, {int(c): float(sums[c]) for c in range(1, keep.size + 1)}


def _overlaps(now: NDArray[np.int32], before: NDArray[np.int32]) -> dict[tuple[int, int], int]:
    """Shared voxels of every overlapping (current, previous) pair of lesions."""
    both = (now > 0) & (before > 0)
    if not both.any():
        return {}
    width = int(before.max()) + 1
    codes = now[both].astype(np.int64) * width + before[both]
    pairs, counts = np.unique(codes, return_counts=True)
    return {
        (int(code // width), int(code % width)): int(n)
        for code, n in zip(pairs, counts, strict=True)
    }


def _match(
    volumes_mm3: dict[int, float],
    previous: _Lesions,
    overlaps: dict[tuple[int, int], int],
    next_id: int,
    change_fraction: float,
) -> tuple[_Match, int]:
    """Identifiers and change classes of the current lesions (rules in the module docstring)."""
    parents: dict[int, list[int]] = {c: [] for c in volumes_mm3}
    children: dict[int, list[int]] = {p: [] for p in previous.ids}
    for c, p in sorted(overlaps):
        parents[c].append(p)
        children[p].append(c)
    order = sorted(
        overlaps,
        key=lambda pair: (
            -overlaps[pair],
            -volumes_mm3[pair[0]],
            -previous.volumes_mm3[pair[1]],
            previous.ids[pair[1]],
            pair[0],
        ),
    )
    heir: dict[int, int] = {}  # previous component -> the current component that keeps its id
    ids: dict[int, int] = {}
    for c, p in order:
        if c not in ids and p not in heir:
            ids[c], heir[p] = previous.ids[p], c
    kept = set(ids)
    changes: dict[int, str] = {}
    related: dict[int, list[int]] = {}
    parent: dict[int, int] = {}
    for c in sorted(volumes_mm3):
        mine = parents[c]
        if c not in kept:
            ids[c], next_id = next_id, next_id + 1
        if not mine:
            changes[c], related[c] = "new", []
        elif len(mine) > 1 and c in kept:
            changes[c] = "merged"
            related[c] = sorted(previous.ids[p] for p in mine if previous.ids[p] != ids[c])
        elif len(mine) > 1 or len(children[mine[0]]) > 1:
            changes[c], related[c] = "split", sorted(previous.ids[p] for p in mine)
        else:
            parent[c] = mine[0]
            ratio = volumes_mm3[c] / previous.volumes_mm3[mine[0]]
            changes[c], related[c] = (
                (
                    "enlarging"
                    if ratio >= 1 + change_fraction
                    else "shrinking"
                    if ratio <= 1 - change_fraction
                    else "stable"
                ),
                [],
            )
    ended = {
        p: ("merged", sorted(ids[c] for c in kids)) if kids else ("resolved", [])
        for p, kids in children.items()
        if p not in heir
    }
    return _Match(ids=ids, changes=changes, related=related, ended=ended, parent=parent), next_id


def track_lesions(
    masks: list[tuple[str, MRImage | None]],
    *,
    source: str,
    hemispheres: MRImage,
    regions: MRImage,
    params: TrackingParams | None = None,
    spreads: list[LesionSpread | None] | None = None,
) -> list[TrackedSession]:
    """Track the lesions of one source across sessions (rules in the module docstring).

    Parameters
    ----------
    masks : list of (session_id, MRImage or None)
        Lesion masks on the baseline grid, shape (I, J, K), in session order: binary, or the lesion
        fraction of each voxel (float, 0..1; the volumes are then sums of fractions, see
        :func:`_components`); ``None`` where the session lacks the sequence (it is skipped: a
        lesion is compared with the last session that measured it).
    source : {"flair", "dwi"}
        Used in the lesion identifiers (``F001``, ``D001``).
    hemispheres, regions : MRImage
        Label maps on the baseline grid.
    params : TrackingParams, optional
    spreads : list of LesionSpread or None, optional
        The sessions' perturbed masks on the baseline grid, aligned with ``masks``: each lesion row
        then gets its volume's interval and its change's interval and noise label
        (:data:`UNCERTAINTY_FIELDS`), and enlarging and shrinking need a change beyond noise.

    Returns
    -------
    list of TrackedSession
        One per measured session, with rows ``lesion_id, session_id, source, volume_ml,
        centroid_{x,y,z}_mm`` (baseline world, RAS), ``hemisphere, region, change, related_ids``,
        sorted by identifier. The label map (uint16) holds identifier number ``n`` (``F00n``) on the
        voxels of that lesion; each number present is one 26-connected lesion with one row.
    """
    params = params or TrackingParams()
    prefix = {"flair": "F", "dwi": "D"}.get(source, source[:1].upper())
    hemi = np.asarray(hemispheres.data)
    region = np.asarray(regions.data)
    spreads = list(spreads) if spreads is not None else [None] * len(masks)

    def name(number: int) -> str:
        return f"{prefix}{number:03d}"

    def row(
        session_id: str,
        mask: MRImage,
        where: NDArray[np.bool_],
        number: int,
        volume_mm3: float,
        change: str,
        related: list[int],
        cells: dict[str, Any],
    ) -> dict[str, Any]:
        centre = mask.voxel_to_world_mm(np.argwhere(where).mean(axis=0))
        return {
            "lesion_id": name(number),
            "session_id": session_id,
            "source": source,
            "volume_ml": round(mm3_to_ml(volume_mm3), 4),
            "centroid_x_mm": round(float(centre[0]), 2),
            "centroid_y_mm": round(float(centre[1]), 2),
            "centroid_z_mm": round(float(centre[2]), 2),
            "hemisphere": _majority(hemi, where, _HEMISPHERE_NAMES),
            "region": _majority(region, where, _REGION_NAMES),
            "change": change,
            "related_ids": ";".join(name(r) for r in related),
            **cells,
        }

    sessions: list[TrackedSession] = []
    previous: _Lesions | None = None
    gone: dict[int, NDArray[np.intp]] = {}  # resolved identifier -> its last extent (flat indices)
    next_id = 1
    for (session_id, mask), given in zip(masks, spreads, strict=True):
        if mask is None:
            continue
        components, volumes = _components(mask, params)
        spread = _Spread.of(given, components, mask.spacing_mm) if given is not None else None
        if previous is None:
            match = _Match(
                ids={c: c for c in volumes},
                changes=dict.fromkeys(volumes, "baseline"),
                related={c: [] for c in volumes},
                ended={},
            )
            next_id = len(volumes) + 1
        else:
            match, next_id = _match(
                volumes,
                previous,
                _overlaps(components, previous.components),
                next_id,
                params.change_fraction,
            )
        flat = components.ravel()
        for c, change in match.changes.items():
            if change == "new":
                match.related[c] = sorted(n for n, at in gone.items() if (flat[at] == c).any())
        label_map = np.zeros(components.shape, dtype=np.uint16)
        rows = []
        for c in sorted(volumes):
            where = components == c
            label_map[where] = match.ids[c]
            change = match.changes[c]
            cells = _cells(None, None)
            if spread is not None:
                volume_ml = mm3_to_ml(volumes[c])
                found = spread.volume(c, volume_ml)
                moved: Estimate | None = None
                if change == "new":  # its change is its volume, less what was there before
                    other = previous.spread.settings if previous and previous.spread else None
                    held = _held(where, spread.settings, other)
                    low = found.low - held * found.value
                    moved = replace(found, low=low, label=change_label(low, found.high))
                elif c in match.parent and previous is not None and previous.spread is not None:
                    p = match.parent[c]
                    before_ml = mm3_to_ml(previous.volumes_mm3[p])
                    moved = spread.change(c, volume_ml, previous.spread, p, before_ml)
                    read = _read_change(
                        where | (previous.components == p),
                        previous.spread.settings,
                        spread.settings,
                        (before_ml + volume_ml) / 2,
                    )
                    if read is not None:  # the interval reaches over the readings' change
                        low, high = min(moved.low, read[0]), max(moved.high, read[1])
                        moved = replace(moved, low=low, high=high, label=change_label(low, high))
                    change = _judged(change, moved.label)
                cells = _cells(found, moved)
            rows.append(
                row(
                    session_id,
                    mask,
                    where,
                    match.ids[c],
                    volumes[c],
                    change,
                    match.related[c],
                    cells,
                )
            )
        change_map = None
        if previous is not None:
            before = previous.components
            before_any, now_any = before > 0, components > 0
            codes = np.zeros(components.shape, dtype=np.uint8)
            codes[before_any & now_any] = CHANGE_CODES["persistent"]
            codes[now_any & ~before_any] = CHANGE_CODES["appeared"]
            codes[before_any & ~now_any] = CHANGE_CODES["disappeared"]
            change_map = mask.with_data(codes, sequence="OTHER", bvals_s_mm2=None)
            for p, (change, related) in match.ended.items():
                where = before == p
                number = previous.ids[p]
                cells = _cells(None, None)
                if change == "resolved" and previous.spread is not None and spread is not None:
                    was = previous.spread.volume(p, mm3_to_ml(previous.volumes_mm3[p]))
                    held = _held(before == p, previous.spread.settings, spread.settings)
                    high = -was.low + held * was.value
                    gone_by = Estimate(-was.value, was.sd, -was.high, high)
                    cells = _cells(None, gone_by, change_label(-was.high, high))
                rows.append(row(session_id, mask, where, number, 0.0, change, related, cells))
                if change == "resolved":
                    gone[number] = np.flatnonzero(where)
        sessions.append(
            TrackedSession(
                session_id=session_id,
                labels=mask.with_data(label_map, sequence="OTHER", bvals_s_mm2=None),
                change_map=change_map,
                rows=sorted(rows, key=lambda r: int(r["lesion_id"][len(prefix) :])),
            )
        )
        previous = _Lesions(
            components=components, volumes_mm3=volumes, ids=match.ids, spread=spread
        )
    return sessions


def _held(where: NDArray[np.bool_], seer: LesionSpread, other: LesionSpread | None) -> float:
    """The share of a lesion that only ``seer``'s session found which the other session's image
    may still hold there, 0..1: the upper end of its reading over the lesion's footprint (baseline
    grid) against the finder's own (:meth:`imaging.uncertainty.FootprintReading.share_of`).

    A new lesion's change reaches down, a resolved lesion's loss up, by this share of its volume:
    a lesion is new or gone beyond noise only when the other scan shows its tissue is not there.
    0 (the lesion's volume alone decides, as without images) when a session cannot read.
    """
    if other is None or seer.read is None or other.read is None:
        return 0.0
    return other.read(where).share_of(seer.read(where), seer.z)


def _read_change(
    where: NDArray[np.bool_], before: LesionSpread, after: LesionSpread, mean_ml: float
) -> tuple[float, float] | None:
    """The change of a lesion followed one-to-one as the two sessions' images read it over the
    same footprint (the union of its two extents, baseline grid), mL: its 95 % interval
    ``(low, high)``, or ``None`` when a session cannot read.

    The draws re-segment one image; a new scan samples a lesion of a few voxels anew, and the
    engine counts it a voxel or two larger or smaller, more than any draw moves it. Read over one
    footprint in both images (:func:`imaging.uncertainty.footprint_reading`), the lesion's tissue
    is compared without either segmentation: the readings' change relative to their mean, times the
    lesion's mean volume, with its standard error from the two readings'. The change's interval
    reaches over this one whole, as the FLAIR-lesion rADC's does over its two footprints.
    """
    if before.read is None or after.read is None:
        return None
    first, second = before.read(where), after.read(where)
    mean = (first.signal + second.signal) / 2
    values = (first.signal, second.signal, first.se, second.se)
    if not (all(np.isfinite(values)) and mean > 0):
        return None
    scale = mean_ml / mean
    change = (second.signal - first.signal) * scale
    spread = after.z * float(np.hypot(first.se, second.se)) * scale
    return change - spread, change + spread


def _judged(change: str, label: str) -> str:
    """A one-to-one class with the change's noise label: enlarging needs an increase beyond noise
    (and the 30 % of the ratio rule), shrinking a decrease beyond noise; otherwise stable."""
    if change == "enlarging" and label != "increase":
        return "stable"
    if change == "shrinking" and label != "decrease":
        return "stable"
    return change
