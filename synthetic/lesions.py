"""White-matter lesions of toxic leukoencephalopathy and their course over time.

Each named component (e.g. ``L-parietal``) owns a smooth scalar field
``phi(x) = 1 - q(x) + a * eta(x)`` on the model grid, where ``q`` is an anisotropic quadratic
distance from the component centre and ``eta`` a smooth Gaussian random field. At each day the
component's extent is the level set ``phi > L`` with ``L`` found by bisection so that the lesion
volume meets the target of the clinical course; lower levels give nested, larger regions, so a
component keeps its identity while it grows. Extents are confined to white matter (WM
probability above about 0.5).

Per day and voxel the model holds three tissue quantities (all on the 1 mm model grid):

* ``affected`` (ell_a): fraction of the voxel that is lesion tissue of any kind (cytotoxic or
  T2-visible), at most the WM fraction;
* ``flair`` (ell_f <= ell_a): fraction that is FLAIR-hyperintense (T2-prolonged) lesion tissue,
  with a severity ``t2_severity`` in [0, 1];
* ``radc``: the ADC of the affected tissue relative to normal WM (700 um2/s). It is low
  (about 0.5) in cytotoxic tissue and returns towards and above 1 as the tissue pseudo-normalises
  (posterior parts first).

Truth definitions (also written to ``truth.json``):
FLAIR lesion tissue = ``ell_f``; DWI lesion tissue = ``ell_a`` where ``radc < 0.75``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthetic.anatomy import Anatomy
from synthetic.fields import rng_for, smooth_noise

#: Keyframe days of the clinical course (Steinegger et al. 2024).
KEY_DAYS = (0.0, 3.0, 8.0, 45.0, 165.0)
#: rADC below which affected tissue counts as restricted (DWI lesion).
RADC_RESTRICTED = 0.75
#: Normal white-matter ADC in um2/s at 1.5 T.
ADC_WM = 700.0


@dataclass(frozen=True)
class ComponentSpec:
    """One named lesion component and its course.

    Attributes
    ----------
    label : int
        Integer label in the lesion-ID maps.
    name : str
        Component name, e.g. ``"L-parietal"``.
    hemisphere, region : str
        ``"L"``/``"R"`` and a lobar region name.
    centre_mm : tuple of float
        Centre in template (MNI) RAS mm.
    radii_mm : tuple of float
        Semi-axes of the quadratic envelope (x, y, z) in mm.
    flair_ml : tuple of float
        Target FLAIR lesion volume (mL, 1 mm model) at each day of :data:`KEY_DAYS`.
    restricted_ml : tuple of float or None
        Target restricted (DWI lesion) volume (mL) at each key day while the tissue has not
        started to pseudo-normalise; ``None`` entries mean "no separate target": the affected
        extent then equals the FLAIR extent (or the previous affected extent if larger).
    residual_ml : tuple of float
        Volume kept restricted (exempt from pseudo-normalisation) at each key day.
    """

    label: int
    name: str
    hemisphere: str
    region: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    flair_ml: tuple[float, ...]
    restricted_ml: tuple[float | None, ...]
    residual_ml: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


#: The index case: bilateral parietal restriction on day 0 with a left FLAIR correlate, FLAIR
#: bilateral by day 3, a left central focus that becomes confluent with the left parietal
#: lesion, new frontal components by day 45, stable at day 165.
INDEX_COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec(
        1,
        "L-parietal",
        "L",
        "parietal",
        (-25.0, -46.0, 31.0),
        (10.0, 19.0, 13.0),
        flair_ml=(1.0, 3.0, 5.5, 9.5, 9.2),
        restricted_ml=(3.0, 4.5, None, None, None),
    ),
    ComponentSpec(
        2,
        "R-parietal",
        "R",
        "parietal",
        (25.0, -44.0, 31.0),
        (10.0, 18.0, 13.0),
        flair_ml=(0.0, 1.6, 4.5, 8.0, 7.8),
        restricted_ml=(2.5, 4.0, None, None, None),
    ),
    ComponentSpec(
        3,
        "L-central",
        "L",
        "frontoparietal",
        (-24.0, -12.0, 34.0),
        (9.0, 12.0, 11.0),
        flair_ml=(0.0, 0.0, 1.0, 4.5, 4.4),
        restricted_ml=(0.0, 0.5, None, None, None),
        residual_ml=(0.0, 0.0, 0.0, 0.35, 0.0),
    ),
    ComponentSpec(
        4,
        "L-frontal",
        "L",
        "frontal",
        (-23.0, 17.0, 27.0),
        (9.0, 14.0, 11.0),
        flair_ml=(0.0, 0.0, 0.0, 3.5, 3.4),
        restricted_ml=(0.0, 0.0, None, None, None),
    ),
    ComponentSpec(
        5,
        "R-frontal",
        "R",
        "frontal",
        (23.0, 15.0, 27.0),
        (9.0, 14.0, 11.0),
        flair_ml=(0.0, 0.0, 0.0, 3.0, 2.9),
        restricted_ml=(0.0, 0.0, None, None, None),
    ),
)

#: Pseudo-normalisation front (template y, mm): tissue posterior to it has pseudo-normalised.
PN_FRONT_Y = (-300.0, -300.0, -47.0, 300.0, 300.0)
#: rADC of pseudo-normalised tissue at each key day (about 1 early, raised when chronic).
RADC_LATE = (1.0, 1.0, 1.06, 1.15, 1.35)
#: Peak T2 (ms) of FLAIR lesion tissue at each key day.
T2_PEAK_MS = (118.0, 132.0, 145.0, 152.0, 146.0)


def interp_day(day: float, values: tuple[float, ...]) -> float:
    """Piecewise-linear interpolation of a keyframe series at ``day`` (clamped at the ends)."""
    return float(np.interp(day, KEY_DAYS, values))


@dataclass
class ComponentField:
    """A component's spatial field restricted to its bounding box of the model grid."""

    spec: ComponentSpec
    box: tuple[slice, slice, slice]
    phi: np.ndarray
    gate: np.ndarray  # WM gate times WM fraction: maximum lesion fraction per voxel
    y_mm: np.ndarray  # template y coordinate, broadcastable to the box
    radc_core: np.ndarray
    levels: dict[float, float] = field(default_factory=dict)

    def level(self, target_ml: float) -> float:
        """Level of ``phi`` whose WM-gated extent has ``target_ml`` mL (cached)."""
        key = round(float(target_ml), 9)
        if key not in self.levels:
            self.levels[key] = _solve_level(self.phi, self.gate, key)
        return self.levels[key]


