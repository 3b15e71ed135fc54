"""Import and run page: analyse a local case folder into the dashboard's data folder.

Files are read where they are (no browser upload of multi-GB studies); progress is shown step by
step and a bad case ends in a readable message, with nothing half-written.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from clinical.record import CLINICAL_FILES, has_clinical_files
from dashboard import data
from dashboard.state import framed, request_case
from imaging.errors import NoImagesFoundError

__all__ = ["show"]


def _default_folder(root: Path) -> str:
    for candidate in (
        Path.cwd() / "sample_scans" / "indexcase",
        Path(__file__).resolve().parents[2] / "sample_scans" / "indexcase",
    ):
        if candidate.is_dir() and candidate.resolve().is_relative_to(root):
            return str(candidate)
    return str(root)


def _inside(folder: Path, root: Path) -> bool:
    """Whether ``folder`` (symbolic links followed) lies in ``root``."""
    return folder.resolve().is_relative_to(root)


def _describe(folder: Path) -> int:
    """Show what the folder holds; the number of MRI sessions."""
    from imaging.case import scan_case  # the image stack is imported when first needed

    try:
        index = scan_case(folder)
    except NoImagesFoundError:
        if has_clinical_files(folder):
            present = ", ".join(f for f in CLINICAL_FILES if (folder / f).is_file())
            st.info(f"{folder.name}: no images; clinical files only ({present}).")
            return 0
        raise
    lines = []
    for session in index.sessions:
        found = [s for s in ("FLAIR", "DWI", "ADC") if session.pick(s) is not None]
        lines.append(
            f"- **{session.label}** {session.study_date or ''}: {', '.join(found) or 'no usable series'}"
        )
    clinical = [f for f in CLINICAL_FILES if (folder / f).is_file()]
    st.markdown(
        f"**{index.case_id}** ({index.layout}): {len(index.sessions)} sessions\n\n"
        + "\n".join(lines)
        + (f"\n\nClinical files: {', '.join(clinical)}" if clinical else "\n\nNo clinical files.")
    )
    return len(index.sessions)


@framed("Import and run")
def show() -> None:
    """Pick a local case folder, check it, analyse it with a progress bar."""
    out = data.data_dir()
    st.markdown(
        "Analyse one patient's folder (DICOM in any layout, or BIDS-like NIfTI, with optional "
        f"clinical CSV files) into **{out}**. The files are read where they are; nothing is uploaded."
    )
    root = data.import_root()
    folder_text = st.text_input(
        "Case folder on this computer", value=_default_folder(root), key="run_folder"
    )
    folder = Path(folder_text).expanduser()
    if not folder.is_absolute():
        folder = root / folder
    if not _inside(folder, root):
        st.error(
            f"{folder} is outside the folder this dashboard may read ({root}). Type a case folder "
            "inside it, or start the dashboard with `leukotrack dashboard --import-root PATH` to "
            "allow another one."
        )
        return
    if not folder.is_dir():
        st.error(
            f"{folder} is not a folder on this computer. Type the path of one patient's folder "
            f"(inside {root})."
        )
        return
    subfolders = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if subfolders:
        st.caption(
            "Sub-folders: " + ", ".join(subfolders[:30]) + (" ..." if len(subfolders) > 30 else "")
        )
    check, run = st.columns(2)
    if check.button("Check folder", key="run_check"):
        _describe(folder)
    if run.button("Analyse", type="primary", key="run_go"):
        from followup.batch import DONE, FAILED, analyze_into_store

        sessions = _describe(folder)
        total = 4 * sessions + 3
        bar = st.progress(0.0, text="starting")
        steps = {"n": 0}

        def progress(message: str) -> None:
            steps["n"] += 1
            bar.progress(min(steps["n"] / total, 0.99), text=message)

        with st.spinner("Analysing (about a minute for the sample case)"):
            outcome = analyze_into_store(folder, out, progress=progress, command="dashboard")
        bar.progress(1.0, text="finished")
        if outcome.status == FAILED:
            st.error(f"{outcome.case_id} could not be analysed: {outcome.error}")
            return
        verb = "analysed" if outcome.status == DONE else "unchanged since its last analysis (kept)"
        st.success(f"{outcome.case_id} {verb} in {outcome.seconds:.0f} s.")
        request_case(outcome.case_id)
        st.cache_data.clear()
        from dashboard.navigation import pages

        st.page_link(pages()["overview"], label=f"Open {outcome.case_id} in the case overview")
