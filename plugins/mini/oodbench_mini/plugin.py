"""Registers the offline mini world's components: the mini and mini-clipn backbones and
mini-diffusion."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.hookspecs import Register
from oodbench_mini.clipn import MiniCLIPNBackbone
from oodbench_mini.diffusion import MiniDiffusion
from oodbench_mini.model import MiniBackbone


@hookimpl
def register_backbones(register: Register) -> None:
    register(MiniBackbone)
    register(MiniCLIPNBackbone)


@hookimpl
def register_image_generators(register: Register) -> None:
    register(MiniDiffusion)
