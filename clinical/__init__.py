"""What was given and measured outside the images: exposures, dosing schedules, PK, CSF indices.

This layer knows nothing of :mod:`imaging`, of the results store or of Streamlit (DESIGN.md §2).
"""
