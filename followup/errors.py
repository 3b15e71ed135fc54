"""Named errors of the orchestration layer (output folders, case identities).

They derive from :class:`safeio.errors.OutputError`, so the command line and the dashboard show them
as one readable line like every other named error.
"""

from __future__ import annotations

from safeio.errors import OutputError

__all__ = ["CaseIdCollisionError", "IncompleteAnalysisError", "InvalidCaseIdError"]


class CaseIdCollisionError(OutputError):
    """Two different input folders would write the same ``OUT/sub-<case>`` (two patients, one id)."""


class InvalidCaseIdError(OutputError):
    """A case id given by the user is not a BIDS label (letters and digits only)."""


class IncompleteAnalysisError(OutputError, FileNotFoundError):
    """An output folder is not a finished analysis: no, a cut or an unreadable provenance.json, or
    a file the analysis wrote is missing."""
