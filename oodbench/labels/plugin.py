"""Registers the built-in label generators."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.hookspecs import Register
from oodbench.labels.csp import CSPMining
from oodbench.labels.generators import FileLabels, NegLabelMining, WordNetLabels


@hookimpl
def register_label_generators(register: Register) -> None:
    for generator in (WordNetLabels, NegLabelMining, CSPMining, FileLabels):
        register(generator)
