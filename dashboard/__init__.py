"""The Streamlit dashboard: the only package that imports streamlit (DESIGN.md §2)."""
