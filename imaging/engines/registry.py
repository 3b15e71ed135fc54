"""Engines by name: the built-in ones, plus any a package declares under the entry-point groups
``leukotrack.flair_engines`` and ``leukotrack.dwi_engines`` (a factory taking the pipeline parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from imaging.engines.base import DwiEngine, EngineError, FlairEngine
from imaging.engines.builtin import (
    BUILTIN_DWI,
    BUILTIN_FLAIR,
    CLASSIFIER_FLAIR,
    MIXTURE_FLAIR,
    builtin_dwi,
    builtin_flair,
    classifier_flair,
    mixture_flair,
)
from imaging.engines.samseg import SAMSEG, samseg_flair

__all__ = ["available_engines", "dwi_engine", "flair_engine"]

Factory = Callable[[Any], Any]

_BUILTIN: dict[str, dict[str, Factory]] = {
    "flair": {
        BUILTIN_FLAIR: builtin_flair,
        MIXTURE_FLAIR: mixture_flair,
        CLASSIFIER_FLAIR: classifier_flair,
        SAMSEG: samseg_flair,
    },
    "dwi": {BUILTIN_DWI: builtin_dwi},
}


def _from_entry_point(entry: EntryPoint) -> Factory:
    def factory(options: Any) -> Any:
        return entry.load()(options)

    return factory


def _factories(source: str) -> dict[str, Factory]:
    found = dict(_BUILTIN[source])
    for entry in entry_points(group=f"leukotrack.{source}_engines"):
        found.setdefault(entry.name, _from_entry_point(entry))
    return found


def available_engines() -> dict[str, list[str]]:
    """Registered engine names by source (``flair``, ``dwi``)."""
    return {source: sorted(_factories(source)) for source in _BUILTIN}


def _make(source: str, name: str, options: Any) -> Any:
    factories = _factories(source)
    if name not in factories:
        raise EngineError(
            f"no {source.upper()} engine named {name!r}; choose one of {sorted(factories)}"
        )
    return factories[name](options)


def flair_engine(name: str, options: Any = None) -> FlairEngine:
    """The FLAIR engine called ``name``, built with the pipeline parameters ``options``.

    Raises
    ------
    EngineError
        When no engine of that name is registered, or it is not available on this machine.
    """
    engine = _make("flair", name, options)
    if not isinstance(engine, FlairEngine):
        raise EngineError(f"{name!r} is not a FLAIR engine (no info/segment)")
    return engine


def dwi_engine(name: str, options: Any = None) -> DwiEngine:
    """The DWI engine called ``name`` (see :func:`flair_engine`)."""
    engine = _make("dwi", name, options)
    if not isinstance(engine, DwiEngine):
        raise EngineError(f"{name!r} is not a DWI engine (no info/segment)")
    return engine
