"""Named errors of the follow-up layer that the command line reports as one line (kept free of heavy
imports, so that the CLI can name them without loading the modules that raise them)."""

from __future__ import annotations

__all__ = ["ExportError", "PseudonymKeyError"]


class ExportError(Exception):
    """Base class of the errors of ``leukotrack export``; the message says what to do."""


class PseudonymKeyError(ExportError):
    """The pseudonym key cannot be kept where asked (it exists, lies inside the export, or the place
    cannot be written); nothing has been written."""
