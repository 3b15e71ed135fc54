"""Measurement uncertainty on the dashboard (issue 16): error bars and hover texts of the course
figure, the overview's session table, the lesion table and the cohort columns, from a hand-made case
output with the interval columns and from the same without them (an older output: no interval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import data
from dashboard.figures import overview_figure
from dashboard.views.cohort import shown_columns
from dashboard.views.lesions import lesion_table
from dashboard.views.overview import _interval_caption, _session_table
from followup.intervals import change_text, error_halves, method_sentence, value_text
from followup.results import load_case_outputs
from tests.interval_case import LESIONS, SESSIONS, old_output, write_case


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path / "sub-ci")


@pytest.fixture
def old_case(tmp_path: Path) -> Path:
    return write_case(tmp_path / "old" / "sub-ci", old_output(SESSIONS), old_output(LESIONS))


def _traces(folder: Path) -> dict[str, object]:
    figure = overview_figure(load_case_outputs(folder), None, "first MRI")
    return {t.name: t for t in figure.data}


# ------------------------------------------------------------------------------------- texts
def test_value_and_change_texts():
    first, second = (row for _, row in SESSIONS.iterrows())
    assert value_text(first, "flair_lesion_volume_ml") == "4.38 (4.10-4.66)"
    assert value_text(first, "flair_lesion_volume_ml", unit="mL", hover=True) == (
        "4.38 mL (95 % CI 4.10-4.66)"
    )
    assert value_text(old_output(SESSIONS).iloc[0], "flair_lesion_volume_ml") == "4.38"
    assert value_text({}, "flair_lesion_volume_ml") == "–"
    flair = ("flair_lesion_volume_change_ml", "flair_lesion_volume_change_beyond_noise")
    dwi = ("dwi_lesion_volume_change_ml", "dwi_lesion_volume_change_beyond_noise")
    assert change_text(second, *flair, unit="mL") == (
        "+2.10 mL (+1.20 to +3.00), beyond noise: increase"
    )
    assert change_text(second, *dwi, unit="mL") == (
        "+0.05 mL (-0.15 to +0.25), within measurement noise"
    )
    assert change_text(second, *dwi, interval=False) == "+0.05, within measurement noise"
    assert change_text(first, *flair) == ""  # a first session has no change
    assert change_text(old_output(SESSIONS).iloc[1], *flair) == ""  # nor an older output
    assert change_text({"c": "", "l": "within noise"}, "c", "l") == "within measurement noise"


def test_error_halves_are_the_distances_to_the_interval_ends():
    below, above = error_halves(SESSIONS, "flair_lesion_volume_ml")
    assert below == pytest.approx([4.38 - 4.10, 6.48 - 6.10])
    assert above == pytest.approx([4.66 - 4.38, 6.90 - 6.48])
    gaps = SESSIONS.assign(flair_lesion_volume_ml_ci_low=["", 6.1])  # one session without
    below, _ = error_halves(gaps, "flair_lesion_volume_ml")
    assert np.isnan(below[0]) and below[1] == pytest.approx(0.38)
    assert error_halves(old_output(SESSIONS), "flair_lesion_volume_ml") is None
    blank = SESSIONS.assign(radc_ci_low="", radc_ci_high="")  # level off: empty cells
    assert error_halves(blank, "radc") is None


def test_method_sentence_names_the_draws_and_level():
    provenance = {"parameters": {"pipeline": {"uncertainty": {"draws": 8}}}}
    assert method_sentence(SESSIONS, provenance) == (
        "95 % intervals from 8 re-segmentations with registration jitter and resampled image "
        "noise, plus the partial-volume band (uncertainty level: standard)."
    )
    assert "from re-segmentations with" in method_sentence(SESSIONS, {})  # number unknown
    off = SESSIONS.assign(uncertainty_level="off")
    assert method_sentence(off, provenance) == (
        "No measurement intervals were computed (uncertainty level: off)."
    )
    assert method_sentence(old_output(SESSIONS), provenance) == ""


# ------------------------------------------------------------------------------------ figure
def test_course_figure_draws_the_intervals_as_error_bars_with_their_hover(case):
    traces = _traces(case)
    for name, column in (
        ("FLAIR lesions (mL)", "flair_lesion_volume_ml"),
        ("DWI lesions (mL)", "dwi_lesion_volume_ml"),
        ("rADC of DWI lesions", "radc"),
    ):
        error = traces[name].error_y
        assert error.visible is not False and error.symmetric is False
        value = SESSIONS[column].to_numpy(float)
        high = SESSIONS[f"{column}_ci_high"].to_numpy(float)
        low = SESSIONS[f"{column}_ci_low"].to_numpy(float)
        assert np.asarray(error.array, float) == pytest.approx(high - value)
        assert np.asarray(error.arrayminus, float) == pytest.approx(value - low)
    flair = traces["FLAIR lesions (mL)"]
    first, second = flair.customdata
    assert list(first[:3]) == ["ses-1", "2023-03-14", "4.38 mL (95 % CI 4.10-4.66)"]
    assert first[3] == ""  # no change on the first session
    assert second[3] == (
        "change vs previous: +2.10 mL (+1.20 to +3.00), beyond noise: increase<br>"
    )
    assert "%{customdata[2]}" in flair.hovertemplate and "%{customdata[3]}" in flair.hovertemplate
    dwi = traces["DWI lesions (mL)"]
    assert "within measurement noise" in dwi.customdata[1][3]


def test_course_figure_of_an_older_output_has_no_error_bars(old_case):
    traces = _traces(old_case)
    for name in ("FLAIR lesions (mL)", "DWI lesions (mL)", "rADC of DWI lesions"):
        assert traces[name].error_y.array is None
    flair = traces["FLAIR lesions (mL)"]
    assert [list(c) for c in flair.customdata] == [
        ["ses-1", "2023-03-14", "4.38 mL", ""],
        ["ses-2", "2023-03-21", "6.48 mL", ""],
    ]


# ------------------------------------------------------------------------------------ tables
def test_session_table_shows_intervals_and_the_change_vs_previous(case):
    outputs = load_case_outputs(case)
    table = _session_table(outputs.sessions, 0).set_index("Session")
    assert table.loc["ses-1", "FLAIR lesions (mL)"] == "4.38 (4.10-4.66)"
    assert table.loc["ses-2", "DWI lesions (mL)"] == "1.25 (1.10-1.40)"
    assert table.loc["ses-2", "rADC (DWI lesions)"] == "0.70 (0.65-0.76)"
    assert table.loc["ses-1", "FLAIR change vs previous"] == ""
    assert table.loc["ses-2", "FLAIR change vs previous"] == (
        "+2.10 mL (+1.20 to +3.00), beyond noise: increase"
    )
    assert table.loc["ses-2", "DWI change vs previous"] == (
        "+0.05 mL (-0.15 to +0.25), within measurement noise"
    )
    assert _interval_caption(outputs) == (
        " Error bars and brackets: 95 % intervals from 8 re-segmentations with registration "
        "jitter and resampled image noise, plus the partial-volume band (uncertainty level: "
        "standard)."
    )


def test_session_table_of_an_older_output_shows_the_values_alone(old_case):
    outputs = load_case_outputs(old_case)
    table = _session_table(outputs.sessions, 0)
    assert table["FLAIR lesions (mL)"].tolist() == pytest.approx([4.38, 6.48])
    assert not [c for c in table.columns if "change" in c]
    assert _interval_caption(outputs) == ""


def test_lesion_table_gives_each_lesion_its_intervals_and_last_change(case, old_case):
    outputs = load_case_outputs(case)
    table = lesion_table(outputs.lesions, outputs.session_ids, 0).set_index("lesion")
    assert table.loc["F002", "peak_ci_ml"] == "1.80-2.20"
    assert table.loc["F002", "last_ci_ml"] == "1.80-2.20"
    assert table.loc["F001", "peak_ci_ml"] == "0.46-0.58"  # the peak is ses-2's 0.52 mL
    assert table.loc["F001", "last_change_vs_previous"] == (
        "+0.02 mL (-0.05 to +0.09), within measurement noise"
    )
    assert table.loc["F002", "last_change_vs_previous"] == (
        "+1.00 mL (+0.70 to +1.30), beyond noise: increase"
    )
    assert table.loc["F002", "peak_ml"] == pytest.approx(2.0)  # the numbers stay numbers
    old = load_case_outputs(old_case)
    plain = lesion_table(old.lesions, old.session_ids, 0)
    assert "last_ci_ml" not in plain and len(plain) == 2


# ------------------------------------------------------------------------------------ cohort
def test_cohort_summary_carries_the_peak_interval_the_last_labels_and_the_level(case, old_case):
    outputs = load_case_outputs(case)
    row = data._summarise("ci", outputs.sessions, "done", "", "2023-03-14")
    assert row["peak_flair_ml"] == pytest.approx(6.48)
    assert row["peak_flair_ci_ml"] == "6.10-6.90"
    assert row["peak_dwi_ci_ml"] == "1.10-1.40"
    assert row["last_flair_change"] == "increase"
    assert row["last_dwi_change"] == "within measurement noise"
    assert row["uncertainty_level"] == "standard"
    old = data._summarise("ci", load_case_outputs(old_case).sessions, "done", "", "")
    assert old["peak_flair_ml"] == pytest.approx(6.48)
    assert [old[c] for c in ("peak_flair_ci_ml", "last_flair_change", "uncertainty_level")] == [
        None,
        None,
        None,
    ]
    table = pd.DataFrame([row, old], columns=data.COHORT_COLUMNS)
    assert "peak_flair_ci_ml" in shown_columns(table)
    assert "peak_flair_ci_ml" not in shown_columns(table.iloc[1:])  # no case has intervals


def test_cohort_page_data_reads_the_intervals_back_from_the_store(tmp_path):
    """The store's cohort view carries the columns to the dashboard's cohort table."""
    from followup.store import Store

    out = tmp_path / "out"
    folder = write_case(out / "sub-ci")
    store = Store(out)
    try:
        store.ingest_case(folder, folder, None)
    finally:
        store.close()
    (row,) = data.cohort(out).to_dict("records")
    assert row["case_id"] == "ci" and row["status"] == "done"
    assert row["peak_flair_ci_ml"] == "6.10-6.90"
    assert row["last_flair_change"] == "increase"
    assert row["last_dwi_change"] == "within measurement noise"
    assert row["uncertainty_level"] == "standard"


def test_viewer_row_labels_give_the_intervals_and_the_change(case, old_case):
    from dashboard.views.viewer import _row_parts

    parts = _row_parts(load_case_outputs(case), "ses-2", 0)
    # short lines: the label column stays as narrow as the drug lines
    assert "FLAIR 6.48 mL (6.10-6.90)" in parts
    assert "FLAIR change +2.10 mL, beyond noise" in parts
    assert "DWI change +0.05 mL, within noise" in parts
    assert max(len(p) for p in parts if "mL" in p) <= 40
    assert "rADC 0.70 (0.65-0.76)" in parts
    old = _row_parts(load_case_outputs(old_case), "ses-2", 0)
    assert "FLAIR 6.48 mL" in old and "rADC 0.70" in old
    assert not [p for p in old if "change" in p]
