"""`leukotrack export`: the tables as TSV and Parquet, a BIDS dataset_description.json, the FHIR
bundles; and the de-identified export checked for identifiers and dates, none left."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from followup.cli import app
from followup.export import DATE_COLUMNS, FREE_TEXT_COLUMNS, TABLES, export_outputs

pytestmark = pytest.mark.slow
runner = CliRunner()
#: What must not appear in a de-identified export: dates in any common form, and the case folders'
#: names (which hospitals often make from record numbers or initials).
DATE_PATTERNS = [
    r"\b(19|20)\d\d-[01]\d-[0-3]\d",
    r"\b(19|20)\d\d[01]\d[0-3]\d\b",
    r"\b[0-3]\d\.[01]\d\.(19|20)\d\d",
]
IDENTIFYING_COLUMNS = {"PatientName", "PatientID", "PatientBirthDate", "name", "birth_date", "mrn"}


def test_plain_export_keeps_every_table_as_tsv_and_parquet(analyzed_samples, tmp_path):
    summary = export_outputs(analyzed_samples, tmp_path / "export")
    assert summary.cases == ["cnsmyeloma", "indexcase"]
    for case in summary.cases:
        for table in TABLES:
            source = analyzed_samples / f"sub-{case}" / f"{table}.tsv"
            if not source.is_file():
                continue
            exported = tmp_path / "export" / f"sub-{case}" / table
            assert exported.with_suffix(".tsv").read_text() == pd.read_csv(
                source, sep="\t", dtype=str, keep_default_na=False
            ).to_csv(sep="\t", index=False)
            parquet = pd.read_parquet(exported.with_suffix(".parquet"))
            original = pd.read_csv(source, sep="\t")
            assert list(parquet.columns) == list(original.columns)
            assert len(parquet) == len(original)
            for column in original.select_dtypes("number").columns:
                pd.testing.assert_series_equal(
                    parquet[column].astype(float), original[column].astype(float), check_names=False
                )
    description = json.loads((tmp_path / "export" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert {"Name", "BIDSVersion", "GeneratedBy"} <= set(description)
    assert description["GeneratedBy"][0]["Name"] == "leukotrack"
    bundle = json.loads(
        (tmp_path / "export" / "sub-indexcase" / "medication_administrations.fhir.json").read_text()
    )
    assert bundle["resourceType"] == "Bundle"


def test_deidentified_export_has_no_identifiers_and_no_dates(analyzed_samples, tmp_path):
    key = tmp_path / "key" / "pseudonyms.tsv"
    result = runner.invoke(
        app,
        [
            "export",
            str(analyzed_samples),
            "--to",
            str(tmp_path / "deid"),
            "--deidentify",
            "--key",
            str(key),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "deid"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["sub-P001", "sub-P002"]
    assert key.read_text().splitlines()[1:] == ["cnsmyeloma\tP001", "indexcase\tP002"]
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes().decode("latin-1")
        for original in ("indexcase", "cnsmyeloma"):
            assert original not in raw, (path, original)
        for pattern in DATE_PATTERNS:
            assert not re.search(pattern, raw), (path, pattern)
        assert path.suffix in {".tsv", ".parquet", ".json"}  # no provenance, FHIR, images
        if path.suffix == ".tsv":
            columns = set(pd.read_csv(path, sep="\t", nrows=0).columns)
            assert not columns & (DATE_COLUMNS | FREE_TEXT_COLUMNS | IDENTIFYING_COLUMNS), path
    assert not list(folder.rglob("*.fhir.json"))
    assert not list(folder.rglob("provenance.json"))
    # what the statistician needs is still there: days and volumes, sessions by order
    sessions = pd.read_csv(folder / "sub-P002" / "sessions.tsv", sep="\t")
    original = pd.read_csv(analyzed_samples / "sub-indexcase" / "sessions.tsv", sep="\t")
    assert sessions["session_id"].tolist() == ["ses-01", "ses-02", "ses-03", "ses-04", "ses-05"]
    assert sessions["day"].tolist() == original["day"].tolist()
    assert (
        sessions["flair_lesion_volume_ml"].tolist() == original["flair_lesion_volume_ml"].tolist()
    )


def test_export_refuses_to_overwrite_and_to_keep_the_key_inside(analyzed_samples, tmp_path):
    (tmp_path / "taken").mkdir()
    result = runner.invoke(app, ["export", str(analyzed_samples), "--to", str(tmp_path / "taken")])
    assert result.exit_code == 1 and "choose a new folder" in result.output
    inside = runner.invoke(
        app,
        [
            "export",
            str(analyzed_samples),
            "--to",
            str(tmp_path / "e"),
            "--deidentify",
            "--key",
            str(tmp_path / "e" / "key.tsv"),
        ],
    )
    assert inside.exit_code == 1 and "outside the export folder" in inside.output
    assert not (tmp_path / "e").exists()
    empty = runner.invoke(app, ["export", str(tmp_path / "taken"), "--to", str(tmp_path / "x")])
    assert empty.exit_code == 1 and "no analysed case" in empty.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder
