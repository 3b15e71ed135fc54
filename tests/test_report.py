"""The PDF follow-up report of the analysed sample cases: rendered to PNG pages by pdftoppm and read
back as text by pdftotext (poppler-utils), against the case's own tables."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from followup.cli import app
from followup.report import most_affected_slice, write_report
from followup.results import load_case_outputs
from tests.interval_case import LESIONS, SESSIONS, old_output, write_case

pytestmark = pytest.mark.slow

if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
    if os.environ.get("LEUKOTRACK_REQUIRE_CHROMIUM") == "1":  # CI installs poppler-utils too
        raise RuntimeError("pdftoppm/pdftotext missing; .ci/run installs poppler-utils")
    pytest.skip("poppler-utils (pdftoppm, pdftotext) not installed", allow_module_level=True)


def _pages(pdf: Path, folder: Path) -> list[np.ndarray]:
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(folder / "page")], check=True)
    return [np.asarray(Image.open(p).convert("L")) for p in sorted(folder.glob("page-*.png"))]


def _text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def index_report(analyzed_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "indexcase.pdf"
    write_report(analyzed_samples / "sub-indexcase", out)
    return out


def test_report_renders_three_a4_pages_that_are_not_blank(index_report, tmp_path):
    pages = _pages(index_report, tmp_path)
    assert len(pages) == 3
    for page in pages:
        assert page.shape == (585, 414)  # A4 at 50 dpi
        assert page.std() > 10  # drawn, not an empty page
    assert [p.name for p in index_report.parent.iterdir()] == ["indexcase.pdf"]  # nothing left over
    assert index_report.stat().st_mode & 0o044  # readable by others, as an ordinary file


def test_report_text_holds_the_case_figures(index_report, analyzed_samples):
    text = _text(index_report)
    sessions = pd.read_csv(analyzed_samples / "sub-indexcase" / "sessions.tsv", sep="\t")
    assert "Follow-up of case indexcase" in text
    assert "day 0 = first MRI (2023-03-14)" in text
    for _, row in sessions.iterrows():
        assert row["session_id"] in text
        assert f"{row['flair_lesion_volume_ml']:.2f}" in text
        assert f"{row['dwi_lesion_volume_ml']:.2f}" in text
    lesions = pd.read_csv(analyzed_samples / "sub-indexcase" / "lesions.tsv", sep="\t")
    largest = lesions.loc[lesions["volume_ml"].idxmax()]
    assert largest["lesion_id"] in text and f"{largest['volume_ml']:.2f}" in text
    assert "indicative population curve" in text
    assert "leukotrack 0.1.0" in text
    assert text.count("Research use only") >= 3  # on every page


def test_most_affected_slice_is_the_one_with_most_lesion_voxels(analyzed_samples):
    outputs = load_case_outputs(analyzed_samples / "sub-indexcase")
    totals = 0
    for path in sorted((analyzed_samples / "sub-indexcase").rglob("*_desc-*lesions_dseg.nii.gz")):
        image = nib.as_closest_canonical(nib.load(path))
        totals = totals + (np.asanyarray(image.dataobj) > 0).sum(axis=(0, 1))
    assert most_affected_slice(outputs) == int(np.argmax(totals))


def test_clinical_only_case_gets_a_report_with_its_csf_readings(analyzed_samples, tmp_path):
    out = write_report(analyzed_samples / "sub-cnsmyeloma", tmp_path / "cns.pdf")
    assert len(_pages(out, tmp_path)) == 2
    text = _text(out)
    assert "No MRI sessions in this case" in text
    assert "daratumumab index 0.361" in text
    assert "M-protein index 11.9" in text


def test_report_command_and_its_error(analyzed_samples, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.pdf"
    result = runner.invoke(
        app,
        [
            "report",
            str(analyzed_samples / "sub-indexcase"),
            "--out",
            str(out),
            "--index",
            "first_dose",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "day 0 = first dose (2023-01-13)" in _text(out)
    bad = runner.invoke(app, ["report", str(analyzed_samples), "--out", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 1
    assert "an output folder of several cases; give one case folder" in bad.output
    assert not (tmp_path / "x.pdf").exists()


def test_a_case_whose_template_fit_failed_says_so_on_its_first_page(analyzed_samples, tmp_path):
    import json

    text = _text(write_report(analyzed_samples / "sub-indexcase", tmp_path / "ok.pdf"))
    assert "Template fit below quality" not in text  # the sample case fits well
    folder = tmp_path / "sub-indexcase"
    shutil.copytree(analyzed_samples / "sub-indexcase", folder)
    provenance = json.loads((folder / "provenance.json").read_text())
    provenance["template_fit"].update(ok=False, problems=["Dice 0.62 (< 0.8)"])
    (folder / "provenance.json").write_text(json.dumps(provenance))
    flagged = write_report(folder, tmp_path / "flagged.pdf")
    subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(flagged), str(tmp_path / "p1.txt")])
    first_page = " ".join((tmp_path / "p1.txt").read_text().split())
    assert "Template fit below quality (Dice 0.62 (< 0.8))" in first_page


def test_a_drug_has_one_colour_in_the_dashboard_and_in_the_report(analyzed_samples):
    """Daratumumab purple, lenalidomide green, dexamethasone brown: on the dashboard's overview and
    in the PDF's course panel alike, whatever the drug's position in the case's list."""
    import matplotlib.colors as mcolors
    from matplotlib.figure import Figure

    from dashboard.figures import overview_figure
    from followup.palette import drug_colour
    from followup.report import _course
    from followup.results import load_case_outputs

    outputs = load_case_outputs(analyzed_samples / "sub-indexcase")
    figure = overview_figure(outputs, None, "first MRI")
    plotly = {t.name: t.marker.color for t in figure.data if t.name in ("daratumumab IV",)}
    assert plotly == {"daratumumab IV": drug_colour("daratumumab")} == {"daratumumab IV": "#6a3d9a"}
    bars = next(t for t in figure.data if t.name == "lenalidomide")
    assert bars.marker.color == drug_colour("lenalidomide") == "#33a02c"
    page = Figure(figsize=(8.27, 11.69))
    _course(page, [0.1, 0.1, 0.8, 0.8], outputs, 0, "first MRI")
    drawn = set()
    for axis in page.axes:
        for collection in axis.collections:
            for colour in collection.get_facecolor():
                drawn.add(mcolors.to_hex(colour))
    for drug in ("daratumumab", "lenalidomide", "dexamethasone"):
        assert drug_colour(drug) in drawn, drug


