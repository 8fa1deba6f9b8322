"""OLE (Outlier Label Exposure) as an oodbench plugin; the hooks are in ``plugin.py``."""
