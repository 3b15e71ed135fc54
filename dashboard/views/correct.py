"""The reader's lesion corrections, under the viewer: erase a false lesion, paint or grow a missed one,
reject a session's source from measurement, undo; with the audit trail of the case.

The point comes from the viewer (a left click on any panel, in baseline space); erasing takes a
lesion by name, its point found in the label map. Every edit goes through
:func:`followup.corrections.apply_edit`: stored with who, when and why, the case re-derived from its
automatic result (which is kept) and marked corrected everywhere.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from followup.corrections import (
    CORRECTION_COLUMNS,
    LesionEdit,
    apply_edit,
    lesion_at,
    lesion_point,
    read_corrections,
    undo_last,
)
from followup.errors import CorrectionError
from followup.results import CaseOutputs, lesions_of

__all__ = ["PICKED_KEY", "corrections", "take_pick"]

#: Session state: the point the reader last clicked in the viewer (mm, panel id).
PICKED_KEY = "viewer_picked"
_ACTIONS = {
    "Erase lesion": "erase",
    "Paint sphere at point": "paint",
    "Grow region from point": "grow",
    "Reject session from measurement": "reject",
}
_SOURCES = {"FLAIR": "flair", "DWI": "dwi"}


def _lesion_choices(outputs: CaseOutputs, session: str, source: str) -> list[str]:
    rows = lesions_of(outputs.lesions, session, source)
    if rows.empty:
        return []
    rows = rows[pd.to_numeric(rows["volume_ml"], errors="coerce") > 0]
    return [
        f"{r['lesion_id']} · {float(r['volume_ml']):.3f} mL · {r['change']} · "
        f"{r['hemisphere']} {r['region']}"
        for r in rows.to_dict("records")
    ]


def _store() -> Any:
    from followup.store import Store

    return Store(data.data_dir())


def _edit_from_widgets(folder: Path) -> LesionEdit:
    """The edit the tools describe now, read from their widgets' state (a button's callback runs
    before the page does, so it must not use values bound at the previous run)."""
    state = st.session_state
    action = _ACTIONS[state["correct_action"]]
    source = _SOURCES[state["correct_source"]]
    session = state["correct_session"]
    lesion_id, point, radius = "", None, None
    if action == "erase":
        chosen = str(state.get("correct_lesion", ""))
        lesion_id = chosen.split(" ")[0] if chosen[:1] in ("F", "D") else ""
        point = lesion_point(folder, session, source, lesion_id) if lesion_id else None
    elif action in ("paint", "grow"):
        mm = (state.get(PICKED_KEY) or {}).get("mm")
        point = (float(mm[0]), float(mm[1]), float(mm[2])) if mm else None
        radius = float(state.get(f"correct_radius_{action}", 3.0))
    return LesionEdit(
        session_id=session,
        source=source,
        action=action,
        author=str(state.get("correct_author") or getpass.getuser()),
        reason=str(state.get("correct_reason") or ""),
        point_mm=point,
        radius_mm=radius,
        lesion_id=lesion_id,
    )


def _apply(folder: Path) -> None:
    """The "Apply correction" callback: store the edit, re-derive and re-ingest the case; the page
    then runs once, on the corrected outputs."""
    store = _store()
    try:
        edit = _edit_from_widgets(folder)
        result = apply_edit(store, folder, edit)
    except CorrectionError as error:
        st.session_state["correction_message"] = ("error", str(error))
        return
    finally:
        store.close()
    done = result.edits[-1]
    after = "rejected" if done.volume_after_ml is None else f"{done.volume_after_ml:.3f} mL"
    st.session_state["correction_message"] = (
        "success",
        f"{edit.session_id} {edit.source.upper()} {edit.action}: {done.volume_before_ml:.3f} mL "
        f"-> {after}; re-measured and re-tracked in {result.seconds:.1f} s (corrected)",
    )


def _undo(folder: Path) -> None:
    """The "Undo last correction" callback."""
    store = _store()
    try:
        author = str(st.session_state.get("correct_author") or getpass.getuser())
        result = undo_last(store, folder, author)
    finally:
        store.close()
    message = (
        "no correction to undo"
        if result is None
        else f"undone; {sum(e.active for e in result.edits)} correction(s) left "
        f"({result.seconds:.1f} s)"
    )
    st.session_state["correction_message"] = ("success", message)


def take_pick(picked: dict[str, Any]) -> None:
    """Keep the point last clicked in the viewer (its value: ``mm``, ``panel``, ``at``)."""
    st.session_state[PICKED_KEY] = picked


def _follow(picked: dict[str, Any]) -> None:
    """A click not seen before turns the tools to its session and source (a FLAIR panel: FLAIR
    lesions; DWI or ADC: DWI lesions); the reader's own choices stay until the next click."""
    if not picked or picked.get("at") == st.session_state.get("correct_followed"):
        return
    st.session_state["correct_followed"] = picked.get("at")
    session, _, sequence = str(picked.get("panel", "")).partition(":")
    if session:
        st.session_state["correct_session"] = session
    if sequence:
        st.session_state["correct_source"] = "FLAIR" if sequence == "FLAIR" else "DWI"


