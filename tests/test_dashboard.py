"""Dashboard page logic with Streamlit's AppTest (no browser), and its figures as data, on the
sample cases analysed into a store-backed folder. The browser tests are in test_dashboard_browser.py.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures import overview_figure, reiber_curves, reiber_figure
from followup.results import index_dates, load_case_outputs

pytestmark = pytest.mark.slow


def _page(name: str) -> None:
    """An AppTest script: the sidebar, then one page (as st.navigation would run it)."""
    import importlib

    from dashboard.state import sidebar

    sidebar()
    importlib.import_module(f"dashboard.views.{name}").show()


@pytest.fixture
def data(analyzed_samples: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEUKOTRACK_DATA", str(analyzed_samples))
    return analyzed_samples


def _run(name: str, **state: object) -> AppTest:
    app = AppTest.from_function(_page, args=(name,), default_timeout=120)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _sessions(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "sub-indexcase" / "sessions.tsv", sep="\t")


def _plotly(app: AppTest, number: int = 0) -> dict:
    charts = app.get("plotly_chart")
    return json.loads(charts[number].proto.spec)


def _array(value: object) -> np.ndarray:
    """A Plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


# ------------------------------------------------------------------------------------- pages
def test_cohort_lists_every_case_with_its_key_figures(data):
    app = _run("cohort")
    table = app.dataframe[0].value.set_index("case_id")
    assert sorted(table.index) == ["cnsmyeloma", "indexcase"]
    sessions = _sessions(data)
    row = table.loc["indexcase"]
    assert row["sessions"] == len(sessions) == 5
    assert row["peak_flair_ml"] == pytest.approx(sessions["flair_lesion_volume_ml"].max())
    assert row["peak_dwi_ml"] == pytest.approx(sessions["dwi_lesion_volume_ml"].max())
    assert row["latest_radc"] == pytest.approx(sessions["radc"].dropna().iloc[-1])
    assert row["days_followed"] == sessions["day"].max() - sessions["day"].min() == 165
    assert (sessions["template_fit_ok"] == 1).all() and row["template_fit"] == "ok"
    assert table.loc["cnsmyeloma", "sessions"] == 0
    assert [m.value for m in app.metric][:3] == ["2", "2", "0"]
    # the default case is the first with images
    assert app.session_state["case_id"] == "indexcase"


def test_cohort_filter_narrows_the_table(data):
    app = _run("cohort")
    app.text_input[0].set_value("myel").run()
    assert app.dataframe[0].value["case_id"].tolist() == ["cnsmyeloma"]
    app.text_input[0].set_value("").run()
    app.number_input[0].set_value(20.0).run()
    assert app.dataframe[0].value["case_id"].tolist() == ["indexcase"]


def test_overview_moves_every_day_with_the_index_date(data):
    app = _run("overview")
    first_mri = _plotly(app)
    app.selectbox(key="index_key").set_value("first_dose").run()
    assert not app.exception
    first_dose = _plotly(app)
    shift = (date(2023, 3, 14) - date(2023, 1, 13)).days  # first MRI - first dose
    flair = next(t for t in first_mri["data"] if t.get("name") == "FLAIR lesions (mL)")
    moved = next(t for t in first_dose["data"] if t.get("name") == "FLAIR lesions (mL)")
    assert np.allclose(_array(moved["x"]) - _array(flair["x"]), shift)
    assert "first dose (2023-01-13)" in first_dose["layout"]["xaxis4"]["title"]["text"]
    table = next(m.value for m in app.markdown if m.value.startswith("| Session | Date | Day"))
    days = [int(line.split("|")[3]) for line in table.splitlines()[2:]]
    assert days == [d + shift for d in _sessions(data)["day"]]
    # each lesion point carries its session, for the click that opens the viewer
    assert [c[0] for c in moved["customdata"]] == _sessions(data)["session_id"].tolist()


