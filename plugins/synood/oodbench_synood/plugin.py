"""Registers SynOOD's components, its in-painting preset and the synood method (plus its
ablations)."""

from __future__ import annotations

from oodbench import ComponentRef, MethodSpec, hookimpl
from oodbench.generative.diffusion import DiffusersGenerator
from oodbench.hookspecs import Register
from oodbench_synood.classifiers import TorchvisionResNet50, ZeroShotHead
from oodbench_synood.finetune import LabelTuner, ProjectionTuner
from oodbench_synood.synthesizer import SynOODSynthesizer

REFERENCE = ("Li et al., Synthesizing Near-Boundary OOD Samples for Out-of-Distribution "
             "Detection, ICCV 2025")


def synood_spec(name: str, description: str, synth: dict | None = None,
                stage_a: dict | None = None, stage_b: dict | None = None) -> MethodSpec:
    return MethodSpec(
        name=name,
        description=description,
        label_generator=ComponentRef("neglabel-mining"),
        synthesizer=ComponentRef("synood-inpaint", synth or {}),
        finetuners=(ComponentRef("synood-projection", stage_a or {}),
                    ComponentRef("synood-label-tuning", stage_b or {})),
        scorer=ComponentRef("neglabel", {"id_template": "a nice {}"}),
        reference=REFERENCE,
    )


@hookimpl
def register_image_generators(register: Register) -> None:
    # SynOOD's in-painting settings: 512², 20 steps at strength 0.6 (13 UNet calls), guidance 8
    register(
        DiffusersGenerator,
        name="diffusers-inpaint",
        defaults={
            "model": "stabilityai/stable-diffusion-2-inpainting",
            "steps": 20,
            "strength": 0.6,
            "guidance": 8.0,
        },
        description="SD-2-inpainting via diffusers with SynOOD's settings (20 steps, 0.6, 8).",
    )


@hookimpl
def register_synthesizers(register: Register) -> None:
    register(SynOODSynthesizer)


@hookimpl
def register_finetuners(register: Register) -> None:
    register(ProjectionTuner)
    register(LabelTuner)


@hookimpl
def register_methods(register: Register) -> None:
    register(synood_spec("synood", "SynOOD: energy-guided in-painted near-boundary OOD images, "
                                   "then image-side projection + tuned negative labels; "
                                   "NegLabel-style grouped score."))
    register(synood_spec("synood-no-energy", "SynOOD ablation: no energy gradient (r = 0).",
                         synth={"step": 0.0}))
    register(synood_spec("synood-no-stage-a", "SynOOD ablation: without the image projection.",
                         stage_a={"enabled": False}))
    register(synood_spec("synood-no-stage-b", "SynOOD ablation: without label tuning.",
                         stage_b={"enabled": False}))


@hookimpl
def register_image_classifiers(register: Register) -> None:
    register(ZeroShotHead)
    register(TorchvisionResNet50)
