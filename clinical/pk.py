"""Daratumumab population pharmacokinetics: typical-patient serum curves solved with scipy.

Two published two-compartment models with parallel linear and time-decaying Michaelis-Menten
(target-mediated) elimination, as encoded in nlmixr2lib (``Xu_2020_daratumumab.R``,
``Luo_2021_daratumumab.R``). Units throughout: time in hours, dose in mg, volume in L,
concentration in ug/mL (= mg/L). The curves are indicative population curves for a typical
patient with the given covariates, with no inter-individual variability: not individual estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp

ROUTES = ("IV", "SC")
_EPS_H = 1e-9  # tolerance when matching breakpoints, h


class PkInputError(ValueError):
    """Bad dosing or covariate input; the message says what to change."""


@dataclass(frozen=True)
class PkCovariates:
    """Patient covariates of the PK models; ``None`` means unknown (model reference used).

    Parameters
    ----------
    weight_kg : float or None
        Body weight, kg.
    albumin_g_l : float or None
        Serum albumin, g/L (not g/dL: 3.7 g/dL is 37 g/L).
    igg_myeloma : bool or None
        True for IgG-type myeloma (higher linear clearance through FcRn competition).
    sex : {"F", "M"} or None
        Biological sex.
    """

    weight_kg: float | None = None
    albumin_g_l: float | None = None
    igg_myeloma: bool | None = None
    sex: str | None = None

    def assumed(self) -> list[str]:
        """Names of the covariates that are unknown (``None``) and will take reference values."""
        return [f.name for f in fields(self) if getattr(self, f.name) is None]


@dataclass(frozen=True)
class IndividualParameters:
    """Typical-value parameters for one covariate set (CL, Q in L/h; V1, V2 in L; Vmax0 in mg/h;
    KDES, ka in 1/h; Km in ug/mL; bioavailability as a fraction; ka/F ``None`` without SC)."""

    cl_l_h: float
    v1_l: float
    q_l_h: float
    v2_l: float
    vmax0_mg_h: float
    kdes_per_h: float
    km_ug_ml: float
    ka_per_h: float | None
    bioavailability: float | None


@dataclass(frozen=True)
class DaratumumabModel:
    """A published daratumumab population PK model (typical values and covariate effects).

    ``CL = cl * (WT/ref_wt)**wt_exp_cl * (ALB/ref_alb)**alb_exp_cl * (igg_factor_cl if IgG)`` and
    ``V1 = v1 * (WT/ref_wt)**wt_exp_v1 * (female_factor_v1 if F else male_factor_v1)``; units as
    in :class:`IndividualParameters`. The reference patient is non-IgG, of sex ``reference_sex``.
    """

    name: str
    citation: str
    cl_l_h: float
    v1_l: float
    q_l_h: float
    v2_l: float
    vmax0_mg_h: float
    kdes_per_h: float
    km_ug_ml: float
    wt_exp_cl: float
    alb_exp_cl: float
    igg_factor_cl: float
    wt_exp_v1: float
    female_factor_v1: float
    male_factor_v1: float
    reference_sex: str
    reference_weight_kg: float = 78.6
    reference_albumin_g_l: float = 37.0
    ka_per_h: float | None = None
    bioavailability: float | None = None

    def resolved(self, covariates: PkCovariates | None = None) -> PkCovariates:
        """The covariates with unknown values replaced by this model's reference values.

        Raises
        ------
        PkInputError
            If weight or albumin is not a positive number or sex is not "F" or "M".
        """
        c = covariates or PkCovariates()
        for label, value in (("weight_kg", c.weight_kg), ("albumin_g_l", c.albumin_g_l)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise PkInputError(f"{label} must be a positive number or None, got {value!r}")
        if c.sex is not None and c.sex not in ("F", "M"):
            raise PkInputError(f'sex must be "F", "M" or None, got {c.sex!r}')
        return PkCovariates(
            weight_kg=self.reference_weight_kg if c.weight_kg is None else float(c.weight_kg),
            albumin_g_l=self.reference_albumin_g_l if c.albumin_g_l is None else c.albumin_g_l,
            igg_myeloma=False if c.igg_myeloma is None else bool(c.igg_myeloma),
            sex=self.reference_sex if c.sex is None else c.sex,
        )

    def individual(self, covariates: PkCovariates | None = None) -> IndividualParameters:
        """Typical-value parameters for ``covariates`` (unknown ones at reference values)."""
        c = self.resolved(covariates)
        assert c.weight_kg is not None and c.albumin_g_l is not None  # filled by resolved()
        wt = c.weight_kg / self.reference_weight_kg
        alb = c.albumin_g_l / self.reference_albumin_g_l
        cl = self.cl_l_h * wt**self.wt_exp_cl * alb**self.alb_exp_cl
        cl *= self.igg_factor_cl if c.igg_myeloma else 1.0
        v1 = self.v1_l * wt**self.wt_exp_v1
        v1 *= self.female_factor_v1 if c.sex == "F" else self.male_factor_v1
        return IndividualParameters(
            cl, v1, self.q_l_h, self.v2_l, self.vmax0_mg_h, self.kdes_per_h, self.km_ug_ml,
            self.ka_per_h, self.bioavailability,
        )  # fmt: skip

    def terminal_half_life_days(self, covariates: PkCovariates | None = None) -> float:
        """Beta-phase half-life of the linear two-compartment part (target saturated), days."""
        p = self.individual(covariates)
        k10, k12, k21 = p.cl_l_h / p.v1_l, p.q_l_h / p.v1_l, p.q_l_h / p.v2_l
        s = k10 + k12 + k21
        beta = (s - math.sqrt(s * s - 4.0 * k10 * k21)) / 2.0
        return math.log(2.0) / beta / 24.0

    def linear_half_life_days(self, covariates: PkCovariates | None = None) -> float:
        """Elimination half-life from k10 alone, ``ln2 * V1 / CL``, days (cf. 18 d on the label)."""
        p = self.individual(covariates)
        return math.log(2.0) * p.v1_l / p.cl_l_h / 24.0


XU_2020_IV = DaratumumabModel(
    name="Xu 2020 IV",
    citation=(
        "Xu XS, Moreau P, Usmani SZ, et al. Split first dose administration of intravenous "
        "daratumumab for the treatment of multiple myeloma: clinical and population "
        "pharmacokinetic analyses. Adv Ther. 2020;37(4):1464-1478. doi:10.1007/s12325-020-01247-8"
    ),
    cl_l_h=0.00485,
    v1_l=4.09,
    q_l_h=0.0642,
    v2_l=3.06,
    vmax0_mg_h=2.08,
    kdes_per_h=0.0013,
    km_ug_ml=0.93,
    wt_exp_cl=0.451,
    alb_exp_cl=-1.149,
    igg_factor_cl=1.806,
    wt_exp_v1=0.375,
    female_factor_v1=0.795,
    male_factor_v1=1.0,
    reference_sex="M",
)

LUO_2021_SC = DaratumumabModel(
    name="Luo 2021 SC+IV",
    citation=(
        "Luo MM, Usmani SZ, Mateos MV, et al. Exposure-response and population pharmacokinetic "
        "analyses of a novel subcutaneous formulation of daratumumab administered to multiple "
        "myeloma patients. J Clin Pharmacol. 2021;61(5):614-627. doi:10.1002/jcph.1771"
    ),
    cl_l_h=0.00496,
    v1_l=5.25,
    q_l_h=0.00955,
    v2_l=3.78,
    vmax0_mg_h=1.15,
    kdes_per_h=0.0000783,
    km_ug_ml=2.56,
    wt_exp_cl=1.24,
    alb_exp_cl=-1.85,
    igg_factor_cl=2.26,
    wt_exp_v1=0.91,
    female_factor_v1=1.0,
    male_factor_v1=0.895,
    reference_sex="F",
    ka_per_h=0.0117,
    bioavailability=0.689,
)


@dataclass(frozen=True)
class Dose:
    """One daratumumab administration.

    Parameters
    ----------
    time_h : float
        Start time, hours, on any origin shared with the other doses and the requested times.
    amount_mg : float
        Dose, mg (for SC the nominal dose; the model applies bioavailability).
    route : {"IV", "SC"}
        Intravenous infusion or subcutaneous injection.
    duration_h : float
        IV infusion length, hours; ``<= 0`` means an instantaneous bolus. Ignored for SC.
    """

    time_h: float
    amount_mg: float
    route: str
    duration_h: float = 0.0


def _validated(doses: Sequence[Dose]) -> list[Dose]:
    dose_list = list(doses)
    if not dose_list:
        raise PkInputError("no doses given: pass at least one Dose(time_h, amount_mg, route)")
    for d in dose_list:
        if d.route not in ROUTES:
            raise PkInputError(f'unknown route {d.route!r}: use "IV" or "SC"')
        if not (math.isfinite(d.amount_mg) and d.amount_mg >= 0):
            raise PkInputError(f"dose amount must be a finite mg value >= 0, got {d.amount_mg!r}")
        if not (math.isfinite(d.time_h) and math.isfinite(d.duration_h)):
            raise PkInputError(f"dose time and duration must be finite hours, got {d!r}")
    return dose_list


def choose_model(doses: Sequence[Dose]) -> DaratumumabModel:
    """Luo 2021 if any dose is SC (fit to SC and IV together), else Xu 2020 (IV only)."""
    return LUO_2021_SC if any(d.route == "SC" for d in _validated(doses)) else XU_2020_IV


def simulate(
    doses: Sequence[Dose],
    times_h: ArrayLike,
    covariates: PkCovariates | None = None,
    model: DaratumumabModel | None = None,
) -> NDArray[np.float64]:
    """Typical-patient serum daratumumab concentration at the requested times.

    Parameters
    ----------
    doses : sequence of Dose
        The administrations, in any order.
    times_h : array_like of float
        Times, hours, on the doses' origin; any order. Times before the first dose give 0.
        At a bolus time the post-dose value is returned.
    covariates : PkCovariates, optional
        Unknown covariates take the model's reference values.
    model : DaratumumabModel, optional
        Defaults to :func:`choose_model`.

    Returns
    -------
    numpy.ndarray of float64
        Central (serum) concentration, ug/mL, shaped like ``times_h``.

    Raises
    ------
    PkInputError
        Bad doses, covariates or times, or an SC dose with a model that has no absorption.
    """
    dose_list = _validated(doses)
    m = model or choose_model(dose_list)
    p = m.individual(covariates)
    if p.ka_per_h is None and any(d.route == "SC" for d in dose_list):
        raise PkInputError(f"{m.name} has no SC absorption: use LUO_2021_SC for SC doses")
    times = np.asarray(times_h, dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise PkInputError("times_h must be finite hours")
    out = np.zeros(times.shape, dtype=np.float64)
    t0 = min(d.time_h for d in dose_list)
    rel = times - t0  # hours since the first dose: Vmax decays on this clock
    if rel.size == 0 or rel.max() < 0:
        return out
    t_end = float(rel.max())

    ka, f_sc = p.ka_per_h or 0.0, 1.0 if p.bioavailability is None else p.bioavailability
    k10, k12, k21 = p.cl_l_h / p.v1_l, p.q_l_h / p.v1_l, p.q_l_h / p.v2_l
    v1, km, vmax0, kdes = p.v1_l, p.km_ug_ml, p.vmax0_mg_h, p.kdes_per_h
    infusions: list[tuple[float, float, float]] = []  # (start h, end h, rate mg/h)
    instants: list[tuple[float, float, float]] = []  # (time h, mg into depot, mg into central)
    for d in dose_list:
        start = d.time_h - t0
        if d.route == "SC":
            instants.append((start, f_sc * d.amount_mg, 0.0))
        elif d.duration_h > 0:
            infusions.append((start, start + d.duration_h, d.amount_mg / d.duration_h))
        else:
            instants.append((start, 0.0, d.amount_mg))
    marks = {t for t, _, _ in instants} | {s for s, _, _ in infusions}
    marks |= {e for _, e, _ in infusions}
    bounds = [*sorted(b for b in marks if b < t_end), t_end]

    def rhs(t: float, y: NDArray[np.float64], rate: float) -> list[float]:
        c = y[1] / v1
        mm = vmax0 * math.exp(-kdes * t) * c / (km + c)
        return [
            -ka * y[0],
            ka * y[0] + rate - (k10 + k12) * y[1] - mm + k21 * y[2],
            k12 * y[1] - k21 * y[2],
        ]

    def jac(t: float, y: NDArray[np.float64], rate: float) -> NDArray[np.float64]:
        c = y[1] / v1
        dmm = vmax0 * math.exp(-kdes * t) * km / (v1 * (km + c) ** 2)
        return np.array([[-ka, 0.0, 0.0], [ka, -k10 - k12 - dmm, k21], [0.0, k12, -k21]])

    def apply_instants(at: float, y: NDArray[np.float64]) -> None:
        for t, depot, central in instants:
            if abs(t - at) <= _EPS_H:
                y[0] += depot
                y[1] += central

    solver = {"method": "LSODA", "jac": jac, "dense_output": True, "rtol": 1e-7, "atol": 1e-8}
    y = np.zeros(3)
    for a, b in pairwise(bounds):
        apply_instants(a, y)
        rate = sum(r for s, e, r in infusions if s <= a + _EPS_H and e > a + _EPS_H)
        sol = solve_ivp(rhs, (a, b), y, args=(rate,), **solver)
        if not sol.success:
            raise RuntimeError(f"ODE solver failed between {a} and {b} h: {sol.message}")
        inside = (rel >= a) & (rel < b)
        if inside.any():
            out[inside] = np.maximum(sol.sol(rel[inside])[1], 0.0) / v1
        y = sol.y[:, -1].copy()
    apply_instants(t_end, y)
    out[rel == t_end] = max(y[1], 0.0) / v1
    return out


@dataclass
class PkCurve:
    """A simulated curve with its provenance.

    Attributes
    ----------
    times_h, concentration_ug_ml : numpy.ndarray
        Times, hours (the caller's origin), and serum concentration, ug/mL.
    model : str
        Model name, e.g. "Xu 2020 IV".
    covariates : PkCovariates
        Covariates used, unknown ones filled with the model's reference values.
    assumed : list of str
        Covariates that were unknown and taken at the model's reference.
    label : str
        Caption for display: an indicative population curve, not an individual estimate.
    """

    times_h: NDArray[np.float64]
    concentration_ug_ml: NDArray[np.float64]
    model: str
    covariates: PkCovariates
    assumed: list[str]
    label: str


def curve(
    doses: Sequence[Dose],
    times_h: ArrayLike,
    covariates: PkCovariates | None = None,
    model: DaratumumabModel | None = None,
) -> PkCurve:
    """:func:`simulate` wrapped with the model name, covariates used and the display label."""
    m = model or choose_model(doses)
    given = covariates or PkCovariates()
    times = np.asarray(times_h, dtype=np.float64)
    return PkCurve(
        times_h=times,
        concentration_ug_ml=simulate(doses, times, given, m),
        model=m.name,
        covariates=m.resolved(given),
        assumed=given.assumed(),
        label=f"indicative population curve (typical patient of {m.name}), not an individual estimate",
    )