def test_viewer_shows_the_session_by_sequence_grid_and_moves_the_slice(data):
    app = _run("viewer", viewer_mode="Static images")
    images = app.get("image")
    assert len(images) == 5  # one row image per session: DWI | ADC | FLAIR
    slider = app.slider(key="viewer_slice_axial")
    assert (slider.min, slider.max) == (1, 26)
    before = np.array(app.session_state["viewer_mm"])
    slider.set_value(5).run()
    after = np.array(app.session_state["viewer_mm"])
    assert not app.exception
    # slice 5 of a 6.5 mm grid; x and y unchanged
    assert np.allclose(after[:2], before[:2], atol=1e-6)
    assert app.slider(key="viewer_slice_axial").value == 5
    app.radio(key="viewer_plane").set_value("coronal").run()
    coronal = app.slider(key="viewer_slice_coronal")
    assert coronal.max == 256
    assert np.allclose(np.array(app.session_state["viewer_mm"]), after)  # same point, other plane


def test_the_interactive_viewer_gets_every_session_and_sequence_by_url(data, tmp_path, monkeypatch):
    """The NiiVue component's arguments: one panel per session and sequence, each volume copied into
    the served folder under its URL (byte for byte), lesion overlays, windows in the image's units."""
    monkeypatch.setenv("LEUKOTRACK_VIEWER_DIR", str(tmp_path / "served"))
    app = _run("viewer")
    found = app.get("component_instance")
    assert len(found) == 1
    args = json.loads(found[0].proto.json_args)
    sessions = _sessions(data)["session_id"].tolist()
    assert [r["id"] for r in args["rows"]] == sessions
    assert args["columns"] == ["DWI", "ADC", "FLAIR"]
    assert len(args["panels"]) == 3 * len(sessions)
    served = tmp_path / "served"
    lesions = pd.read_csv(data / "sub-indexcase" / "lesions.tsv", sep="\t")
    resolved_panels = 0
    voxels = [0, 0]  # outline, lesion
    for panel in args["panels"]:
        source = data / "sub-indexcase" / panel["row"]
        copy = served / panel["url"]
        assert (
            copy.is_file() and copy.read_bytes() == next(source.rglob(panel["name"])).read_bytes()
        )
        source_of = "flair" if panel["column"] == "FLAIR" else "dwi"
        gone = lesions[
            (lesions.session_id == panel["row"])
            & (lesions.source == source_of)
            & (lesions.change == "resolved")
        ]
        names = [o["name"] for o in panel["overlays"]]
        # lesions outlined by default (the reading default): the rim of each lesion in the axial
        # slice, drawn opaque, never a voxel outside the lesion
        lesion = panel["overlays"][0]
        labels = np.asarray(nib.load(next(source.glob(f"*{source_of}lesions_dseg.nii.gz"))).dataobj)
        rim = np.asarray(nib.load(served / lesion["url"]).dataobj)
        assert lesion["opacity"] == 1.0 and set(np.unique(rim)) <= {0, 1}
        assert ((rim > 0) <= (labels > 0)).all()
        voxels += [int((rim > 0).sum()), int((labels > 0).sum())]
        assert names == [f"{source_of}_lesions.nii.gz"] + (
            [f"{source_of}_resolved.nii.gz"] if len(gone) else []
        )
        if len(gone):  # resolved lesions marked where they were: code 3 of the change map
            resolved = panel["overlays"][1]
            assert resolved["colormap"] == "green"
            drawn = np.asarray(nib.load(served / resolved["url"]).dataobj)
            change = np.asarray(
                nib.load(next(source.glob(f"*{source_of}change_mask.nii.gz"))).dataobj
            )
            assert drawn.any() and ((drawn > 0) <= (change == 3)).all()  # 3: disappeared
            assert f"resolved ({', '.join(gone.lesion_id)}" in panel["caption"]
            resolved_panels += 1
    assert resolved_panels >= 2  # the sample case's DWI lesions resolve by day 45
    outline, lesion = voxels[::2], voxels[1::2]
    assert 0 < sum(outline) < 0.8 * sum(lesion)
    adc = next(p for p in args["panels"] if p["column"] == "ADC")
    assert adc["unit"] == "um2/s" and adc["window"] == [0.0, 2000.0]
    dwi = next(p for p in args["panels"] if p["column"] == "DWI")
    assert dwi["caption"].startswith("DWI b=1000")
    # DWI and FLAIR start with the preset measured on each session's own image (not the first's)
    from imaging.display import load_volume, presets

    for panel in (p for p in args["panels"] if p["column"] in ("DWI", "FLAIR")):
        path = next((data / "sub-indexcase" / panel["row"]).rglob(panel["name"]))
        window = presets(panel["column"], load_volume(path))["auto (1-99.5 %)"]
        low, high = window.center - window.width / 2, window.center + window.width / 2
        assert panel["window"] == pytest.approx([low, high])
    dwi_windows = {tuple(p["window"]) for p in args["panels"] if p["column"] == "DWI"}
    assert len(dwi_windows) == len(sessions)
    for name in ("index.html", "viewer.js", "niivue.umd.js"):
        assert (served / name).is_file()


