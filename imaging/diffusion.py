"""Diffusion: what a DWI series holds (trace, b=0, b-value), ADC maps, and which DWI input kind it is.

Clinical exports carry DWI in several forms; each is accepted and what it allows is stated:

========================  =================================================================
input kind                what is measured
========================  =================================================================
``b0+trace+adc``          DWI lesions (trace hyperintense and ADC restricted), scanner ADC
``b0+trace``              the same, with ADC computed as ln(S0/Sb)/b
``trace+adc``             the same with the scanner ADC; no b=0 (registration uses the trace)
``trace``                 trace hyperintensity only: restriction cannot be told from T2
                          shine-through, so ADC, rADC and the lesions' ADC stay empty
========================  =================================================================

The trace is the highest-b volume of the series (b >= ``min_high_b``, 500 s/mm2 by default: 800,
1000, 2500 are all accepted); the b=0 is the lowest-b volume when that is at most ``max_low_b``
(50 s/mm2: some scanners store b = 5 or 10 for their "b=0").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.errors import DwiInputError
from imaging.image import MRImage
from imaging.sequence import SequenceClass
from imaging.units import ADC_UNIT

__all__ = ["DwiVolumes", "adc_from_dwi", "dwi_input_kind", "split_dwi"]


def adc_from_dwi(b0: MRImage, high: MRImage, b_value_s_mm2: float) -> MRImage:
    """ADC = ln(S0 / Sb) / b, in um2/s, on the DWI grid (0 where either signal is not positive).

    >>> import numpy as np
    >>> s0 = MRImage(np.full((7, 8, 9), 1000.0), np.eye(4))
    >>> sb = s0.with_data(np.full((7, 8, 9), 1000.0 * np.exp(-1000 * 0.0007)))
    >>> round(float(adc_from_dwi(s0, sb, 1000.0).data[0, 0, 0]), 3)
    700.0
    """
    s0 = np.asarray(b0.data, dtype=np.float64)
    sb = np.asarray(high.data, dtype=np.float64)
    valid = (s0 > 0) & (sb > 0)
    adc = np.zeros(s0.shape, dtype=np.float32)
    adc[valid] = np.log(s0[valid] / sb[valid]) / b_value_s_mm2 * 1e6
    adc = np.clip(adc, 0.0, 5000.0)
    return high.with_data(adc, sequence=SequenceClass.ADC, bvals_s_mm2=None).with_acquisition(
        unit=ADC_UNIT, notes=(f"ADC computed from the DWI: ln(S0/Sb)/b, b = {b_value_s_mm2:g}",)
    )


@dataclass(frozen=True)
class DwiVolumes:
    """The volumes of one DWI series that the pipeline uses.

    Attributes
    ----------
    trace : MRImage
        3-D diffusion-weighted (trace) image at ``b_value_s_mm2``: the mean of the series' volumes
        at its highest b-value.
    b_value_s_mm2 : float
        The trace's b-value, s/mm2.
    b0 : MRImage or None
        3-D mean of the volumes at the lowest b-value when that is a b=0 (<= ``max_low_b``);
        ``None`` when the series holds the trace only.
    """

    trace: MRImage
    b_value_s_mm2: float
    b0: MRImage | None


def split_dwi(dwi: MRImage, min_high_b: float = 500.0, max_low_b: float = 50.0) -> DwiVolumes:
    """The trace (highest b, >= ``min_high_b``) and, when present, the b=0 of a DWI series.

    Parameters
    ----------
    dwi : MRImage
        3-D (one volume) or 4-D DWI series with one b-value (s/mm2) per volume.
    min_high_b : float
        Smallest b-value (s/mm2) accepted for the trace.
    max_low_b : float
        Largest b-value (s/mm2) that counts as b=0.

    Raises
    ------
    DwiInputError
        When the b-values are missing, or no volume has b >= ``min_high_b``.

    >>> import numpy as np
    >>> trace = MRImage(np.ones((4, 5, 6)), np.eye(4), sequence="DWI", bvals_s_mm2=[800.0])
    >>> volumes = split_dwi(trace)
    >>> volumes.b0 is None, volumes.b_value_s_mm2
    (True, 800.0)
    """
    bvals = np.asarray(dwi.bvals_s_mm2 or (), dtype=float)
    source = dwi.acquisition.source or "the DWI series"
    if bvals.size != dwi.n_volumes:
        raise DwiInputError(
            f"{source}: {bvals.size} b-value(s) for {dwi.n_volumes} volume(s); give one b-value "
            "per volume (a .bval file beside a NIfTI DWI, or the DICOM diffusion tags)"
        )
    high_b = float(bvals.max())
    if high_b < min_high_b:
        raise DwiInputError(
            f"{source}: the DWI series needs a diffusion-weighted (trace) volume at "
            f"b >= {min_high_b:g} s/mm2, found b-values {bvals.tolist()}"
        )
    data = np.asarray(dwi.data, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., np.newaxis]
    high = [i for i in range(dwi.n_volumes) if bvals[i] == high_b]
    trace = dwi.with_data(data[..., high].mean(axis=-1), bvals_s_mm2=[high_b])
    low_b = float(bvals.min())
    b0 = None
    if low_b <= max_low_b:
        low = [i for i in range(dwi.n_volumes) if bvals[i] == low_b]
        b0 = dwi.with_data(data[..., low].mean(axis=-1), bvals_s_mm2=[low_b])
    return DwiVolumes(trace=trace, b_value_s_mm2=high_b, b0=b0)


def dwi_input_kind(*, has_b0: bool, has_scanner_adc: bool) -> str:
    """The input kind of the module table: ``b0+trace+adc``, ``b0+trace``, ``trace+adc``, ``trace``.

    >>> dwi_input_kind(has_b0=False, has_scanner_adc=True)
    'trace+adc'
    """
    return ("b0+" if has_b0 else "") + "trace" + ("+adc" if has_scanner_adc else "")
