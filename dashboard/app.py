"""Entry point of the dashboard: ``streamlit run dashboard/app.py`` (``leukotrack dashboard`` does it
with safe server settings). Reads the output folder named by ``$LEUKOTRACK_DATA``.
"""

from __future__ import annotations

import streamlit as st

from dashboard.navigation import aliases, pages
from dashboard.state import sidebar

st.set_page_config(page_title="leukotrack", page_icon="🧠", layout="wide")
menu = pages()
# the menu is drawn here, so that pages reachable by URL only (aliases) stay out of it
navigation = st.navigation([*menu.values(), *aliases()], position="hidden")
with st.sidebar:
    for page in menu.values():
        st.page_link(page)
sidebar()
navigation.run()