@dataclass
class LesionState:
    """Lesion tissue on the model grid at one day (full-size arrays, float32).

    Attributes
    ----------
    day : float
        Day of the session.
    affected, flair, t2_severity, radc : numpy.ndarray
        See the module docstring; shape (X, Y, Z) of the model grid.
    restricted : numpy.ndarray
        DWI lesion tissue fraction ``affected * (radc < 0.75)``.
    flair_by_component, restricted_by_component : dict
        Per-component fractions (in the component's box) for volumes and ID maps.
    """

    day: float
    affected: np.ndarray
    flair: np.ndarray
    t2_severity: np.ndarray
    radc: np.ndarray
    restricted: np.ndarray
    boxes: dict[str, tuple[slice, slice, slice]]
    flair_by_component: dict[str, np.ndarray]
    restricted_by_component: dict[str, np.ndarray]


def _ramp(phi: np.ndarray, level: float, width: float = 0.16) -> np.ndarray:
    return np.clip((phi - level) / width + 0.5, 0.0, 1.0)


def _solve_level(phi: np.ndarray, weight: np.ndarray, target_ml: float) -> float:
    """Level ``L`` with ``sum(ramp(phi, L) * weight) = target`` (mL = 1000 voxels)."""
    if target_ml <= 0:
        return float("inf")
    lo, hi = float(phi.min()) - 1.0, float(phi.max()) + 1.0
    for _ in range(32):
        mid = 0.5 * (lo + hi)
        vol = float((_ramp(phi, mid) * weight).sum()) / 1000.0
        if vol > target_ml:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def jittered_components(seed: int, vary: bool) -> tuple[ComponentSpec, ...]:
    """The index-case components, optionally varied (centres, sizes, volumes) for a cohort.

    Parameters
    ----------
    seed : int
        Case seed.
    vary : bool
        When False the index case is returned unchanged.

    Returns
    -------
    tuple of ComponentSpec
    """
    if not vary:
        return INDEX_COMPONENTS
    out = []
    for spec in INDEX_COMPONENTS:
        rng = rng_for(seed, "component", spec.name)
        scale = float(np.exp(rng.normal(0.0, 0.3)))
        cx, cy, cz = (float(c + rng.normal(0.0, 3.0)) for c in spec.centre_mm)
        rx, ry, rz = (float(r * rng.uniform(0.85, 1.15)) for r in spec.radii_mm)
        centre, radii = (cx, cy, cz), (rx, ry, rz)
        out.append(
            ComponentSpec(
                spec.label,
                spec.name,
                spec.hemisphere,
                spec.region,
                centre,
                radii,
                flair_ml=tuple(v * scale for v in spec.flair_ml),
                restricted_ml=tuple(None if v is None else v * scale for v in spec.restricted_ml),
                residual_ml=tuple(v * scale for v in spec.residual_ml),
            )
        )
    return tuple(out)