def _viewer_args(app: AppTest) -> dict:
    found = app.get("component_instance")
    assert len(found) == 1
    return json.loads(found[0].proto.json_args)


def test_prior_current_puts_a_session_beside_the_one_before_it(data, tmp_path, monkeypatch):
    monkeypatch.setenv("LEUKOTRACK_VIEWER_DIR", str(tmp_path / "served"))
    sessions = _sessions(data)
    order = sessions["session_id"].tolist()
    app = _run("viewer", viewer_layout="Prior / current", viewer_current=order[2])
    args = _viewer_args(app)
    assert [r["id"] for r in args["rows"]] == ["DWI", "ADC", "FLAIR"]
    prior, current = args["columns"]
    assert prior.startswith(f"prior: {order[1]}") and current.startswith(f"current: {order[2]}")
    assert len(args["panels"]) == 6
    assert {(p["row"], p["group"], p["id"].split(":")[0]) for p in args["panels"]} == {
        (sequence, sequence, session)
        for sequence in ("DWI", "ADC", "FLAIR")
        for session in (order[1], order[2])
    }
    # each session's drug state, from sessions.tsv, beside its images
    row = sessions.iloc[2]
    for drug in ("daratumumab", "dexamethasone", "lenalidomide"):
        since = row[f"{drug}_days_since_last_dose"]
        if pd.isna(since):
            assert f"{drug} not yet given" in current
        else:
            state = "on" if row[f"{drug}_on"] else "off"
            assert f"{drug} {state}, last dose {since:.0f} d before" in current


def test_native_series_shows_the_series_as_acquired_with_its_lesions(data, tmp_path, monkeypatch):
    """The original DWI series of a session (the DICOM folder provenance.json names), on its own
    grid: the trace volume (highest b), converted once, with the DWI lesions found on that grid."""
    import nibabel as nib

    from imaging.dicom.series import load_series_folder

    monkeypatch.setenv("LEUKOTRACK_VIEWER_DIR", str(tmp_path / "served"))
    order = _sessions(data)["session_id"].tolist()
    app = _run(
        "viewer",
        viewer_layout="Native series",
        viewer_native_session=order[1],
        viewer_native_sequence="DWI",
    )
    args = _viewer_args(app)
    (panel,) = args["panels"]
    provenance = json.loads((data / "sub-indexcase" / "provenance.json").read_text())
    source = Path(provenance["sessions"][order[1]]["sources"]["dwi"])
    series = load_series_folder(source)
    shown = nib.load(tmp_path / "served" / panel["url"])
    assert shown.shape == series.spatial_shape
    assert np.allclose(shown.affine, series.affine)
    trace = int(np.argmax(series.bvals_s_mm2))
    assert np.array_equal(np.asarray(shown.dataobj), np.asarray(series.data)[..., trace])
    assert "b = 1000 s/mm2" in panel["caption"]
    assert [o["name"] for o in panel["overlays"]] == [
        f"sub-indexcase_{order[1]}_space-orig_desc-dwilesion_mask.nii.gz"
    ]


