"""Registers the built-in diffusion backends and their presets (diffusers is imported lazily)."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.generative.diffusion import DiffusersGenerator
from oodbench.hookspecs import Register


@hookimpl
def register_image_generators(register: Register) -> None:
    register(DiffusersGenerator)  # diffusers-txt2img: SD-1.5, 50 steps, guidance 7.5
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