def build_component_fields(
    anatomy: Anatomy, specs: tuple[ComponentSpec, ...], seed: int
) -> list[ComponentField]:
    """Build each component's field ``phi``, its white-matter gate and its core rADC.

    Parameters
    ----------
    anatomy : Anatomy
        Head model (the WM fraction confines the lesions).
    specs : tuple of ComponentSpec
        Components to build.
    seed : int
        Case seed (shape of the random fields).

    Returns
    -------
    list of ComponentField
    """
    wm_all = anatomy.tissue("wm")
    inv = np.linalg.inv(anatomy.affine)
    fields = []
    for spec in specs:
        rng = rng_for(seed, "lesion-shape", spec.name)
        centre_vox = inv[:3, :3] @ np.asarray(spec.centre_mm) + inv[:3, 3]
        half = [int(3.2 * r) + 8 for r in spec.radii_mm]
        box = tuple(
            slice(max(0, int(c) - h), min(n, int(c) + h + 1))
            for c, h, n in zip(centre_vox, half, anatomy.shape, strict=True)
        )
        x, y, z = anatomy.mm_coordinates(box)  # type: ignore[arg-type]
        cx, cy, cz = spec.centre_mm
        rx, ry, rz = spec.radii_mm
        q = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2
        shape = tuple(s.stop - s.start for s in box)
        eta = 0.9 * smooth_noise(rng, shape, sigma_vox=5.0) + 0.35 * smooth_noise(
            rng, shape, sigma_vox=2.0
        )
        eta2 = smooth_noise(rng, shape, sigma_vox=6.0)
        phi = (1.0 - q + 0.33 * eta).astype(np.float32)
        wm = wm_all[box]
        gate = (np.clip((wm - 0.45) / 0.15, 0.0, 1.0) * wm).astype(np.float32)
        radc_core = np.clip(0.54 + 0.04 * eta2, 0.46, 0.62).astype(np.float32)
        fields.append(
            ComponentField(spec, box, phi, gate, y, radc_core)  # type: ignore[arg-type]
        )
    return fields


