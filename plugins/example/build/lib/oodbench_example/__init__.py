"""A minimal oodbench plugin (see plugin.py)."""
