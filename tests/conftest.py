"""Shared fixtures: where the real scans are, and where the sample case is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SCANS = REPO / "sample_scans"


def realdata_root() -> Path:
    """``$LEUKOTRACK_REALDATA`` or ``../shared/realdata`` beside the repository."""
    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real scans folder; the test is skipped when it is absent."""
    root = realdata_root()
    if not root.is_dir():
        pytest.skip(f"real scans not found at {root} (set LEUKOTRACK_REALDATA)")
    return root


@pytest.fixture(scope="session")
def sample_case() -> Path:
    """The bundled sample case (sample_scans/indexcase)."""
    case = SAMPLE_SCANS / "indexcase"
    if not (case / "DICOM").is_dir():
        pytest.fail("sample_scans/indexcase is missing: run `make samples`")
    return case
