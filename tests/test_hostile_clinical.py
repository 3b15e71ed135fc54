"""Hostile and odd clinical files, tables and exports (issue 14), on the generated corpus of
tests/hostile/clinical.py: each class ends in a named, line-numbered error with nothing written, or in
the right result (with its warnings recorded in provenance.json).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clinical.errors import ClinicalFileError
from clinical.record import load_clinical
from clinical.tables import MAX_CELL_CHARS, MAX_FILE_BYTES
from clinical.units import body_surface_area_m2
from followup.analyze import analyze_case
from followup.cli import app
from followup.errors import ExportError, PseudonymKeyError
from followup.export import export_outputs
from followup.tsv import FORMULA_TRIGGERS, safe_cell, safe_frame, write_tsv
from tests.hostile import clinical as hostile

runner = CliRunner()


def _analyze(case: Path, out: Path):
    return runner.invoke(app, ["analyze", str(case), "--out", str(out)])


def _nothing_written(out: Path, case_id: str) -> None:
    """No case folder and no hidden partial folder of any case in ``out``."""
    assert not (out / f"sub-{case_id}").exists()
    if out.exists():
        assert not [p.name for p in out.iterdir() if p.name.startswith(".sub-")]


def _refused(result, *needles: str) -> None:
    """Exit 1 with one readable line naming the error, never a traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _formula_cells(frame: pd.DataFrame) -> list[str]:
    """Text cells (and column names) that a spreadsheet would run as formulas."""
    cells = [str(c) for c in frame.columns]
    for column in frame.columns:
        cells += [v for v in frame[column].tolist() if isinstance(v, str)]
    return [c for c in cells if c.startswith(FORMULA_TRIGGERS) and not _is_number(c)]


