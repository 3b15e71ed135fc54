"""`leukotrack export`: the tables as TSV and Parquet, a BIDS dataset_description.json, the FHIR
bundles; and the de-identified export checked for identifiers and dates, none left."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from followup.cli import app
from followup.export import DATE_COLUMNS, FREE_TEXT_COLUMNS, TABLES, export_outputs
from tests.conftest import SAMPLE_SCANS as SAMPLE

pytestmark = pytest.mark.slow
runner = CliRunner()
#: What must not appear in a de-identified export: dates in any common form, and the case folders'
#: names (which hospitals often make from record numbers or initials).
DATE_PATTERNS = [
    r"\b(19|20)\d\d-[01]\d-[0-3]\d",
    r"\b(19|20)\d\d[01]\d[0-3]\d\b",
    r"\b[0-3]\d\.[01]\d\.(19|20)\d\d",
]
#: The dummy value of date attributes that must keep one (PS3.15 action D).
DUMMY_DATE = "19000101"
#: The dummy value of text attributes that must keep one (Device Serial Number of a SEG, Type 1).
DUMMY_TEXT = "ANONYMIZED"
#: Attributes of PS3.15 Table E.1-1 that a SEG derived from an MR study can carry. After
#: de-identification each is absent or empty (dates: at most the dummy); Patient's Name and ID hold
#: the pseudonym.
IDENTIFYING_TAGS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "DeviceSerialNumber",
    "ContentCreatorName",
    "RequestingPhysician",
    "PatientComments",
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
    # the DICOM SEG objects verbatim, and one report per case
    assert summary.dicom == 9
    for original in (analyzed_samples / "sub-indexcase").glob("ses-*/*_seg.dcm"):
        copy = tmp_path / "export" / "sub-indexcase" / original.parent.name / original.name
        assert copy.read_bytes() == original.read_bytes()
    assert "indexcase" in _pdf_text(
        tmp_path / "export" / "sub-indexcase" / "sub-indexcase_report.pdf"
    )


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
    assert f"pseudonym key kept in {key}" in result.output.replace("\n", "")
    folder = tmp_path / "deid"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["sub-P001", "sub-P002"]
    assert key.read_text().splitlines()[1:] == ["cnsmyeloma\tP001", "indexcase\tP002"]
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes().decode("latin-1")
        if path.suffix == ".pdf":  # the text a reader sees, and the document's metadata
            raw = _pdf_text(path)
            assert "P00" in raw and "De-identified" in raw, path
        if path.suffix == ".dcm":  # the profile's dummy date (checked attribute by attribute below)
            raw = raw.replace(DUMMY_DATE, "")
        for original in ("indexcase", "cnsmyeloma"):
            assert original not in raw, (path, original)
        for pattern in DATE_PATTERNS:
            assert not re.search(pattern, raw), (path, pattern)
        assert path.suffix in {".tsv", ".parquet", ".json", ".dcm", ".pdf"}  # no FHIR, NIfTI
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
    report = _pdf_text(folder / "sub-P002" / "sub-P002_report.pdf")
    assert "Follow-up of case P002" in report and "ses-05" in report
    peak_ml = f"{max(original['flair_lesion_volume_ml']):.2f}"
    assert peak_ml in report and "165" in report  # peak FLAIR volume (mL), last day


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


def test_deidentified_export_without_a_key_says_it_kept_none(analyzed_samples, tmp_path):
    result = runner.invoke(
        app, ["export", str(analyzed_samples), "--to", str(tmp_path / "d"), "--deidentify"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "no pseudonym key kept (--key)" in said and "cannot be traced back" in said
    assert not [p for p in tmp_path.rglob("*.tsv") if "key" in p.name or "pseudonym" in p.name]
    plain = runner.invoke(app, ["export", str(analyzed_samples), "--to", str(tmp_path / "p")])
    assert plain.exit_code == 0 and "pseudonym" not in plain.output


def _pdf_text(path: Path) -> str:
    """What pdftotext and pdfinfo read from a PDF (poppler-utils; CI installs it)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    return "\n".join(
        subprocess.run([tool, str(path), *extra], check=True, capture_output=True, text=True).stdout
        for tool, extra in (("pdftotext", ["-"]), ("pdfinfo", []))
    )


