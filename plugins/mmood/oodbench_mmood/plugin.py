"""Registers MM-OOD's label generators (whole and per branch), its offline renderer preset and
the mmood method (which scores with EOE's scorer from oodbench-eoe)."""

from __future__ import annotations

from oodbench import ComponentRef, MethodSpec, hookimpl
from oodbench.hookspecs import Register
from oodbench_mmood.labels import MMOODFar, MMOODLabels, MMOODNear


@hookimpl
def register_label_generators(register: Register) -> None:
    register(MMOODLabels)
    register(MMOODNear)  # each branch alone, for other methods to reuse
    register(MMOODFar)


@hookimpl
def register_image_generators(register: Register) -> None:
    from oodbench_mini.diffusion import MiniDiffusion

    # MM-OOD's offline far branch renders ~12 images per generation: the mini model's 32x32
    # samples look the same at 20 and 50 DDIM steps (checked by eye), at 2.5x less CPU time
    register(MiniDiffusion, name="mini-diffusion-fast", defaults={"steps": 20},
             description="mini-diffusion at 20 DDIM steps (MM-OOD's offline default).")


@hookimpl
def register_methods(register: Register) -> None:
    register(MethodSpec(
        name="mmood",
        description="MM-OOD: outlier labels from a multimodal LLM shown ID train images (near) "
                    "and generated outlier images (far); EOE's score.",
        label_generator=ComponentRef("mmood-labels"),
        scorer=ComponentRef("eoe"),
        reference="Vision Also You Need: multimodal LLM outlier labels (MM-OOD), 2026",
    ))