# ----------------------------------------------------------------------------- unknown drugs
def test_unknown_drugs_are_analysed_without_codes_and_a_misspelling_is_named(tmp_path):
    case = hostile.unknown_drugs_case(tmp_path / "unknown")
    result = _analyze(case, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "did you mean daratumumab?" in result.output
    folder = tmp_path / "out" / "sub-unknown"
    ex = _rows(folder / "ex.tsv")
    assert {r["EXTRT"] for r in ex} == {"FLUOROURACIL", "MELPHALAN", "DARATUMUMB"}
    assert sum(r["EXTRT"] == "FLUOROURACIL" for r in ex) == 3  # every 2 weeks x3
    bundle = json.loads((folder / "medication_administrations.fhir.json").read_text())
    medications = [
        e["resource"]["medicationCodeableConcept"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationAdministration"
    ]
    assert len(medications) == 3 + 1 + 4
    assert all("coding" not in m for m in medications)  # shown by name, no made-up code
    assert {m["text"] for m in medications} == {"fluorouracil", "melphalan", "daratumumb"}
    melphalan = [r for r in _rows(folder / "timeline.tsv") if r["item"] == "melphalan"]
    assert float(melphalan[0]["value"]) == pytest.approx(
        round(200 * body_surface_area_m2(70, 165), 3)
    )
    warnings = json.loads((folder / "provenance.json").read_text())["clinical"]["warnings"]
    assert warnings == [
        "exposures.csv:2 (drug): 'fluorouracil' has no ATC code in leukotrack's table; "
        "shown by name only",
        "exposures.csv:3 (drug): 'melphalan' has no ATC code in leukotrack's table; "
        "shown by name only",
        "exposures.csv:4 (drug): 'daratumumb' has no ATC code in leukotrack's table; "
        "shown by name only; did you mean daratumumab?",
    ]


# ----------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1252"])
def test_encodings_are_read_exactly(tmp_path, encoding):
    record = load_clinical(hostile.encoded_case(tmp_path / "c", encoding))
    assert record is not None
    assert record.patient.note == hostile.ENCODED_NOTE
    assert [lab.unit for lab in record.labs] == ["µg/mL", "µg/mL"]
    assert [lab.value_mg_l for lab in record.labs] == [277.0, 4.0]
    assert [lab.note for lab in record.labs] == ["Labor Zürich", ""]
    fallback = [w for w in record.warnings if "read as Windows-1252" in w]
    if encoding in ("latin-1", "cp1252"):
        assert [w.split(":")[0] for w in fallback] == ["patient.csv", "labs.csv"]
    else:
        assert record.warnings == ()


@pytest.mark.parametrize(
    ("make", "where", "what"),
    [
        (hostile.undecodable_case, "labs.csv:4", "byte 0x81"),
        (hostile.binary_file, "events.csv:1", "NUL bytes"),
    ],
)
def test_text_in_no_accepted_encoding_is_refused_with_what_to_save_as(tmp_path, make, where, what):
    case = make(tmp_path / "bad")
    result = _analyze(case, tmp_path / "out")
    _refused(result, "ClinicalFileError", where, what, "CSV UTF-8")
    _nothing_written(tmp_path / "out", "bad")


def test_console_markup_in_a_cell_is_printed_as_written(tmp_path):
    result = _analyze(hostile.markup_case(tmp_path / "markup"), tmp_path / "out")
    _refused(result, "exposures.csv:2 (route): '[/]' is not one of IV, SC, PO, IT, IM")
    _nothing_written(tmp_path / "out", "markup")


# ----------------------------------------------------------------------------- numbers and cells
@pytest.mark.parametrize("value", hostile.NONFINITE)
@pytest.mark.parametrize(
    ("where", "file", "column"),
    [
        ("dose", "exposures.csv", "dose"),
        ("weight", "patient.csv", "weight_kg"),
        ("lab", "labs.csv", "value"),
    ],
)
def test_non_finite_numbers_are_line_numbered_errors(tmp_path, value, where, file, column):
    case = hostile.nonfinite_case(tmp_path / "c", value, where)
    with pytest.raises(ClinicalFileError) as caught:
        load_clinical(case)
    located = [(p.path.name, p.line, p.column) for p in caught.value.problems]
    assert (file, 2, column) in located, caught.value


@pytest.mark.parametrize(
    ("characters", "message"),
    [
        (MAX_CELL_CHARS + 1, f"a cell of {MAX_CELL_CHARS + 1} characters"),
        (300_000, "a cell longer than 131072 characters"),
    ],
)
def test_over_long_cells_are_refused_with_their_line(tmp_path, characters, message):
    case = hostile.huge_cell_case(tmp_path / "huge", characters)
    result = _analyze(case, tmp_path / "out")
    _refused(result, "exposures.csv:4", message, f"({MAX_CELL_CHARS})")
    _nothing_written(tmp_path / "out", "huge")


def test_a_file_above_the_size_limit_is_refused_unread(tmp_path):
    case = hostile.oversized_case(tmp_path / "big", MAX_FILE_BYTES + 1)
    with pytest.raises(ClinicalFileError, match=r"events\.csv:1: larger than 16 MiB"):
        load_clinical(case)


def test_a_long_valid_lab_file_pairs_every_day(tmp_path):
    case = hostile.many_labs_case(tmp_path / "labs", days=2500)
    analyze_case(case, tmp_path / "out")
    csf = pd.read_csv(tmp_path / "out" / "sub-labs" / "csf.tsv", sep="\t")
    quotients = csf[csf["measure"] == "albumin_quotient"]
    assert len(quotients) == 2500
    first = quotients.iloc[0]
    unit = first["unit"]
    assert first["value"] == pytest.approx(round(200 / 30000 * 1e3, 4)), unit  # x 1e-3
    last = quotients.iloc[-1]  # day 2499: 30 + 2499 % 7 = 30 g/L, 200 + 2499 % 11 = 202 mg/L
    assert last["value"] == pytest.approx(round(202 / 30000 * 1e3, 4))


def test_a_cell_of_the_spreadsheet_limit_is_read(tmp_path):
    record = load_clinical(hostile.huge_cell_case(tmp_path / "c", MAX_CELL_CHARS))
    assert record is not None and len(record.exposures[-1].note) == MAX_CELL_CHARS


def test_wrongly_typed_cells_are_each_named_with_line_and_column(tmp_path):
    with pytest.raises(ClinicalFileError) as caught:
        load_clinical(hostile.wrongly_typed_case(tmp_path / "c"))
    located = {(p.path.name, p.line, p.column) for p in caught.value.problems}
    assert located == {
        ("patient.csv", 2, "sex"),
        ("patient.csv", 2, "age_years"),
        ("patient.csv", 2, "weight_kg"),
        ("patient.csv", 2, "birth_date"),
        ("exposures.csv", 2, "dose"),
        ("exposures.csv", 2, "start"),
        ("exposures.csv", 2, "unit"),  # mg/kg, and the weight "70 kg" is no number
        ("exposures.csv", 3, "unit"),
        ("exposures.csv", 3, "route"),
        ("exposures.csv", 3, "status"),
        ("exposures.csv", 3, "schedule"),
        ("events.csv", 2, "date"),
        ("events.csv", 2, "kind"),
        ("labs.csv", 2, "specimen"),
        ("labs.csv", 2, "value"),
    }


@pytest.mark.parametrize(
    ("schedule", "end", "message"),
    [
        ("daily x100000000", "", "count 100000000 is above the limit of 10000"),
        ("daily x99999999999999999999999", "", "above the limit of 10000"),
        ("every 520 weeks x 9000", "", "runs past the year 9999"),
        ("days 1-21 of 100000000", "", "cycle length 100000000 is above the limit"),
        ("daily", "2999-12-31", "expands to more than 10000 administrations"),
    ],
)
def test_runaway_schedules_are_refused_before_expanding(tmp_path, schedule, end, message):
    case = hostile.runaway_schedule_case(tmp_path / "run", schedule, end)
    result = _analyze(case, tmp_path / "out")
    _refused(result, "exposures.csv:2", message)
    _nothing_written(tmp_path / "out", "run")


def test_day_numbers_and_years_outside_the_calendar_are_refused(tmp_path):
    case = hostile.base_case(
        tmp_path / "c",
        events="date,kind\nday 99999999,admission\n0023-02-20,symptom_onset\n",
    )
    with pytest.raises(ClinicalFileError) as caught:
        load_clinical(case)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert messages[0][0] == 2 and "write a date" in messages[0][1]
    assert messages[1][0] == 3 and "the year 23 is outside 1000-2999" in messages[1][1]


def test_implausible_values_are_kept_and_warned_in_provenance(tmp_path):
    case = hostile.implausible_case(tmp_path / "odd")
    result = _analyze(case, tmp_path / "out")
    assert result.exit_code == 0, result.output
    provenance = json.loads((tmp_path / "out" / "sub-odd" / "provenance.json").read_text())
    assert provenance["clinical"]["warnings"] == [
        "patient.csv:2 (weight_kg): 700 kg is outside 2-350 kg",
        "exposures.csv:2 (start): 2022-12-01 is before the birth date 2023-01-01",
        "exposures.csv:2 (dose): 16 g (16000 mg) per administration is above 6000 mg, implausible "
        "for daratumumab; check the dose and the unit",
        "exposures.csv:3 (start): 1800-01-13 is before 1900",
        "labs.csv:2 (date): 2200-02-21 is more than a year in the future",
    ]
    assert "1800-01-13 is before 1900" in result.output  # shown as well as recorded
    timeline = _rows(tmp_path / "out" / "sub-odd" / "timeline.tsv")
    assert ("administration", "1800-01-13", "40.0") in {
        (r["kind"], r["date"], r["value"]) for r in timeline
    }  # used as written, not corrected
    pk = pd.read_csv(tmp_path / "out" / "sub-odd" / "pk.tsv", sep="\t")
    assert len(pk) < 20000  # the curve of a dose 177 years before a lab is bounded


# ----------------------------------------------------------------------------- formula injection
@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("'=1+1", "'=1+1"),  # already escaped: idempotent
        ("-60", "-60"),
        ("-1.5e-3", "-1.5e-3"),
        ("+2", "+2"),
        ("-inf", "-inf"),
        ("ses-01", "ses-01"),
        (-60, -60),
        (-0.25, -0.25),
    ],
)
def test_the_formula_guard_escapes_text_and_never_numbers(cell, written):
    assert safe_cell(cell) == written


