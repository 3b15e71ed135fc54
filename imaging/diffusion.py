"""Diffusion: split a DWI series into its b=0 and high-b volumes, and compute ADC maps."""

from __future__ import annotations

import numpy as np

from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.sequence import SequenceClass
from imaging.units import ADC_UNIT

__all__ = ["adc_from_dwi", "split_dwi"]


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
        unit=ADC_UNIT, notes=("ADC computed from the DWI: ln(S0/Sb)/b",)
    )


def split_dwi(dwi: MRImage, min_high_b: float) -> tuple[MRImage, MRImage, float]:
    """The b=0 volume (lowest b) and the highest-b volume (>= ``min_high_b``) of a DWI series."""
    bvals = np.asarray(dwi.bvals_s_mm2 or (), dtype=float)
    if dwi.n_volumes < 2 or bvals.size != dwi.n_volumes:
        raise ImagingError(
            f"{dwi.acquisition.source}: the DWI series needs a b=0 and a b>={min_high_b:g} volume, "
            f"found b-values {bvals.tolist()}"
        )
    high_b = float(bvals.max())
    if high_b < min_high_b or bvals.min() > 50:
        raise ImagingError(
            f"{dwi.acquisition.source}: the DWI series needs a b=0 and a b>={min_high_b:g} volume, "
            f"found b-values {bvals.tolist()}"
        )
    low = [i for i in range(dwi.n_volumes) if bvals[i] == bvals.min()]
    high = [i for i in range(dwi.n_volumes) if bvals[i] == high_b]
    data = np.asarray(dwi.data, dtype=np.float32)
    b0 = dwi.with_data(data[..., low].mean(axis=-1), bvals_s_mm2=[float(bvals.min())])
    b1000 = dwi.with_data(data[..., high].mean(axis=-1), bvals_s_mm2=[high_b])
    return b0, b1000, high_b
