"""The toy backbone and colour images live in :mod:`oodbench.testing.toy` (the plugin authors'
kit); the core tests import them from there through this name."""

from oodbench.testing.toy import (  # noqa: F401
    CALLS,
    COLOURS,
    DIM,
    ToyBackbonePlugin,
    ToyColourBackbone,
    write_colour_images,
    write_toy_suite,
)