def test_write_tsv_and_safe_frame_escape_text_columns_only(tmp_path):
    write_tsv(tmp_path / "t.tsv", [{"a": "=1+1", "b": -3, "c": "-3"}], ["a", "b", "c", "=x"])
    assert (tmp_path / "t.tsv").read_text() == "a\tb\tc\t'=x\n'=1+1\t-3\t-3\t\n"
    frame = pd.DataFrame({"day": [-60, -7], "item": ["=cmd", "@x"], "value": [-1.5, math.nan]})
    safe = safe_frame(frame)
    assert safe["item"].tolist() == ["'=cmd", "'@x"]
    assert safe["day"].dtype == frame["day"].dtype and safe["day"].tolist() == [-60, -7]
    assert safe["value"].dtype == frame["value"].dtype
    assert frame["item"].tolist() == ["=cmd", "@x"]  # the caller's frame is left as it was


@pytest.fixture(scope="module")
def formula_out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("formula")
    case = hostile.formula_case(root / "formula")
    analyze_case(case, root / "out")
    return root / "out"


def test_formula_cells_are_neutralised_in_every_case_table(formula_out):
    folder = formula_out / "sub-formula"
    tables = sorted(folder.glob("*.tsv"))
    assert {p.stem for p in tables} >= {"sessions", "lesions", "timeline", "pk", "csf", "ex"}
    for path in tables:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        assert _formula_cells(frame) == [], path.name
    timeline = pd.read_csv(folder / "timeline.tsv", sep="\t")
    assert "'=cmd|' /c calc'!a0" in set(timeline["item"])
    assert "'" + hostile.FORMULAS["event_label"] in set(timeline["detail"])
    assert "'" + hostile.FORMULAS["lab_unit"] in set(timeline["unit"])
    ex = pd.read_csv(folder / "ex.tsv", sep="\t")
    assert set(ex["EXCAT"]) == {"'" + hostile.FORMULAS["regimen"]}
    assert set(ex["EXTRT"]) == {"'" + hostile.FORMULAS["drug"].upper()}
    # real negative numbers are numbers still: days count from the symptom onset, 2023-03-07
    assert timeline["day"].dtype.kind == "i"
    days = dict(zip(timeline["date"] + " " + timeline["kind"], timeline["day"], strict=False))
    assert days["2023-01-13 administration"] == -53
    assert days["2023-02-12 event"] == -23


