"""Registers OLE's label generator, fine-tuner, scorer and methods with oodbench."""

from __future__ import annotations

import oodbench
from oodbench.baselines.clipn import CLIPN_BACKBONES
from oodbench.hookspecs import Register
from oodbench.method import ComponentRef, MethodSpec
from oodbench_ole.finetuner import OLEPrototypes
from oodbench_ole.labels import OLEOutliers
from oodbench_ole.scorer import OLECLIPNScorer, OLEScorer

REFERENCE = ("Ding & Pang, Zero-Shot Out-of-Distribution Detection with Outlier Label "
             "Exposure, IJCNN 2024 (arXiv 2406.01170); code github.com/Choubo/OLE")


@oodbench.hookimpl
def register_label_generators(register: Register) -> None:
    register(OLEOutliers)


@oodbench.hookimpl
def register_finetuners(register: Register) -> None:
    register(OLEPrototypes)


@oodbench.hookimpl
def register_scorers(register: Register) -> None:
    register(OLEScorer)
    register(OLECLIPNScorer)


@oodbench.hookimpl
def register_methods(register: Register) -> None:
    register(MethodSpec(
        name="ole", scorer=ComponentRef("ole"), label_generator=ComponentRef("ole-outliers"),
        finetuners=(ComponentRef("ole-prototypes"),), reference=REFERENCE,
        description="OLE (CLIP): WordNet outlier labels -> outlier + in-between prototypes -> "
                    "ID share of softmax over ID and prototypes. Not the paper's CLIPN variant.",
    ))
    # the published form: q_i from a CLIPN backbone's "no" tower
    register(MethodSpec(
        name="ole-clipn", label_generator=ComponentRef("ole-outliers"),
        finetuners=(ComponentRef("ole-prototypes"),), reference=REFERENCE,
        scorer=ComponentRef("ole-clipn"), backbones=CLIPN_BACKBONES,
        description="OLE (CLIPN), the paper's form: S = Σ_ID p_i·q_i with q_i CLIPN's 'yes' "
                    "probability; runs on clipn-b16 (--weights CLIPN.pt) or, offline, "
                    "mini-clipn.",
    ))
    # the abstract's "raw OLE" ablation: every outlier label in the softmax, no prototypes
    register(MethodSpec(
        name="ole-raw", label_generator=ComponentRef("ole-outliers"), reference=REFERENCE,
        scorer=ComponentRef("ole", {"id_templates": "auto"}),
        description="OLE (CLIP) without prototype learning: all outlier label embeddings in "
                    "the softmax (the paper's raw-OLE ablation).",
    ))
