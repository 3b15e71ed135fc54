"""The clinical layer: files, schedules, the index date, CSF indices, exports and the clinical-only
case, with exact answers worked out by hand in each test."""

from __future__ import annotations

import csv
import json
import math
from datetime import date, datetime
from pathlib import Path

import pytest

from clinical.course import choose_index_date, place_in_time
from clinical.csf import albumin_quotient_upper_limit, csf_indices
from clinical.errors import ClinicalError, ClinicalFileError
from clinical.export import fhir_bundle, sdtm_ex_rows
from clinical.record import load_clinical
from clinical.schedule import expand, parse_schedule
from followup.analyze import analyze_case


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


def _dates(schedule: str, start: str, end: str | None = None) -> list[str]:
    out = expand(
        parse_schedule(schedule),
        datetime.fromisoformat(f"{start}T09:00"),
        date.fromisoformat(end) if end else None,
    )
    return [a.at.date().isoformat() for a in out]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ------------------------------------------------------------------------------------ schedules
def test_the_daratumumab_label_schedule_expands_to_exact_dates():
    dates = _dates("weekly x8; every 2 weeks x8; every 4 weeks", "2023-01-02", "2023-12-31")
    assert dates[:8] == [
        "2023-01-02", "2023-01-09", "2023-01-16", "2023-01-23",
        "2023-01-30", "2023-02-06", "2023-02-13", "2023-02-20",
    ]  # fmt: skip
    assert dates[8] == "2023-02-27"  # week 9: q2w starts a week after the last weekly dose
    assert dates[15] == "2023-06-05"  # the 8th q2w dose: 2023-02-27 + 7 x 14 days
    assert dates[16] == "2023-06-19"  # week 25: q4w starts two weeks after the last q2w dose
    assert dates[-1] == "2023-12-04"  # 2023-06-19 + 6 x 28 days; the next (2024-01-01) is past
    assert len(dates) == 8 + 8 + 7


def test_cycle_boundaries_of_days_1_to_21_of_28():
    expanded = expand(parse_schedule("days 1-21 of 28 x2"), datetime(2023, 1, 2, 9), None)
    assert len(expanded) == 42
    c1_last, c2_first = expanded[20], expanded[21]
    assert (c1_last.at.date(), c1_last.cycle, c1_last.cycle_day) == (date(2023, 1, 22), 1, 21)
    assert (c2_first.at.date(), c2_first.cycle, c2_first.cycle_day) == (date(2023, 1, 30), 2, 1)
    assert expanded[-1].at.date() == date(2023, 2, 19)


def test_day_lists_and_synonyms():
    assert _dates("days 1,4,8,11 of 21 x1", "2024-03-01") == [
        "2024-03-01", "2024-03-04", "2024-03-08", "2024-03-11",
    ]  # fmt: skip
    assert _dates("q2w x3", "2024-01-01") == _dates("every 2 weeks x3", "2024-01-01")
    assert _dates("daily for 3 doses", "2024-02-28") == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert _dates("once", "2024-01-01") == _dates("", "2024-01-01") == ["2024-01-01"]
    assert _dates("weekly x2 then q4w x1", "2024-01-01") == [
        "2024-01-01", "2024-01-08", "2024-01-15",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weekly; q2w x8", "has no count but is not the last"),
        ("every fortnight", "is not a schedule phase"),
        ("days 1-30 of 28", "within the 28-day cycle"),
        ("days 5-1 of 28", "runs backwards"),
    ],
)
def test_bad_schedules_say_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_an_open_schedule_needs_an_end():
    with pytest.raises(ValueError, match="open-ended"):
        expand(parse_schedule("weekly"), datetime(2024, 1, 1, 9), None)


# -------------------------------------------------------------------------- course: held, stop
PATIENT = "age_years,sex,weight_kg,height_cm,myeloma_type\n61,F,62,165,IgG kappa\n"


