"""Named errors of the follow-up layer that the command line reports as one line (kept free of heavy
imports, so that the CLI can name them without loading the modules that raise them): output folders,
case identities and exports.

The output-folder errors derive from :class:`safeio.errors.OutputError`, so the command line and the
dashboard show them as one readable line like every other named error.
"""

from __future__ import annotations

from safeio.errors import OutputError

__all__ = [
    "CaseIdCollisionError",
    "CorrectionError",
    "ExportError",
    "IncompleteAnalysisError",
    "InvalidCaseIdError",
    "PseudonymKeyError",
]


class ExportError(Exception):
    """Base class of the errors of ``leukotrack export``; the message says what to do."""


class PseudonymKeyError(ExportError):
    """The pseudonym key cannot be kept where asked (it exists, lies inside the export, or the place
    cannot be written); nothing has been written."""


class CaseIdCollisionError(OutputError):
    """Two different input folders would write the same ``OUT/sub-<case>`` (two patients, one id)."""


class InvalidCaseIdError(OutputError):
    """A case id given by the user is not a BIDS label (letters and digits only)."""


class IncompleteAnalysisError(OutputError, FileNotFoundError):
    """An output folder is not a finished analysis: no, a cut or an unreadable provenance.json, or
    a file the analysis wrote is missing."""


class CorrectionError(Exception):
    """A reader's lesion edit cannot be applied or stored (no lesion at the point, a missing reason,
    a case analysed before corrections existed); the case folder and the store are unchanged."""
