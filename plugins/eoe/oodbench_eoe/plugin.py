"""Registers EOE's label generators (``envision`` and its family variants), its scorer and the
``eoe`` method."""

from __future__ import annotations

from oodbench import ComponentRef, MethodSpec, hookimpl
from oodbench.hookspecs import Register
from oodbench_eoe.labels import FAMILY_GENERATORS, EnvisionLabels
from oodbench_eoe.score import EOEScorer

EOE_REFERENCE = ("Cao et al., Envisioning Outlier Exposure by Large Language Models for "
                 "Out-of-Distribution Detection, ICML 2024")


@hookimpl
def register_label_generators(register: Register) -> None:
    register(EnvisionLabels)
    for family in FAMILY_GENERATORS:  # one family each, for other methods to reuse
        register(family)


@hookimpl
def register_scorers(register: Register) -> None:
    register(EOEScorer)


@hookimpl
def register_methods(register: Register) -> None:
    register(MethodSpec(
        name="eoe",
        description="EOE: LLM-envisioned outlier labels (offline default: the WordNet "
                    "envisioner), score max ID p − 0.25·max outlier p.",
        label_generator=ComponentRef("envision"),
        scorer=ComponentRef("eoe"),
        reference=EOE_REFERENCE,
        interpolation="bilinear",  # EOE utils/train_eval_util.py: torchvision Resize(224)
    ))
