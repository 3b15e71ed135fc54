"""``python -m dashboard.server APP [streamlit options]``: `streamlit run` with the dashboard's heavy
modules imported and exercised before the server accepts its first browser.

Streamlit imports a page's modules, and Plotly its property validators, on the first run of the
script, i.e. while the first reader waits (about two seconds here). Doing that work before the server
is up takes it out of the first page view. Only Streamlit-free code runs here (the pages' caches bind
to the runtime when the app first runs).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["main", "warm_up"]

log = logging.getLogger("leukotrack.dashboard")


def warm_up(data: Path | None) -> None:
    """Import and exercise what the first page view needs: Plotly's figure machinery (the overview
    figure of the first analysed case in ``data``, when there is one), pandas' TSV reader, the
    store's SQL layer. Never raises: a failure here only means a slower first view."""
    try:
        from dashboard.figures import PREBUILT, overview_figure, reiber_figure
        from followup.results import (
            INDEX_CHOICES,
            case_folders_in,
            index_dates,
            load_case_outputs,
        )
        from followup.store import Store

        folders = case_folders_in(data) if data else []
        for folder in folders[:2]:
            outputs = load_case_outputs(folder)
            dates = index_dates(outputs)
            key = next(iter(dates), "first_mri")  # the sidebar's default day 0
            figure = overview_figure(outputs, dates.get(key), INDEX_CHOICES.get(key, key))
            figure.to_json()
            stamp = (folder / "provenance.json").stat().st_mtime
            PREBUILT[(str(folder.resolve()), key, stamp)] = figure
            reiber_figure(outputs.csf).to_json()
        if data is not None and (data / "leukotrack.sqlite").is_file():
            Store.read_cohort(data)
    except Exception:  # the first view will simply be slower
        log.warning("warm-up failed", exc_info=True)


def main() -> None:
    """Warm up, then hand over to `streamlit run` with the given arguments."""
    import imaging.display  # noqa: F401  (SciPy, NiBabel, Pillow)

    data = os.environ.get("LEUKOTRACK_DATA")
    warm_up(Path(data) if data else None)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