def test_viewer_centres_on_a_requested_lesion(data):
    lesions = pd.read_csv(data / "sub-indexcase" / "lesions.tsv", sep="\t")
    row = lesions[(lesions["source"] == "dwi")].iloc[0]
    target = (row["centroid_x_mm"], row["centroid_y_mm"], row["centroid_z_mm"])
    app = _run(
        "viewer",
        viewer_target={"case": "indexcase", "session": row["session_id"], "mm": target},
        viewer_mode="Static images",
    )
    assert np.allclose(app.session_state["viewer_mm"], target)
    assert app.session_state["viewer_focus"] == row["session_id"]
    # the opened session is shown with the one before it
    order = sorted(lesions["session_id"].unique())
    at = order.index(row["session_id"])
    assert app.session_state["viewer_sessions"] == order[max(at - 1, 0) : at + 1]
    assert len(app.get("image")) == len(order[max(at - 1, 0) : at + 1])
    assert "opened" in " ".join(m.value for m in app.markdown)


def test_lesions_table_has_one_row_per_tracked_lesion_and_filters(data):
    lesions = pd.read_csv(data / "sub-indexcase" / "lesions.tsv", sep="\t")
    app = _run("lesions")
    table = app.dataframe[0].value
    assert len(table) == lesions.groupby(["source", "lesion_id"]).ngroups
    peak = lesions.groupby(["source", "lesion_id"])["volume_ml"].max()
    for _, lesion in table.iterrows():
        assert lesion["peak_ml"] == pytest.approx(peak[(lesion["source"], lesion["lesion"])])
        assert len(lesion["trajectory_ml"]) == 5
    app.multiselect[0].set_value(["dwi"]).run()
    assert set(app.dataframe[0].value["source"]) == {"dwi"}


def test_csf_page_shows_indices_with_limits(data):
    app = _run("csf", case_id="cnsmyeloma")
    table = app.dataframe[0].value.set_index("sample")
    first = table.loc["2018-07-07"]
    assert first["daratumumab index"] == "0.361"
    assert first["m protein index"] == "11.9 ▲"
    assert first["albumin quotient"] == "40 x 1e-3 ▲"
    assert table["daratumumab csf serum ratio"].tolist() == ["1.44 %", "1.36 %", "1.41 %"]
    text = " ".join(m.value for m in app.markdown)
    assert "CNS myeloma" in text
    assert len(app.get("plotly_chart")) == 1


def test_run_page_reports_bad_folders_as_messages(data, tmp_path, monkeypatch):
    monkeypatch.setenv("LEUKOTRACK_IMPORT_ROOT", str(tmp_path))
    app = _run("run")
    app.text_input(key="run_folder").set_value(str(tmp_path / "nowhere")).run()
    assert "is not a folder" in app.error[0].value
    empty = tmp_path / "empty_case"
    empty.mkdir()
    app.text_input(key="run_folder").set_value(str(empty)).run()
    app.button(key="run_check").click().run()
    assert not app.exception
    assert "empty_case" in app.error[0].value


def test_run_page_analyses_a_case_with_progress(data, tmp_path, sample_case, monkeypatch):
    monkeypatch.setenv("LEUKOTRACK_IMPORT_ROOT", str(sample_case.parent))
    out = tmp_path / "out"
    app = AppTest.from_function(_page, args=("run",), default_timeout=300)
    import os

    os.environ["LEUKOTRACK_DATA"] = str(out)
    app.run()
    clinical_only = Path(__file__).resolve().parents[1] / "sample_scans" / "cnsmyeloma"
    app.text_input(key="run_folder").set_value(str(clinical_only)).run()
    app.button(key="run_go").click().run()
    assert not app.exception and not app.error
    assert "cnsmyeloma analysed" in app.success[0].value
    assert (out / "sub-cnsmyeloma" / "csf.tsv").is_file()
    assert (out / "leukotrack.sqlite").is_file()