def test_mri_days_run_through_the_drug_lanes_on_the_dashboard_and_in_the_report(analyzed_samples):
    from matplotlib.figure import Figure

    from dashboard.figures import overview_figure
    from followup.report import _course
    from followup.results import load_case_outputs

    outputs = load_case_outputs(analyzed_samples / "sub-indexcase")
    days = sorted(int(d) for d in outputs.sessions["day"])
    figure = overview_figure(outputs, None, "first MRI")
    lines = [s for s in figure.layout.shapes if s.name == "mri_day"]
    assert sorted({int(s.x0) for s in lines}) == days
    assert {s.yref for s in lines} == {"y domain", "y2 domain"}  # drug lanes and exposure
    page = Figure(figsize=(8.27, 11.69))
    _course(page, [0.1, 0.1, 0.8, 0.8], outputs, 0, "first MRI")
    drawn = [line for line in page.axes[0].get_lines() if line.get_gid() == "mri_day"]
    assert sorted(int(line.get_xdata()[0]) for line in drawn) == days


def test_course_panels_start_volumes_at_zero_and_keep_titles_clear(analyzed_samples):
    """A single-session report's volume axis starts at zero, and no panel's title overlaps the
    panel above it (its tick labels included)."""
    from dataclasses import replace

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from followup.report import _course
    from followup.results import load_case_outputs

    outputs = load_case_outputs(analyzed_samples / "sub-indexcase")
    single = replace(outputs, sessions=outputs.sessions.iloc[-1:])
    for case in (outputs, single):
        page = Figure(figsize=(8.27, 11.69))
        FigureCanvasAgg(page)
        _course(page, [0.1, 0.35, 0.9, 0.9], case, 0, "first MRI")
        page.canvas.draw()
        renderer = page.canvas.get_renderer()
        assert page.axes[2].get_ylim()[0] == 0
        for above, below in zip(page.axes, page.axes[1:], strict=False):
            title = below.title.get_window_extent(renderer)
            ticks = above.get_tightbbox(renderer)
            assert title.y1 <= ticks.y0 + 0.5, (below.get_title(), title, ticks)


def test_a_corrected_case_says_so_and_lists_its_corrections(analyzed_samples, tmp_path):
    """Page 1 says a reader corrected the case and marks the corrected values; the last page lists
    the corrections; the de-identified report keeps what and where, not who, when or why."""
    from followup.corrections import LesionEdit, apply_edit, lesion_point
    from followup.store import Store

    out = tmp_path / "out"
    shutil.copytree(analyzed_samples / "sub-indexcase", out / "sub-indexcase")
    folder = out / "sub-indexcase"
    lesions = pd.read_csv(folder / "lesions.tsv", sep="\t")
    new = lesions[(lesions.session_id == "ses-20230322") & (lesions.change == "new")]
    new = new[new.source == "dwi"].iloc[0]
    store = Store(out)
    try:
        store.ingest_case(folder, folder, None)
        point = lesion_point(folder, "ses-20230322", "dwi", new.lesion_id)
        edit = LesionEdit(
            "ses-20230322", "dwi", "erase", "Dr Reader", "artefact", point, lesion_id=new.lesion_id
        )
        apply_edit(store, folder, edit)
    finally:
        store.close()
    corrected = pd.read_csv(folder / "sessions.tsv", sep="\t").set_index("session_id")
    pdf = tmp_path / "corrected.pdf"
    write_report(folder, pdf)
    text = _text(pdf)
    assert "Corrected by a reader: 1 edit (ses-20230322)" in text
    assert f"{corrected.loc['ses-20230322', 'dwi_lesion_volume_ml']:.2f}*" in text
    assert (
        f"erase {new.lesion_id}" in text and "by Dr Reader" in text and "reason: artefact" in text
    )
    hidden = tmp_path / "deidentified.pdf"
    write_report(folder, hidden, pseudonym="P01")
    text = _text(hidden)
    assert f"erase {new.lesion_id}" in text
    assert "Dr Reader" not in text and "artefact" not in text and "ses-20230322" not in text


