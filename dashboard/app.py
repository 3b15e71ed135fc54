"""Entry point of the dashboard: ``streamlit run dashboard/app.py`` (``leukotrack dashboard`` does it
with safe server settings). Reads the output folder named by ``$LEUKOTRACK_DATA``.
"""

from __future__ import annotations

import streamlit as st

from dashboard.navigation import pages
from dashboard.state import sidebar

st.set_page_config(page_title="leukotrack", page_icon=":material/neurology:", layout="wide")
navigation = st.navigation(list(pages().values()))
sidebar()
navigation.run()
