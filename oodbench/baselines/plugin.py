"""Registers the built-in baseline scorers and their methods."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.baselines.clipn import CLIPN_BACKBONES, CLIPNScorer
from oodbench.baselines.csp import CSPScorer
from oodbench.baselines.glmcm import GLMCMScorer
from oodbench.baselines.neglabel import NegLabelScorer
from oodbench.baselines.softmax import EnergyScorer, MaxLogitScorer, MCMScorer, MSPScorer
from oodbench.hookspecs import Register
from oodbench.method import ComponentRef, MethodSpec

SCORERS = (MCMScorer, MSPScorer, MaxLogitScorer, EnergyScorer)
LABEL_SCORERS = (NegLabelScorer, CSPScorer)

# The published numbers of MCM (one eval script for MCM, energy and max-logit; MSP is MCM at
# T = 0.01), GL-MCM, NegLabel and CSP were computed with torchvision's default bilinear
# Resize(224) -> CenterCrop(224) (MCM and GL-MCM utils/train_eval_util.py, NegLabel and CSP
# mmcls/datasets/ood_dataset.py)
REFERENCE_INTERPOLATION = "bilinear"

REFERENCES = {
    "mcm": "Ming et al., Delving into OOD Detection with Vision-Language Representations, "
           "NeurIPS 2022",
    "msp": "Hendrycks & Gimpel, ICLR 2017 (on CLIP logits)",
    "maxlogit": "Hendrycks et al., Scaling OOD Detection to the Real World, ICML 2022",
    "energy": "Liu et al., Energy-based OOD Detection, NeurIPS 2020 (on CLIP logits)",
    "neglabel": "Jiang et al., Negative Label Guided OOD Detection with Pretrained "
                "Vision-Language Models, ICLR 2024",
    "gl-mcm": "Miyai et al., GL-MCM: Global and Local Maximum Concept Matching for Zero-Shot "
              "Out-of-Distribution Detection, IJCV 2025 (arXiv 2304.04521)",
    "clipn": "Wang et al., CLIPN for Zero-Shot OOD Detection: Teaching CLIP to Say No, "
             "ICCV 2023 (github.com/xmed-lab/CLIPN)",
    "csp": "Chen et al., Conjugated Semantic Pool Improves OOD Detection with Pre-trained "
           "Vision-Language Models, NeurIPS 2024",
}


@hookimpl
def register_scorers(register: Register) -> None:
    for scorer in (*SCORERS, GLMCMScorer, *LABEL_SCORERS, CLIPNScorer):
        register(scorer)


@hookimpl
def register_methods(register: Register) -> None:
    for scorer in SCORERS:
        register(MethodSpec(name=scorer.name, scorer=ComponentRef(scorer.name),
                            description=scorer.description,
                            reference=REFERENCES.get(scorer.name, ""),
                            interpolation=REFERENCE_INTERPOLATION))
    register(MethodSpec(name="neglabel", scorer=ComponentRef("neglabel"),
                        label_generator=ComponentRef("neglabel-mining"),
                        description="NegLabel: WordNet negatives mined far from the ID labels, "
                                    "grouped softmax score.", reference=REFERENCES["neglabel"],
                        interpolation=REFERENCE_INTERPOLATION))
    register(MethodSpec(name="gl-mcm", scorer=ComponentRef("gl-mcm"),
                        description=GLMCMScorer.description, reference=REFERENCES["gl-mcm"],
                        interpolation=REFERENCE_INTERPOLATION))
    register(MethodSpec(name="csp", scorer=ComponentRef("csp"),
                        label_generator=ComponentRef("csp-mining"),
                        description="CSP: NegLabel's negatives on a narrower noun pool plus "
                                    "conjugated 'adjective superclass' labels, grouped score.",
                        reference=REFERENCES["csp"], interpolation=REFERENCE_INTERPOLATION))
    # CLIPN's own numbers used open_clip's transform (bicubic): the backbone's own ("")
    register(MethodSpec(name="clipn", scorer=ComponentRef("clipn"), backbones=CLIPN_BACKBONES,
                        description="CLIPN-ATD: 'no'-tower agreeing-to-differ score; runs on "
                                    "clipn-b16 (--weights CLIPN.pt) or, offline, mini-clipn "
                                    "(-p clipn.variant=ctw for CTW).",
                        reference=REFERENCES["clipn"]))