def _elements(dataset: pydicom.Dataset):
    """Every data element, nested ones included."""
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from _elements(item)


def _instance_uids(dataset: pydicom.Dataset) -> set[str]:
    """The instance UIDs of an object (not SOP classes, transfer syntaxes or coding schemes)."""
    return {
        str(value)
        for element in _elements(dataset)
        if element.VR == "UI" and not element.keyword.endswith("ClassUID")
        for value in (element.value if element.VM > 1 else [element.value])
        if value
    }


def test_deidentified_dicom_seg_follows_the_basic_confidentiality_profile(
    analyzed_samples, tmp_path
):
    import highdicom as hd

    from tests.test_dicom_seg import dciodvfy_errors

    export_outputs(analyzed_samples, tmp_path / "deid", deidentify=True)
    originals = sorted((analyzed_samples / "sub-indexcase").glob("ses-*/*_seg.dcm"))
    exported = sorted((tmp_path / "deid" / "sub-P002").glob("ses-*/*_seg.dcm"))
    assert [p.name.split("_")[-2] for p in exported] == [p.name.split("_")[-2] for p in originals]
    assert [p.parent.name for p in exported] == ["ses-01"] * 2 + ["ses-02"] * 2 + ["ses-03"] * 2 + [
        "ses-04"
    ] * 2 + ["ses-05"]
    # what identifies the patient in the sample's DICOM headers (one header per study)
    from imaging.dicom.files import iter_files

    secrets: set[str] = set()
    for study in sorted((SAMPLE / "indexcase" / "DICOM" / "PT000000").iterdir()):
        header = pydicom.dcmread(next(iter_files(study)), stop_before_pixels=True)
        for keyword in [*IDENTIFYING_TAGS, "StudyInstanceUID", "FrameOfReferenceUID"]:
            value = str(header.get(keyword, "") or "")
            # short numbers could occur by chance inside the export's random UIDs
            if len(value) >= 8 or (len(value) >= 4 and not value.isdigit()):
                secrets.add(value)
    assert {"DEMO^INDEXCASE", "LTDEMO0001", "19610822", "Leukotrack Demo Hospital"} <= secrets
    tracking: dict[str, set[str]] = {}
    for original_path, path in zip(originals, exported, strict=True):
        raw = path.read_bytes()
        original = pydicom.dcmread(original_path)
        for secret in secrets | _instance_uids(original):
            assert secret.encode() not in raw, (path.name, secret)
        seg = pydicom.dcmread(path)
        for element in _elements(seg):
            if element.keyword not in IDENTIFYING_TAGS or element.value in (None, "", []):
                continue
            if element.keyword in ("PatientName", "PatientID"):
                assert str(element.value).rstrip("^") == "P002", element
            elif element.VR == "DA":
                assert element.value == DUMMY_DATE, element
            elif element.VR == "TM":
                assert float(element.value) == 0, element
            elif element.value != DUMMY_TEXT:
                pytest.fail(f"{path.name}: {element} is left")
        assert not any(element.tag.is_private for element in _elements(seg))
        assert seg.PatientIdentityRemoved == "YES"
        assert seg.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert seg.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID
        # still a valid SEG with the same segments, pixels and plane positions
        assert dciodvfy_errors(path) == []
        back, before = hd.seg.segread(path), hd.seg.segread(original_path)
        np.testing.assert_array_equal(back.pixel_array, before.pixel_array)
        assert [f.PlanePositionSequence for f in back.PerFrameFunctionalGroupsSequence] == [
            f.PlanePositionSequence for f in before.PerFrameFunctionalGroupsSequence
        ]
        assert {i for i, _ in back.get_tracking_ids()} == {i for i, _ in before.get_tracking_ids()}
        for lesion_id, uid in back.get_tracking_ids():
            tracking.setdefault(lesion_id, set()).add(uid)
    # new Tracking UIDs, still one per lesion across the sessions of the export
    assert all(len(uids) == 1 for uids in tracking.values()), tracking
