"""A plugin that fails at import time, to test that it cannot take the others down."""

raise RuntimeError("this plugin is broken on purpose")
