"""Lesion segmentation engines behind one seam (:mod:`imaging.engines.base`), chosen by name.

>>> from imaging.engines import available_engines
>>> available_engines()["flair"][:1], available_engines()["dwi"][:1]
(['local-contrast'], ['restricted-diffusion'])
"""

from imaging.engines.base import (
    DwiEngine,
    DwiInputs,
    EngineError,
    EngineInfo,
    FlairEngine,
    FlairInputs,
    LesionMap,
    file_sha256,
)
from imaging.engines.builtin import BUILTIN_DWI, BUILTIN_FLAIR
from imaging.engines.registry import available_engines, dwi_engine, flair_engine

__all__ = [
    "BUILTIN_DWI",
    "BUILTIN_FLAIR",
    "DwiEngine",
    "DwiInputs",
    "EngineError",
    "EngineInfo",
    "FlairEngine",
    "FlairInputs",
    "LesionMap",
    "available_engines",
    "dwi_engine",
    "file_sha256",
    "flair_engine",
]