def test_a_held_dose_a_drug_stop_and_the_exposure_at_an_mri(tmp_path):
    folder = _write(
        tmp_path / "c",
        patient=PATIENT,
        exposures=(
            "drug,dose,unit,route,start,end,schedule,status\n"
            "lenalidomide,25,mg,PO,2023-01-02,,days 1-21 of 28,,\n"
            "lenalidomide,25,mg,PO,2023-01-10,2023-01-11,,held\n"
            "daratumumab,16,mg/kg,IV,2023-01-02,,weekly x8; q2w x8; q4w,,\n"
        ),
        events="date,kind,label,drug\n2023-02-15,drug_stop,stopped,\n",
    )
    course = place_in_time(load_clinical(folder), first_mri=date(2023, 2, 1))
    lenalidomide = [a.at.date() for a in course.given("lenalidomide")]
    held = [a.at.date() for a in course.administrations if not a.given]
    assert held == [date(2023, 1, 10), date(2023, 1, 11)]
    # cycle 1: 21 days minus 2 held; cycle 2 from 2023-01-30 up to the stop on 2023-02-15
    assert len(lenalidomide) == 19 + 16
    assert lenalidomide[-1] == date(2023, 2, 14)
    daratumumab = course.given("daratumumab")
    assert [a.at.date().isoformat() for a in daratumumab][-1] == "2023-02-13"
    assert daratumumab[0].dose_mg == 16 * 62
    assert [a.duration_h for a in daratumumab[:4]] == [7.0, 4.0, 3.0, 3.0]  # label times
    state = course.exposure_at("daratumumab", date(2023, 2, 1))
    assert state.days_since_last_dose == 2  # weekly dose on 2023-01-30
    assert state.cumulative_dose_mg == 5 * 16 * 62
    periods = course.periods("lenalidomide", until=date(2023, 3, 1))
    assert [(p.state, p.start.isoformat(), p.end.isoformat()) for p in periods] == [
        ("on", "2023-01-02", "2023-01-09"),
        ("off", "2023-01-10", "2023-01-11"),  # the held days
        ("on", "2023-01-12", "2023-01-22"),
        ("off", "2023-01-23", "2023-01-29"),  # the cycle's 7 days off
        ("on", "2023-01-30", "2023-02-14"),
        ("off", "2023-02-15", "2023-03-01"),
    ]


def test_a_held_date_with_no_scheduled_dose_is_an_error(tmp_path):
    folder = _write(
        tmp_path / "c",
        exposures=(
            "drug,dose,unit,route,start,end,schedule,status\n"
            "dexamethasone,40,mg,PO,2023-01-02,2023-03-01,weekly,\n"
            "dexamethasone,40,mg,PO,2023-01-03,,,held\n"
        ),
    )
    with pytest.raises(ClinicalFileError, match=r"exposures\.csv:3 \(start\): no scheduled"):
        place_in_time(load_clinical(folder))


def test_mg_per_m2_uses_mosteller_body_surface_area(tmp_path):
    folder = _write(
        tmp_path / "c",
        patient=PATIENT,
        exposures="drug,dose,unit,route,start\nbortezomib,1.3,mg/m2,SC,2023-01-02\n",
    )
    course = place_in_time(load_clinical(folder))
    assert course.given()[0].dose_mg == pytest.approx(1.3 * math.sqrt(165 * 62 / 3600))


# --------------------------------------------------------------------------------- index date
def test_the_index_date_is_chosen_once_by_rule(tmp_path):
    folder = _write(
        tmp_path / "c",
        exposures="drug,dose,unit,route,start,schedule\ndexamethasone,40,mg,PO,-60,weekly x4\n",
        events="date,kind,label\n-6,symptom_onset,headache\n9,drug_stop,stop\n",
    )
    course = place_in_time(load_clinical(folder), first_mri=date(2023, 3, 14))
    assert course.first_dose() == datetime(2023, 1, 13, 9)  # day numbers count from the MRI
    mri = date(2023, 3, 14)
    assert choose_index_date(course, first_mri=mri).on == mri
    assert choose_index_date(course, first_mri=mri, override="first_dose").on == date(2023, 1, 13)
    onset = choose_index_date(course, first_mri=mri, override="symptom_onset")
    assert (onset.on, onset.rule, onset.day(mri)) == (date(2023, 3, 8), "symptom onset", 6)
    assert choose_index_date(course, first_mri=mri, override="drug_stop").day(mri) == -9
    with pytest.raises(ClinicalError, match="no admission event"):
        choose_index_date(course, first_mri=mri, override="admission")
    with pytest.raises(ClinicalError, match="use first_mri"):
        choose_index_date(course, first_mri=mri, override="tomorrow")


def test_day_numbers_without_an_mri_need_day0_date(tmp_path):
    folder = _write(tmp_path / "c", events="date,kind,label\n-6,symptom_onset,headache\n")
    with pytest.raises(ClinicalFileError, match=r"events\.csv:2 \(date\): .*add day0_date"):
        place_in_time(load_clinical(folder))
    (folder / "patient.csv").write_text("day0_date\n2020-05-01\n")
    course = place_in_time(load_clinical(folder))
    assert course.events[0].at.date() == date(2020, 4, 25)