def test_a_failing_page_shows_a_message_not_a_traceback():
    def script() -> None:
        from dashboard.state import framed

        @framed("Broken")
        def broken() -> None:
            raise RuntimeError("disk on fire")

        broken()

    app = AppTest.from_function(script).run()
    assert not app.exception
    assert "disk on fire" in app.error[0].value
    assert "Research use only" in app.caption[0].value


# ----------------------------------------------------------------------------------- figures
def test_overview_figure_lanes_curve_and_events(analyzed_samples):
    outputs = load_case_outputs(analyzed_samples / "sub-indexcase")
    dates = index_dates(outputs)
    assert dates == {
        "first_mri": date(2023, 3, 14),
        "first_dose": date(2023, 1, 13),
        "symptom_onset": date(2023, 3, 8),
        "admission": date(2023, 3, 13),
        "drug_stop": date(2023, 3, 23),
    }
    figure = overview_figure(outputs, dates["symptom_onset"], "symptom onset")
    by_name = {t.name: t for t in figure.data}
    timeline = outputs.timeline
    given = timeline[(timeline["kind"] == "administration") & (timeline["item"] == "daratumumab")]
    infusions = by_name["daratumumab IV"]
    assert len(infusions.x) == len(given)
    assert infusions.marker.symbol == "triangle-up"
    assert min(infusions.x) == (date(2023, 1, 13) - date(2023, 3, 8)).days
    assert "lenalidomide" in by_name and by_name["lenalidomide"].type == "bar"  # cycles as bars
    assert len(by_name["dexamethasone held"].x) == 1
    curve = [t for t in figure.data if "indicative population curve" in (t.name or "")]
    assert len(curve) == 1
    events = {s.name: s for s in figure.layout.shapes if s.yref == "paper" and s.name}
    assert set(events) == {"symptom_onset", "admission", "drug_stop"}  # through every panel
    assert events["drug_stop"].x0 == (date(2023, 3, 23) - date(2023, 3, 8)).days
    assert "symptom onset (2023-03-08)" in figure.layout.xaxis4.title.text


def test_reiber_curves_match_the_published_formula():
    curves = reiber_curves(np.array([5e-3, 20e-3]))
    assert curves["upper"] == pytest.approx(
        [0.93 * np.sqrt(25e-6 + 6e-6) - 1.7e-3, 0.93 * np.sqrt(400e-6 + 6e-6) - 1.7e-3]
    )
    assert curves["upper"][0] == pytest.approx(3.478e-3, abs=1e-6)
    assert np.all(curves["lower"] < curves["mean"]) and np.all(curves["mean"] < curves["upper"])


def test_reiber_figure_places_the_drug_and_m_protein(analyzed_samples):
    outputs = load_case_outputs(analyzed_samples / "sub-cnsmyeloma")
    figure = reiber_figure(outputs.csf)
    points = {t.name: t for t in figure.data if t.mode == "markers"}
    drug = points["Q daratumumab"]
    assert list(drug.x) == pytest.approx([40.0, 40.0, 40.0])  # Q_alb 40 x 1e-3
    assert drug.y[0] == pytest.approx(4 / 277 * 1000, rel=1e-3)
    assert points["Q M-protein"].y[0] == pytest.approx(11.9 * 40.0, rel=1e-3)


def test_overview_offers_the_pdf_report(data):
    app = _run("overview")
    app.button(key="report_make").click().run()
    assert not app.exception
    buttons = app.get("download_button")
    assert len(buttons) == 1
    made = app.session_state["report_pdf"]
    assert made[0] == ("indexcase", "first_mri")
    assert made[1][:5] == b"%PDF-" and len(made[1]) > 50_000