# ------------------------------------------------------------ measurement uncertainty (issue 16)
def _flat(text: str) -> str:
    """pdftotext's text with its line breaks and runs of spaces as single spaces."""
    return " ".join(text.split())


def test_the_report_gives_each_volume_its_interval_and_says_within_noise(tmp_path):
    """Hand-made outputs with the interval columns: the session table shows each value's 95 %
    interval and each volume change, "within measurement noise" where the label says so; the
    methods say how the intervals were obtained; a corrected value keeps its *."""

    sessions = SESSIONS.assign(corrected=["", "flair"])
    folder = write_case(tmp_path / "sub-ci", sessions)
    text = _flat(_text(write_report(folder, tmp_path / "ci.pdf")))
    assert "4.38 (4.10-4.66)" in text and "1.20 (1.05-1.35)" in text
    assert "6.48* (6.10-6.90)" in text  # the reader's mark, then the interval
    assert "0.70 (0.65-0.76)" in text  # rADC
    assert "+2.10, beyond noise: increase" in text
    assert "+0.05, within measurement noise" in text
    assert (
        "95 % intervals from 8 re-segmentations with registration jitter and resampled image "
        "noise, plus the partial-volume band (uncertainty level: standard)." in text
    )
    assert "at least 30 % and beyond the measurement noise" in text
    plain = SESSIONS.assign(dwi_lesion_volume_change_beyond_noise=["", "decrease"])
    folder = write_case(tmp_path / "plain" / "sub-ci", plain)
    text = _flat(_text(write_report(folder, tmp_path / "plain.pdf")))
    assert "within measurement noise" not in text and "beyond noise: decrease" in text


def test_the_report_of_an_older_output_shows_no_interval(tmp_path):

    folder = write_case(tmp_path / "sub-ci", old_output(SESSIONS), old_output(LESIONS))
    text = _flat(_text(write_report(folder, tmp_path / "old.pdf")))
    assert "4.38" in text and "6.48" in text
    assert "(4.10" not in text and "change mL" not in text
    assert "95 % intervals" not in text and "within measurement noise" not in text
    assert "at least 30 %, stable" in text


def test_the_course_panel_draws_the_intervals_as_error_bars(tmp_path):
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from followup.report import _course, lesion_summary

    outputs = load_case_outputs(write_case(tmp_path / "sub-ci"))
    page = Figure(figsize=(8.27, 11.69))
    _course(page, [0.1, 0.1, 0.8, 0.8], outputs, 0, "first MRI")
    volumes, radc = page.axes[2], page.axes[3]
    bars = {c.get_label(): c for c in volumes.containers}
    for column in ("flair_lesion_volume_ml", "dwi_lesion_volume_ml"):
        (segments,) = [
            c.get_segments()
            for c in bars[f"_ci_{column}"].lines[2]
            if isinstance(c, LineCollection)
        ]
        ends = [(s[0][1], s[1][1]) for s in segments]
        expected = zip(SESSIONS[f"{column}_ci_low"], SESSIONS[f"{column}_ci_high"], strict=True)
        assert ends == [pytest.approx(pair) for pair in expected]
    assert "_ci_radc" in {c.get_label() for c in radc.containers}
    old = load_case_outputs(
        write_case(tmp_path / "old" / "sub-ci", old_output(SESSIONS), old_output(LESIONS))
    )
    page = Figure(figsize=(8.27, 11.69))
    _course(page, [0.1, 0.1, 0.8, 0.8], old, 0, "first MRI")
    assert not page.axes[2].containers and not page.axes[3].containers
    summary = lesion_summary(outputs, 0).set_index("lesion")
    assert summary.loc["F002", "peak mL"] == "2.00 (1.80-2.20)"
    assert summary.loc["F001", "last change vs previous"] == (
        "+0.02 mL (-0.05 to +0.09), within measurement noise"
    )
    plain = lesion_summary(old, 0).set_index("lesion")
    assert plain.loc["F002", "peak mL"] == "2.00" and "last change vs previous" not in plain