# ------------------------------------------------------------------------------ file checking
def test_a_malformed_file_lists_every_problem_with_its_line(tmp_path):
    folder = _write(
        tmp_path / "c",
        patient="sex,weight_kg\nX,heavy\n",
        exposures=(
            "drug,dose,unit,route,start,schedule\n"
            "daratumumab,16,mg/kg,IV,2023-01-13,weekly x8\n"
            "lenalidomide,25,mg,oral,2023-13-01,days 1-21 of 28 x2\n"
            "# a comment line is skipped\n"
            "dexamethasone,forty,mg,PO,2023-01-13,every fortnight\n"
        ),
        labs="date,specimen,analyte,value,unit\n2023-01-12,saliva,albumin,38,g/L\n",
    )
    with pytest.raises(ClinicalFileError) as caught:
        load_clinical(folder)
    found = {(p.path.name, p.line, p.column) for p in caught.value.problems}
    assert found == {
        ("patient.csv", 2, "sex"),
        ("patient.csv", 2, "weight_kg"),
        ("exposures.csv", 2, "unit"),  # mg/kg with no readable weight
        ("exposures.csv", 3, "route"),
        ("exposures.csv", 3, "start"),
        ("exposures.csv", 5, "dose"),
        ("exposures.csv", 5, "schedule"),
        ("labs.csv", 2, "specimen"),
    }
    messages = [str(p) for p in caught.value.problems]
    assert "exposures.csv:3 (route): 'oral' is not one of IV, SC, PO, IT, IM" in messages
    assert str(caught.value).startswith("clinical files rejected, nothing written: patient.csv:2")
    assert str(caught.value).endswith("(and 3 more)")


def test_unknown_and_missing_columns_are_named(tmp_path):
    folder = _write(tmp_path / "c", labs="date,specimen,analyte,valeu,unit\n")
    with pytest.raises(ClinicalFileError) as caught:
        load_clinical(folder)
    text = str(caught.value)
    assert "labs.csv:1: missing column(s) value" in text
    assert "unknown column(s) valeu" in text


def test_excel_files_with_bom_semicolons_and_decimal_commas_are_read(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "labs.csv").write_bytes(
        "\ufeffDate;Specimen;Analyte;Value;Unit\n2023-01-12;serum;Albumin;3,8;g/dL\n".encode()
    )
    lab = load_clinical(folder).labs[0]
    assert (lab.analyte, lab.value, lab.value_mg_l) == ("albumin", 3.8, 38000.0)


def test_a_mg_per_kg_dose_needs_a_weight(tmp_path):
    folder = _write(
        tmp_path / "c", exposures="drug,dose,unit,route,start\ndaratumumab,16,mg/kg,IV,0\n"
    )
    with pytest.raises(ClinicalFileError, match=r"exposures\.csv:2 \(unit\): .*weight_kg"):
        load_clinical(folder)


# ------------------------------------------------------------------------------------ CSF
def test_csf_indices_against_hand_computation(tmp_path):
    folder = _write(
        tmp_path / "c",
        patient="age_years\n45\n",
        labs=(
            "date,specimen,analyte,value,unit\n"
            "2024-01-10,serum,albumin,40,g/L\n"
            "2024-01-10,csf,albumin,300,mg/L\n"
            "2024-01-10,serum,IgG,10,g/L\n"
            "2024-01-10,csf,IgG,40,mg/L\n"
            "2024-01-10,serum,daratumumab,200,ug/mL\n"
            "2024-01-10,csf,daratumumab,0.5,mg/L\n"
            "2024-01-11,csf,albumin,500,mg/L\n"  # no serum that day: not paired
        ),
        exposures="drug,dose,unit,route,start\ndaratumumab,1800,mg,SC,2024-01-01\n",
    )
    course = place_in_time(load_clinical(folder))
    got = {i.measure: i for i in csf_indices(course)}
    assert set(got) == {
        "albumin_quotient",
        "igg_index",
        "daratumumab_csf_serum_ratio",
        "daratumumab_index",
    }
    q_alb = 300 / 40_000  # 7.5e-3
    assert got["albumin_quotient"].value == pytest.approx(7.5)
    assert got["albumin_quotient"].upper_limit == pytest.approx(4 + 45 / 15)  # 7.0 (x 1e-3)
    assert got["albumin_quotient"].abnormal is True
    assert got["igg_index"].value == pytest.approx((40 / 10_000) / q_alb)  # 0.533
    assert got["igg_index"].abnormal is False
    assert got["daratumumab_csf_serum_ratio"].value == pytest.approx(0.25)  # %
    assert got["daratumumab_index"].value == pytest.approx((0.5 * 40_000) / (300 * 200))
    assert "no sign of IgG made within the CNS" in got["igg_index"].reading
    assert albumin_quotient_upper_limit(60) == pytest.approx(8e-3)


