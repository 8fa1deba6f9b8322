"""Registers the built-in backbones and their presets."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.backbones.clipn import CLIPNBackbone
from oodbench.backbones.hf import HFCLIPBackbone
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.hookspecs import Register

PRESETS = {
    "clip-b16": ({"model": "ViT-B-16-quickgelu", "pretrained": "openai"},
                 "OpenAI CLIP ViT-B/16 via open_clip (the field's default backbone)."),
    "clip-b32": ({"model": "ViT-B-32-quickgelu", "pretrained": "openai"},
                 "OpenAI CLIP ViT-B/32 via open_clip."),
    "clip-l14": ({"model": "ViT-L-14-quickgelu", "pretrained": "openai"},
                 "OpenAI CLIP ViT-L/14 via open_clip."),
}


@hookimpl
def register_backbones(register: Register) -> None:
    register(OpenCLIPBackbone)
    register(HFCLIPBackbone)
    register(HFCLIPBackbone, name="hf-siglip-b16",
             defaults={"model_id": "google/siglip-base-patch16-224"},
             description="SigLIP ViT-B/16 via transformers (sigmoid loss: temperatures differ).")
    for name, (defaults, description) in PRESETS.items():
        register(OpenCLIPBackbone, name=name, defaults=defaults, description=description)
    register(CLIPNBackbone)
    register(CLIPNBackbone, name="clipn-b16", defaults={"model": "ViT-B-16"},
             description="CLIPN ViT-B/16 (CLIP + 'no' text tower) from a released CLIPN "
                         "checkpoint: --weights PATH.")
