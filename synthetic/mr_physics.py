"""Tissue relaxation/diffusion properties at 1.5 T and the signal equations of each sequence.

Signals are relative magnitudes (proton density 1 = pure water at full relaxation). A voxel's
signal is the volume-fraction-weighted sum of its tissues' signals (partial-volume model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.anatomy import TISSUES, Anatomy
from synthetic.lesions import ADC_WM, LesionState


@dataclass(frozen=True)
class Tissue:
    """MR properties of one tissue at 1.5 T.

    Attributes
    ----------
    pd : float
        Relative proton density.
    t1_ms, t2_ms : float
        Relaxation times in ms (T2 of fat is its effective fast-spin-echo value).
    adc_um2s : float
        Apparent diffusion coefficient in um2/s.
    fat : float
        Fat fraction (suppressed by the fat saturation of the DWI sequence).
    """

    pd: float
    t1_ms: float
    t2_ms: float
    adc_um2s: float
    fat: float = 0.0


TISSUE_PROPERTIES: dict[str, Tissue] = {
    "csf": Tissue(1.00, 4000.0, 2000.0, 3000.0),
    "gm": Tissue(0.82, 1100.0, 95.0, 800.0),
    "wm": Tissue(0.70, 650.0, 75.0, ADC_WM),
    "bone": Tissue(0.03, 500.0, 3.0, 300.0),
    "marrow": Tissue(0.62, 330.0, 110.0, 400.0, fat=0.7),
    "muscle": Tissue(0.75, 870.0, 45.0, 1450.0),
    "fat": Tissue(0.95, 260.0, 130.0, 100.0, fat=1.0),
    "skin": Tissue(0.75, 600.0, 55.0, 1000.0),
}


@dataclass(frozen=True)
class FlairProtocol:
    """2D turbo inversion-recovery (dark fluid) timing in ms."""

    tr: float = 9000.0
    te: float = 86.0
    ti: float = 2500.0

    def signal(self, pd, t1, t2):
        """Magnitude IR-TSE signal ``PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``."""
        mz = 1.0 - 2.0 * np.exp(-self.ti / t1) + np.exp(-self.tr / t1)
        return pd * np.abs(mz) * np.exp(-self.te / t2)


@dataclass(frozen=True)
class DwiProtocol:
    """Single-shot spin-echo EPI diffusion timing in ms, b-value in s/mm2."""

    tr: float = 4500.0
    te: float = 89.0
    b: float = 1000.0
    fat_suppression: float = 0.92

    def b0_signal(self, pd, t1, t2, fat=0.0):
        """T2-weighted b=0 signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` with fat saturation."""
        return (
            pd
            * (1.0 - np.exp(-self.tr / t1))
            * np.exp(-self.te / t2)
            * (1.0 - self.fat_suppression * fat)
        )

    def attenuation(self, adc_um2s):
        """Diffusion attenuation ``exp(-b ADC)`` (ADC in um2/s)."""
        return np.exp(-self.b * np.asarray(adc_um2s) * 1e-6)


@dataclass(frozen=True)
class LocalizerProtocol:
    """Spoiled gradient echo (T1-weighted) localizer."""

    tr: float = 8.6
    te: float = 4.0
    flip_deg: float = 20.0

    def signal(self, pd, t1, t2):
        """Spoiled GRE steady state (T2* approximated by T2)."""
        a = np.deg2rad(self.flip_deg)
        e1 = np.exp(-self.tr / t1)
        return pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-self.te / t2)


FLAIR = FlairProtocol()
DWI = DwiProtocol()
LOCALIZER = LocalizerProtocol()


def lesion_tissue(severity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PD, T1 (ms) and T2 (ms) of FLAIR lesion tissue of a given severity in [0, 1].

    Severity 0 is normal WM, 1 is T2 = 150 ms, T1 = 1050 ms, PD = 0.86.
    """
    s = np.asarray(severity, np.float32)
    return 0.70 + 0.16 * s, 650.0 + 400.0 * s, 75.0 + 75.0 * s


def static_signals(anatomy: Anatomy) -> dict[str, np.ndarray]:
    """Lesion-free signal volumes of each contrast on the model grid.

    Parameters
    ----------
    anatomy : Anatomy
        Head model.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"flair"``, ``"b0"``, ``"b1000"``, ``"localizer"`` and ``"adc"`` (the
        fraction-weighted tissue ADC in um2/s, for reference), each float32 of the model shape.
    """
    out = {k: np.zeros(anatomy.shape, np.float32) for k in ("flair", "b0", "b1000", "localizer")}
    for i, name in enumerate(TISSUES):
        t = TISSUE_PROPERTIES[name]
        frac = anatomy.fractions[i]
        b0 = DWI.b0_signal(t.pd, t.t1_ms, t.t2_ms, t.fat)
        out["flair"] += frac * np.float32(FLAIR.signal(t.pd, t.t1_ms, t.t2_ms))
        out["b0"] += frac * np.float32(b0)
        out["b1000"] += frac * np.float32(b0 * DWI.attenuation(t.adc_um2s))
        out["localizer"] += frac * np.float32(LOCALIZER.signal(t.pd, t.t1_ms, t.t2_ms))
    return out


def session_signals(
    static: dict[str, np.ndarray], anatomy: Anatomy, state: LesionState
) -> dict[str, np.ndarray]:
    """Signal volumes of one session: static anatomy plus that day's lesions.

    Lesion tissue replaces normal white matter: ``affected - flair`` keeps WM relaxation but has
    the lesion ADC; ``flair`` has lesion relaxation (by severity) and the lesion ADC.

    Parameters
    ----------
    static : dict
        Output of :func:`static_signals`.
    anatomy : Anatomy
        Head model.
    state : LesionState
        Lesions of the session.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"flair"``, ``"b0"``, ``"b1000"`` float32 volumes of the model shape.
    """
    out = {k: static[k].copy() for k in ("flair", "b0", "b1000")}
    wm = TISSUE_PROPERTIES["wm"]
    f_wm = np.float32(FLAIR.signal(wm.pd, wm.t1_ms, wm.t2_ms))
    b0_wm = np.float32(DWI.b0_signal(wm.pd, wm.t1_ms, wm.t2_ms))
    att_wm = np.float32(DWI.attenuation(wm.adc_um2s))
    for box in state.boxes.values():
        la = state.affected[box]
        lf = state.flair[box]
        pd, t1, t2 = lesion_tissue(state.t2_severity[box])
        f_les = FLAIR.signal(pd, t1, t2).astype(np.float32)
        b0_les = DWI.b0_signal(pd, t1, t2).astype(np.float32)
        att = DWI.attenuation(state.radc[box] * ADC_WM).astype(np.float32)
        # boxes may overlap: write absolute values computed from the static volumes
        base_f = static["flair"][box]
        base_b0 = static["b0"][box]
        base_b1 = static["b1000"][box]
        out["flair"][box] = base_f + lf * (f_les - f_wm)
        out["b0"][box] = base_b0 + lf * (b0_les - b0_wm)
        out["b1000"][box] = (
            base_b1 + (la - lf) * b0_wm * (att - att_wm) + lf * (b0_les * att - b0_wm * att_wm)
        )
    return out
