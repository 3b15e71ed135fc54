"""Hostile and odd outputs in the dashboard (issue 14), with Streamlit's AppTest as in
test_dashboard.py: one cut case shows its own named problem while the other cases and pages work, a
failed case says why, the import page stays inside its root and refuses case-id collisions, and an
unexpected error is one line naming its debug log. Clinical-only cases keep it fast."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from followup.cli import app as cli
from tests.hostile.cases import clinical_case
from tests.hostile.outputs import cut_file, hidden_entries

runner = CliRunner()


def _page(name: str) -> None:
    """An AppTest script: the sidebar, then one page (as st.navigation would run it)."""
    import importlib

    from dashboard.state import sidebar

    sidebar()
    importlib.import_module(f"dashboard.views.{name}").show()


def _run(name: str, **state: object) -> AppTest:
    app = AppTest.from_function(_page, args=(name,), default_timeout=120)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _analyse(*args: object) -> None:
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two analysed cases, ``a`` intact and ``b`` with a cut provenance.json."""
    out = tmp_path / "out"
    for name in ("a", "b"):
        _analyse("analyze", clinical_case(tmp_path / "cases" / name), "--out", out)
    cut_file(out / "sub-b" / "provenance.json")
    monkeypatch.setenv("LEUKOTRACK_DATA", str(out))
    monkeypatch.setenv("LEUKOTRACK_IMPORT_ROOT", str(tmp_path / "cases"))
    monkeypatch.setenv("LEUKOTRACK_LOG_DIR", str(tmp_path / "logs"))
    return out


def test_a_cut_case_is_listed_with_its_problem_and_the_others_work(out):
    app = _run("cohort")
    table = app.dataframe[0].value.set_index("case_id")
    assert table.loc["a", "status"] == "done"
    assert table.loc["b", "status"] == "failed"
    assert "IncompleteAnalysisError" in table.loc["b", "error"]
    assert "provenance.json is cut" in table.loc["b", "error"]
    assert not app.error


def test_a_case_cut_after_the_store_recorded_it_shows_its_problem(out, tmp_path):
    root = tmp_path / "root"
    clinical_case(root / "c")
    _analyse("batch", root, "--out", out, "--workers", "0")
    cut_file(out / "sub-c" / "provenance.json")
    app = _run("cohort")
    table = app.dataframe[0].value.set_index("case_id")
    assert table.loc["c", "status"] == "failed"
    assert "provenance.json is cut" in table.loc["c", "error"]
    assert "provenance.json is cut" in _run("overview", case_id="c").error[0].value


def test_the_cut_case_page_names_its_problem_and_the_intact_case_shows(out):
    broken = _run("overview", case_id="b")
    (message,) = [e.value for e in broken.error]
    assert "could not be analysed" in message and "provenance.json is cut" in message
    intact = _run("overview", case_id="a")
    assert not intact.error
    assert any("**a**" in m.value for m in intact.markdown)


def test_import_and_run_still_works_beside_a_cut_case(out, tmp_path):
    app = _run("run")
    assert not app.error
    app.text_input(key="run_folder").set_value(str(tmp_path / "cases" / "a")).run()
    app.button(key="run_go").click().run()
    assert not app.exception and not app.error
    assert "a analysed" in app.success[0].value or "a unchanged" in app.success[0].value


def test_a_failed_case_says_why(out, tmp_path):
    root = tmp_path / "root"
    (root / "emptycase").mkdir(parents=True)
    result = runner.invoke(cli, ["batch", str(root), "--out", str(out), "--workers", "0"])
    assert result.exit_code == 1
    app = _run("lesions", case_id="emptycase")
    (message,) = [e.value for e in app.error]
    assert "emptycase could not be analysed: NoImagesFoundError" in message


def test_the_import_page_stays_inside_its_root(out, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "secret-patient-folder").mkdir(parents=True)
    app = _run("run")
    app.text_input(key="run_folder").set_value(str(outside)).run()
    (message,) = [e.value for e in app.error]
    assert "outside the folder this dashboard may read" in message
    assert "--import-root" in message
    assert not any("secret-patient-folder" in c.value for c in app.caption)
    # a symbolic link inside the root does not lead outside it
    (tmp_path / "cases" / "link").symlink_to(outside)
    app.text_input(key="run_folder").set_value(str(tmp_path / "cases" / "link")).run()
    assert "outside the folder" in app.error[0].value
    # inside the root, the sub-folders are listed
    app.text_input(key="run_folder").set_value(str(tmp_path / "cases")).run()
    assert not app.error
    assert any("Sub-folders: a, b" in c.value for c in app.caption)


def test_the_import_page_refuses_a_case_id_collision(out, tmp_path):
    first = clinical_case(tmp_path / "cases" / "patientA" / "DICOM", label="A's event")
    second = clinical_case(tmp_path / "cases" / "patientB" / "DICOM", label="B's event")
    app = _run("run")
    app.text_input(key="run_folder").set_value(str(first)).run()
    app.button(key="run_go").click().run()
    assert "DICOM analysed" in app.success[0].value
    before = (out / "sub-DICOM" / "timeline.tsv").read_bytes()
    app.text_input(key="run_folder").set_value(str(second)).run()
    app.button(key="run_go").click().run()
    assert not app.exception
    (message,) = [e.value for e in app.error]
    assert "CaseIdCollisionError" in message and str(first) in message
    assert (out / "sub-DICOM" / "timeline.tsv").read_bytes() == before
    assert hidden_entries(out) == [".locks"]


def test_an_unexpected_page_error_is_one_line_naming_its_debug_log(out, tmp_path):
    def script() -> None:
        from dashboard.state import framed

        @framed("Broken")
        def broken() -> None:
            raise RuntimeError("disk on fire")

        broken()

    app = AppTest.from_function(script).run()
    assert not app.exception
    (log,) = (tmp_path / "logs").glob("leukotrack-*.log")
    (message,) = [e.value for e in app.error]
    assert message.startswith("unexpected RuntimeError: disk on fire")
    assert str(log) in message
    assert "Traceback" in log.read_text() and "Traceback" not in message
