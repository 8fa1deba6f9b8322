"""An example third-party oodbench plugin: a label generator, a fine-tuner, a scorer and two
methods (plugin.py registers them)."""