def corrections(outputs: CaseOutputs) -> None:
    """The correction tools and the audit trail of the case in view."""
    audit = read_corrections(outputs.folder)
    active = sum(row["status"] == "active" for row in audit)
    title = f"Correct lesions ({active} correction{'s' if active != 1 else ''} active)"
    with st.expander(title, expanded=True):
        message = st.session_state.pop("correction_message", None)
        if message is not None:
            (st.success if message[0] == "success" else st.error)(message[1])
        picked = st.session_state.get(PICKED_KEY) or {}
        _follow(picked)
        panel = str(picked.get("panel", ""))
        picked_session = panel.partition(":")[0]
        point = picked.get("mm")
        sessions = outputs.session_ids
        if st.session_state.get("correct_session") not in sessions:  # first run, or another case
            st.session_state["correct_session"] = sessions[0]
        left, middle, right = st.columns([2, 1, 3])
        session = left.selectbox("Session", sessions, key="correct_session")
        source_label = middle.radio(
            "Lesions", list(_SOURCES), key="correct_source", horizontal=True
        )
        source = _SOURCES[source_label]
        action_label = right.radio("Action", list(_ACTIONS), horizontal=True, key="correct_action")
        action = _ACTIONS[action_label]
        where = (
            f"Point: x {point[0]:.1f}, y {point[1]:.1f}, z {point[2]:.1f} mm (baseline space), "
            f"clicked on {panel.replace(':', ' ')}"
            if point
            else "Point: none yet; left-click a panel of the viewer to pick one."
        )
        lesion_id = ""
        if action == "erase":
            choices = _lesion_choices(outputs, session, source)
            under = (
                lesion_at(outputs.folder, session, source, point)
                if point and picked_session == session
                else None
            )
            options = choices or ["(no lesion in this session)"]
            fresh = picked.get("at") != st.session_state.get("correct_lesion_pick")
            if fresh or st.session_state.get("correct_lesion") not in options:
                st.session_state["correct_lesion_pick"] = picked.get("at")
                st.session_state["correct_lesion"] = next(
                    (c for c in options if under and c.startswith(f"{under} ")), options[0]
                )
            chosen = st.selectbox(
                "Lesion to erase",
                options,
                key="correct_lesion",
                help="The lesion under the clicked point is chosen for you.",
            )
            lesion_id = chosen.split(" ")[0] if choices else ""
            point = lesion_point(outputs.folder, session, source, lesion_id) if lesion_id else None
        elif action in ("paint", "grow"):
            st.caption(where)
            st.number_input(
                "Radius (mm)",
                min_value=0.5,
                max_value=50.0,
                value=3.0 if action == "paint" else 10.0,
                step=0.5,
                key=f"correct_radius_{action}",
                help="Paint: the sphere's radius. Grow: how far from the point the region may reach "
                "(voxels brighter than midway between the point and the sphere's rim).",
            )
        first, second = st.columns([3, 1])
        reason = first.text_input(
            "Reason (kept in the audit trail)",
            key="correct_reason",
            placeholder="e.g. susceptibility artefact in the right cerebellum, not a lesion",
        )
        second.text_input("Reader", value=getpass.getuser(), key="correct_author")
        go, undo, _ = st.columns([1, 1, 3])
        ready = bool(reason.strip()) and (action == "reject" or point is not None)
        go.button(
            "Apply correction",
            type="primary",
            disabled=not ready,
            key="correct_apply",
            on_click=_apply,
            args=(outputs.folder,),
        )
        undo.button(
            "Undo last correction",
            disabled=active == 0,
            key="correct_undo",
            on_click=_undo,
            args=(outputs.folder,),
        )
        st.caption(
            "Corrections never overwrite the automatic result (kept in automatic/): volumes, "
            "tracking, tables, report and DICOM SEG are re-derived and marked corrected."
        )
        if audit:
            frame = pd.DataFrame(audit, columns=CORRECTION_COLUMNS)
            hidden = ("edit_id", "x_mm", "y_mm", "z_mm", "radius_mm", "undone_utc", "undone_by")
            shown = frame[[c for c in CORRECTION_COLUMNS if c not in hidden]]
            st.table(shown.iloc[::-1].set_index("at_utc"))  # newest first; a plain table draws fast
            st.download_button(
                "Download the audit trail (TSV)",
                (outputs.folder / "corrections.tsv").read_bytes(),
                file_name=f"{outputs.case_id}_corrections.tsv",
                mime="text/tab-separated-values",
                key="correct_audit_download",
            )