# ----------------------------------------------------------------------- the CNS myeloma case
@pytest.fixture(scope="module")
def cns_out(sample_case: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cns")
    analyze_case(sample_case.parent / "cnsmyeloma", out)
    return out / "sub-cnsmyeloma"


def test_a_case_with_clinical_files_only_is_analysed(cns_out: Path):
    assert _read(cns_out / "sessions.tsv") == []
    assert (cns_out / "sessions.tsv").read_text().startswith("case_id\tsession_id")
    assert not list(cns_out.glob("ses-*"))
    provenance = json.loads((cns_out / "provenance.json").read_text())
    assert provenance["index_date"] == "2016-08-01"
    assert provenance["index_date_rule"] == "first dose"
    timeline = _read(cns_out / "timeline.tsv")
    maintenance = [
        r for r in timeline if r["kind"] == "administration" and "maintenance" in r["detail"]
    ]
    assert [r["date"] for r in maintenance][-1] == "2018-06-25"
    assert len(maintenance) == 9  # 2017-04-03 + 8 x 56 days = 2018-06-25


def test_the_letter_drug_indices_are_reproduced(cns_out: Path):
    rows = _read(cns_out / "csf.tsv")
    index = {
        r["sample_date"]: float(r["value"]) for r in rows if r["measure"] == "daratumumab_index"
    }
    assert sorted(index) == ["2018-07-07", "2018-07-10", "2018-07-14"]
    assert all(0.33 <= v <= 0.37 for v in index.values()), index
    since = [r["days_since_last_dose"] for r in rows if r["measure"] == "daratumumab_index"]
    assert since == ["12", "15", "19"]
    m_protein = [float(r["value"]) for r in rows if r["measure"] == "m_protein_index"]
    assert m_protein == [pytest.approx(11.9)]
    ratio = [float(r["value"]) for r in rows if r["measure"] == "daratumumab_csf_serum_ratio"]
    assert [round(100 / v) for v in ratio] == [69, 74, 71]  # serum about 71 times CSF


def test_the_modelled_serum_level_is_within_a_factor_2_of_the_letter(cns_out: Path):
    pk = _read(cns_out / "pk.tsv")
    model = [(float(r["day"]), float(r["concentration_mg_l"])) for r in pk if r["kind"] == "model"]
    measured = [
        (float(r["day"]), float(r["concentration_mg_l"]))
        for r in pk
        if r["kind"] == "measured" and r["specimen"] == "serum"
    ]
    assert [c for _, c in measured] == [277, 221, 213]
    for day, level in measured:
        modelled = min(model, key=lambda m: abs(m[0] - day))[1]
        assert level / 2 <= modelled <= level * 2, (day, level, modelled)
    assert all("indicative population curve" in r["label"] for r in pk if r["kind"] == "model")


def test_exports_are_valid_fhir_r4_and_sdtm_ex(cns_out: Path, tmp_path: Path):
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    content = json.loads((cns_out / "medication_administrations.fhir.json").read_text())
    bundle = Bundle.model_validate(content)
    resources = [e.resource for e in bundle.entry if e.resource.__resource_type__ != "Patient"]
    ex = _read(cns_out / "ex.tsv")
    assert len(resources) == len(ex)  # nothing held in this case
    dara = [r for r in resources if r.medicationCodeableConcept.text == "daratumumab"]
    assert dara[0].medicationCodeableConcept.coding[0].code == "L01FC01"
    assert dara[0].dosage.route.coding[0].code == "47625008"
    assert float(dara[0].dosage.dose.value) == 16 * 75
    assert ex[0]["EXSTDY"] == "1" and ex[0]["DOMAIN"] == "EX"
    broken = json.loads(json.dumps(content))
    del broken["entry"][1]["resource"]["status"]
    with pytest.raises(ValidationError):
        Bundle.model_validate(broken)


def test_held_doses_are_not_done_in_fhir_and_absent_from_ex(tmp_path):
    folder = _write(
        tmp_path / "c",
        exposures=(
            "drug,dose,unit,route,start,end,schedule,status\n"
            "dexamethasone,40,mg,PO,2023-01-02,2023-01-23,weekly,\n"
            "dexamethasone,40,mg,PO,2023-01-09,,,held\n"
        ),
    )
    course = place_in_time(load_clinical(folder))
    bundle = fhir_bundle(course, "c")
    statuses = [e["resource"].get("status") for e in bundle["entry"][1:]]
    assert statuses == ["completed", "not-done", "completed", "completed"]
    assert [r["EXSTDTC"] for r in sdtm_ex_rows(course, "c")] == [
        "2023-01-02", "2023-01-16", "2023-01-23",
    ]  # fmt: skip


def test_a_malformed_clinical_file_writes_nothing(sample_case: Path, tmp_path: Path):
    case = _write(
        tmp_path / "badcase",
        exposures="drug,dose,unit,route,start\ndaratumumab,16,mg,IV,2023-02-30\n",
    )
    out = tmp_path / "out"
    with pytest.raises(ClinicalFileError, match=r"exposures\.csv:2 \(start\)"):
        analyze_case(case, out)
    assert not out.exists() or not any(out.iterdir())