@pytest.fixture
def own_data(analyzed_samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the analysed samples with their store, for pages that change them."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(analyzed_samples, out)
    monkeypatch.setenv("LEUKOTRACK_DATA", str(out))
    return out


def test_a_reader_erases_a_false_lesion_from_the_viewer_and_undoes_it(own_data):
    from dashboard.views.correct import PICKED_KEY
    from followup.corrections import lesion_point, read_corrections

    folder = own_data / "sub-indexcase"
    before = (folder / "sessions.tsv").read_bytes()
    expected = _sessions(own_data).set_index("session_id")
    session = "ses-20230322"
    lesions = pd.read_csv(folder / "lesions.tsv", sep="\t")
    new = lesions[(lesions.session_id == session) & (lesions.source == "dwi")]
    new = new[new.change == "new"].iloc[0]
    point = lesion_point(folder, session, "dwi", new.lesion_id)
    app = _run("viewer", **{PICKED_KEY: {"mm": list(point), "panel": f"{session}:ADC", "at": 1}})
    # the click chose the session, the DWI lesions and the lesion under the point
    assert app.selectbox(key="correct_session").value == session
    assert app.radio(key="correct_source").value == "DWI"
    assert app.selectbox(key="correct_lesion").value.startswith(f"{new.lesion_id} ")
    assert app.button(key="correct_apply").disabled  # no reason yet
    app.text_input(key="correct_reason").input("susceptibility artefact, not a lesion").run()
    app.button(key="correct_apply").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("re-measured and re-tracked" in s.value for s in app.success)
    after = pd.read_csv(folder / "sessions.tsv", sep="\t").set_index("session_id")
    assert after.loc[session, "dwi_lesion_count"] == expected.loc[session, "dwi_lesion_count"] - 1
    assert after.loc[session, "corrected"] == "dwi"
    assert "1 correction active" in app.expander[-1].label
    rows = {r["id"]: r["label"] for r in _viewer_args(app)["rows"]}
    assert "DWI " in rows[session] and "mL (corrected)" in rows[session]
    overview = "\n".join(m.value for m in _run("overview").markdown)
    assert "DWI corrected" in overview and "daratumumab" in overview  # drug state per session
    (audit,) = [t.value for t in app.table if "reason" in t.value.columns]
    assert audit.iloc[0]["reason"] == "susceptibility artefact, not a lesion"
    app.button(key="correct_undo").click().run()
    assert (folder / "sessions.tsv").read_bytes() == before
    assert "0 corrections active" in app.expander[-1].label
    # paint a 4 mm sphere at a point clicked beside the lesion: the session's DWI volume grows
    app.session_state[PICKED_KEY] = {
        "mm": [point[0] + 15.0, point[1], point[2]],
        "panel": f"{session}:DWI",
        "at": 2,
    }
    app.radio(key="correct_action").set_value("Paint sphere at point").run()
    app.number_input(key="correct_radius_paint").set_value(4.0).run()
    app.text_input(key="correct_reason").input("missed lesion").run()
    app.button(key="correct_apply").click().run()
    assert not app.exception, [e.value for e in app.exception]
    painted = pd.read_csv(folder / "sessions.tsv", sep="\t").set_index("session_id")
    assert (
        painted.loc[session, "dwi_lesion_volume_ml"] > expected.loc[session, "dwi_lesion_volume_ml"]
    )
    (paint,) = [r for r in read_corrections(folder) if r["status"] == "active"]
    assert (paint["action"], float(paint["radius_mm"])) == ("paint", 4.0)


def test_the_viewer_caption_says_when_a_resolved_lesion_is_within_noise():
    """A lesion not found again whose loss is within measurement noise (its image may still hold
    it) is marked green like the others, and the caption says it is within noise."""
    from dashboard.views.viewer import resolved_caption

    assert resolved_caption([]) == ""
    gone = [("D001", "decrease"), ("D002", "decrease")]
    assert resolved_caption(gone) == " · resolved (D001, D002, green)"
    assert resolved_caption([*gone, ("D004", "within noise")]) == (
        " · resolved (D001, D002, D004 within measurement noise, green)"
    )
    # outputs without intervals (--uncertainty off): no label, plainly resolved
    assert resolved_caption([("D001", "")]) == " · resolved (D001, green)"