@pytest.mark.parametrize("deidentify", [False, True])
def test_formula_cells_are_neutralised_in_the_exports(formula_out, tmp_path, deidentify):
    target = tmp_path / "export"
    key = tmp_path / "key.tsv" if deidentify else None
    export_outputs(formula_out, target, deidentify=deidentify, key_file=key)
    name = "sub-P001" if deidentify else "sub-formula"
    for path in sorted((target / name).glob("*.tsv")):
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        assert _formula_cells(frame) == [], path.name
        typed = pd.read_parquet(path.with_suffix(".parquet"))
        assert _formula_cells(typed) == [], path.with_suffix(".parquet").name
    timeline = pd.read_parquet(target / name / "timeline.parquet")
    assert "'=cmd|' /c calc'!a0" in set(timeline["item"])
    assert timeline["day"].dtype.kind in "if" and timeline["day"].min() == -53
    assert timeline["value"].dtype.kind == "f"


@pytest.mark.parametrize("deidentify", [False, True])
def test_the_export_escapes_outputs_written_before_the_guard(formula_out, tmp_path, deidentify):
    """An output folder written by an older leukotrack holds the formulas unescaped."""
    old = tmp_path / "old"
    shutil.copytree(formula_out, old)
    for path in (old / "sub-formula").glob("*.tsv"):
        path.write_text(path.read_text(encoding="utf-8").replace("\t'", "\t").replace("\"'", '"'))
    raw = pd.read_csv(old / "sub-formula" / "timeline.tsv", sep="\t", dtype=str)
    assert "=cmd|' /c calc'!a0" in set(raw["item"])  # the old, unescaped text
    target = tmp_path / "export"
    export_outputs(
        old, target, deidentify=deidentify, key_file=tmp_path / "k" if deidentify else None
    )
    name = "sub-P001" if deidentify else "sub-formula"
    for path in sorted((target / name).glob("*.tsv")):
        assert _formula_cells(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)) == []
        assert _formula_cells(pd.read_parquet(path.with_suffix(".parquet"))) == []
    assert "'=cmd|' /c calc'!a0" in set(pd.read_parquet(target / name / "timeline.parquet")["item"])


