"""Registers the built-in diffusion backend (diffusers is imported lazily)."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.generative.diffusion import DiffusersGenerator
from oodbench.hookspecs import Register


@hookimpl
def register_image_generators(register: Register) -> None:
    register(DiffusersGenerator)  # diffusers-txt2img: SD-1.5, 50 steps, guidance 7.5
