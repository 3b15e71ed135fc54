"""The layers of DESIGN.md §2, checked on the source: imaging and clinical import neither each other,
nor the store, nor Streamlit; only dashboard/ imports streamlit. safeio/ (atomic writes, output
errors) sits below every layer: it imports no part of leukotrack, and every layer may import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "imaging": {"clinical", "followup", "dashboard", "streamlit", "sqlalchemy", "synthetic"},
    "clinical": {"imaging", "followup", "dashboard", "streamlit", "sqlalchemy", "synthetic"},
    "followup": {"dashboard", "streamlit"},
    "synthetic": {"followup", "dashboard", "streamlit"},
    "dashboard": {"synthetic"},
    "safeio": {
        "imaging",
        "clinical",
        "followup",
        "dashboard",
        "synthetic",
        "streamlit",
        "sqlalchemy",
        "numpy",
        "pandas",
    },
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(package):
    folder = REPO / package
    if not folder.is_dir():
        pytest.skip(f"{package}/ does not exist yet")
    offences = {
        str(path.relative_to(REPO)): sorted(_imports(path) & FORBIDDEN[package])
        for path in folder.rglob("*.py")
    }
    assert {k: v for k, v in offences.items() if v} == {}


def test_the_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("import streamlit as st\nfrom followup.cli import app\n")
    assert _imports(bad) >= {"streamlit", "followup"}