# ----------------------------------------------------------------------------- de-identification
@pytest.fixture(scope="module")
def numeric_ids_out(tmp_path_factory) -> Path:
    """Two clinical-only cases whose folder names (case ids) are numbers, 1 and 12, with values
    that contain those digits (1.125 g/L, 12.5, 112 mg, study days 1 to 12, a daratumumab curve)."""
    root = tmp_path_factory.mktemp("numeric")
    labs = (
        "date,specimen,analyte,value,unit\n"
        "2023-02-21,serum,albumin,1.125,g/L\n"
        "2023-02-21,csf,albumin,12.5,mg/L\n"
        "2023-02-21,serum,igg,11.2,g/L\n"
        "2023-02-21,csf,igg,1.12,mg/L\n"
    )
    exposures = (
        hostile.EXPOSURES_HEADER + "dexamethasone,112,mg,PO,2023-01-01,,days 1-12 of 21 x1,,,\n"
        "daratumumab,16,mg/kg,IV,2023-01-13,,weekly x4,,D-Rd,\n"
    )
    for name in ("1", "12"):
        case = hostile.base_case(root / name, labs=labs, exposures=exposures)
        analyze_case(case, root / "out")
    return root / "out"


def test_deidentified_export_keeps_numbers_and_types_with_numeric_case_ids(
    numeric_ids_out, tmp_path
):
    plain, deid, key = tmp_path / "plain", tmp_path / "deid", tmp_path / "keys" / "key.tsv"
    export_outputs(numeric_ids_out, plain)
    summary = export_outputs(numeric_ids_out, deid, deidentify=True, key_file=key)
    assert summary.pseudonyms == {"1": "P001", "12": "P002"}
    assert key.read_text() == "case_id\tpseudonym\n1\tP001\n12\tP002\n"
    for case, pseudonym in (("1", "P001"), ("12", "P002")):
        for table in ("timeline", "csf", "ex", "pk"):
            before = pd.read_parquet(plain / f"sub-{case}" / f"{table}.parquet")
            after = pd.read_parquet(deid / f"sub-{pseudonym}" / f"{table}.parquet")
            assert len(after) == len(before) > 0, table
            for column in after.columns:
                if column in ("case_id", "USUBJID"):
                    continue
                assert after[column].dtype == before[column].dtype, (table, column)
                pd.testing.assert_series_equal(after[column], before[column], obj=column)
            if "case_id" in after.columns:
                assert set(after["case_id"]) == {pseudonym}
        ex = pd.read_csv(deid / f"sub-{pseudonym}" / "ex.tsv", sep="\t")
        assert set(ex["USUBJID"]) == {f"LEUKOTRACK-{pseudonym}"}
        dex = ex[ex["EXTRT"] == "DEXAMETHASONE"]
        assert dex["EXDOSE"].tolist() == [112.0] * 12
        assert dex["EXSTDY"].tolist() == list(range(1, 13))
        timeline = pd.read_csv(deid / f"sub-{pseudonym}" / "timeline.tsv", sep="\t")
        assert 1.125 in set(timeline["value"]) and 12.5 in set(timeline["value"])


