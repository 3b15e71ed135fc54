"""One module per dashboard page; each has a ``show()`` that Streamlit runs as the page."""