def lesion_state(anatomy: Anatomy, fields: list[ComponentField], day: float) -> LesionState:
    """Lesion tissue of all components at one day.

    Parameters
    ----------
    anatomy : Anatomy
        Head model.
    fields : list of ComponentField
        Component fields from :func:`build_component_fields`.
    day : float
        Day after the index MRI.

    Returns
    -------
    LesionState
    """
    shape = anatomy.shape
    affected = np.zeros(shape, np.float32)
    flair = np.zeros(shape, np.float32)
    sev = np.zeros(shape, np.float32)
    radc = np.ones(shape, np.float32)
    flair_c: dict[str, np.ndarray] = {}
    restr_c: dict[str, np.ndarray] = {}
    boxes: dict[str, tuple[slice, slice, slice]] = {}
    y_front = interp_day(day, PN_FRONT_Y)
    r_late = interp_day(day, RADC_LATE)
    t2_peak = interp_day(day, T2_PEAK_MS)
    sev_peak = (t2_peak - 80.0) / 70.0
    for cf in fields:
        spec = cf.spec
        f_target = interp_day(day, spec.flair_ml)
        lf = cf.level(f_target)
        # affected extent: the largest of the FLAIR extent, the restricted target and every
        # earlier key day's affected extent (tissue once injured stays abnormal)
        la = lf
        for kd, r_ml, f_ml in zip(KEY_DAYS, spec.restricted_ml, spec.flair_ml, strict=True):
            if kd > day:
                break
            lk = cf.level(r_ml if r_ml is not None else f_ml)
            la = min(la, lk)
        idx = int(np.searchsorted(KEY_DAYS, day, side="right")) - 1
        r_now = spec.restricted_ml[idx] if idx >= 0 else None
        if (
            r_now is not None
            and idx + 1 < len(KEY_DAYS)
            and spec.restricted_ml[idx + 1] is not None
        ):
            r_now = interp_day(day, tuple(v or 0.0 for v in spec.restricted_ml))
        if r_now is not None:
            la = min(la, cf.level(r_now))
        a = _ramp(cf.phi, la) * cf.gate
        f = _ramp(cf.phi, lf) * cf.gate
        core = np.clip((cf.phi - lf) / 0.35, 0.0, 1.0)
        s = (sev_peak * (0.55 + 0.45 * core)).astype(np.float32)
        p = 1.0 / (1.0 + np.exp(-(y_front - cf.y_mm) / 4.0))
        res_ml = interp_day(day, spec.residual_ml)
        if res_ml > 0:
            lr = _solve_level(cf.phi, a, res_ml)
            p = p * (1.0 - _ramp(cf.phi, lr))
        p = np.broadcast_to(p, a.shape)
        r = ((1.0 - p) * cf.radc_core + p * r_late).astype(np.float32)
        box = cf.box
        # combine components: keep the larger membership; rADC/severity of the dominant one
        dom = a > affected[box]
        affected[box] = np.maximum(affected[box], a)
        radc[box] = np.where(dom, r, radc[box])
        domf = f > flair[box]
        flair[box] = np.maximum(flair[box], f)
        sev[box] = np.where(domf, s, sev[box])
        flair_c[spec.name] = f.astype(np.float32)
        restr_c[spec.name] = (a * (r < RADC_RESTRICTED)).astype(np.float32)
        boxes[spec.name] = box
    restricted = affected * (radc < RADC_RESTRICTED)
    return LesionState(
        day=day,
        affected=affected,
        flair=flair,
        t2_severity=sev,
        radc=radc,
        restricted=restricted.astype(np.float32),
        boxes=boxes,
        flair_by_component=flair_c,
        restricted_by_component=restr_c,
    )


def empty_state(anatomy: Anatomy, day: float) -> LesionState:
    """A lesion-free state (control case)."""
    z = np.zeros(anatomy.shape, np.float32)
    return LesionState(day, z, z, z, np.ones(anatomy.shape, np.float32), z, {}, {}, {})