@pytest.fixture(scope="module")
def small_out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    analyze_case(hostile.base_case(root / "alpha"), root / "out")
    return root / "out"


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_an_existing_key_is_never_overwritten(small_out, tmp_path):
    key = tmp_path / "key.tsv"
    key.write_text("case_id\tpseudonym\nsomeone\tP001\n")
    with pytest.raises(PseudonymKeyError, match="never overwritten"):
        export_outputs(small_out, tmp_path / "deid", deidentify=True, key_file=key)
    assert key.read_text() == "case_id\tpseudonym\nsomeone\tP001\n"
    assert not (tmp_path / "deid").exists() and _hidden(tmp_path) == []
    result = runner.invoke(
        app,
        [
            "export",
            str(small_out),
            "--to",
            str(tmp_path / "deid"),
            "--deidentify",
            "--key",
            str(key),
        ],
    )
    _refused(result, "PseudonymKeyError", "never overwritten")
    assert key.read_text() == "case_id\tpseudonym\nsomeone\tP001\n"
    assert not (tmp_path / "deid").exists() and _hidden(tmp_path) == []


@pytest.mark.parametrize("inside", ["key.tsv", "sub-P001/key.tsv", "."])
def test_a_key_inside_the_export_is_refused_before_anything_is_written(small_out, tmp_path, inside):
    target = tmp_path / "deid"
    with pytest.raises(PseudonymKeyError, match="outside the export folder"):
        export_outputs(small_out, target, deidentify=True, key_file=target / inside)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_key_is_refused_before_anything_is_written(small_out, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    key = tmp_path / "afile" / "keys" / "key.tsv"  # its folder cannot be made
    with pytest.raises(PseudonymKeyError, match="cannot write the pseudonym key"):
        export_outputs(small_out, tmp_path / "deid", deidentify=True, key_file=key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_a_key_is_written_with_its_export_and_folders_made_for_it(small_out, tmp_path):
    key = tmp_path / "new" / "keys" / "key.tsv"
    export_outputs(small_out, tmp_path / "deid", deidentify=True, key_file=key)
    assert key.read_text() == "case_id\tpseudonym\nalpha\tP001\n"
    assert (tmp_path / "deid" / "sub-P001" / "timeline.tsv").is_file()
    assert _hidden(tmp_path) == []  # no draft of the key, no partial export


def test_a_failed_export_leaves_neither_export_nor_key(small_out, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_out, broken)
    with (broken / "sub-alpha" / "timeline.tsv").open("a") as handle:
        handle.write("a\tline\twith\tfar\ttoo\tmany\tcells" + "\tx" * 20 + "\n")
    key = tmp_path / "keys" / "key.tsv"
    with pytest.raises(pd.errors.ParserError):
        export_outputs(broken, tmp_path / "deid", deidentify=True, key_file=key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # the key's folder is gone too


def test_a_key_without_deidentify_is_refused(small_out, tmp_path):
    with pytest.raises(ExportError, match="add --deidentify"):
        export_outputs(small_out, tmp_path / "e", key_file=tmp_path / "key.tsv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_deidentified_cohort_names_sessions_by_their_case_order(analyzed_samples, tmp_path):
    export_outputs(analyzed_samples, tmp_path / "deid", deidentify=True)
    cohort = pd.read_parquet(tmp_path / "deid" / "cohort.parquet")
    original = pd.read_csv(analyzed_samples / "cohort.tsv", sep="\t")
    rows = cohort[cohort["case_id"] == "P002"]
    assert rows["session_id"].tolist() == ["ses-01", "ses-02", "ses-03", "ses-04", "ses-05"]
    before = original[original["case_id"] == "indexcase"]
    assert rows["day"].tolist() == before["day"].tolist()
    assert rows["flair_lesion_volume_ml"].tolist() == before["flair_lesion_volume_ml"].tolist()
