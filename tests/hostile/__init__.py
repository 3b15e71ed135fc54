"""Generated hostile and odd inputs, one module per class group (issue 14).

Every generator builds its input in a given folder, small and fast, from scratch (nothing is
downloaded and no real scan is copied). The command line, output folder and dashboard classes:

* :mod:`tests.hostile.cases`: clinical-only case folders (a few seconds to analyse), folder names
  that collide on one case id, text that rich would read as markup;
* :mod:`tests.hostile.outputs`: damaged output folders (cut provenance.json, missing tables, files of
  the user's, leftovers of killed runs) and tiny or read-only disks.

The clinical-file and loader classes have their own modules beside these (``clinical``, ``loader``).
"""
