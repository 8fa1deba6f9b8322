"""CLIPN backbones (Wang et al., "CLIPN for Zero-Shot OOD Detection: Teaching CLIP to Say No",
ICCV 2023; github.com/xmed-lab/CLIPN): an open_clip CLIP plus a "no" text tower.

A CLIPN checkpoint is an open_clip CLIP state dict (the released ViT-B/16 ones were fine-tuned
from ``ViT-B-16`` / ``laion2b_s34b_b88k``: GELU, OpenAI mean/std, bicubic) with a second text
tower under ``*_no`` keys: ``transformer_no.*`` (a text transformer of the same shape),
``token_embedding_no``, ``positional_embedding_no``, ``ln_final_no``, ``text_projection_no``,
and ``prompt_no`` [16, context, width], the 16 learnable "no" prompts. The "no" embedding of a
prompt is CLIP's text path through those tensors, with the *mean* of the 16 prompts added to
the token + positional embeddings (CLIPN's inference), pooled at the end-of-text token.

The checkpoints are Google-Drive downloads (no hub id): the CLIPN README links three ViT-B/16
runs. Pass one with ``--weights PATH`` (or ``--backbone-param weights=PATH``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.backbones.base import encode_texts_halving
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.backbones.weights_file import (
    fit_to_model,
    no_random_init_warning,
    read_state_dict,
    state_dict_problems,
)
from oodbench.errors import MissingDataError, OODBenchError, ParameterError

CHECKPOINTS = ("https://drive.google.com/drive/folders/1CRIKr0vwrvK4Mc63zfhg2o8cbEGct4oF "
               "(one of three ViT-B/16 runs linked in the CLIPN README, github.com/xmed-lab/"
               "CLIPN)")
NO_PROMPTS_KEY = "prompt_no"


def is_no_key(key: str) -> bool:
    """Whether a checkpoint key belongs to the "no" tower (``transformer_no.*``, ...)."""
    return key == NO_PROMPTS_KEY or key.split(".", 1)[0].endswith("_no")


class NoTextTower(nn.Module):
    """CLIPN's "no" text tower, shaped like an open_clip CLIP's text side (copied from it)."""

    def __init__(self, model: Any, prompts: int = 16) -> None:
        super().__init__()
        self.transformer = copy.deepcopy(model.transformer)
        self.token_embedding = copy.deepcopy(model.token_embedding)
        self.positional_embedding = nn.Parameter(model.positional_embedding.detach().clone())
        self.ln_final = copy.deepcopy(model.ln_final)
        if not isinstance(model.text_projection, torch.Tensor):
            raise OODBenchError("CLIPN needs an open_clip text tower with a text_projection "
                                "matrix (ViT-B-16); this model has a projection layer.")
        self.text_projection = nn.Parameter(model.text_projection.detach().clone())
        context, width = self.positional_embedding.shape
        self.prompt_no = nn.Parameter(torch.zeros(prompts, context, width))
        self.register_buffer("attn_mask", model.attn_mask.detach().clone(), persistent=False)

    def load_checkpoint_state(self, no_state: dict[str, torch.Tensor], path: Path) -> None:
        """Load a checkpoint's ``*_no`` tensors (names without the ``_no``), strictly."""
        state = {}
        for key, value in no_state.items():
            head, _, rest = key.partition(".")
            ours = head if key == NO_PROMPTS_KEY else head[: -len("_no")]
            state[f"{ours}.{rest}" if rest else ours] = value
        if NO_PROMPTS_KEY in state and state[NO_PROMPTS_KEY].shape != self.prompt_no.shape:
            self.prompt_no = nn.Parameter(torch.zeros_like(state[NO_PROMPTS_KEY]))
        problems = state_dict_problems(self.state_dict(), state)
        if problems:
            raise ParameterError(f"The 'no' tower in {path} does not fit the model: {problems} "
                                 f"(names without '_no'). Pass the architecture the checkpoint "
                                 f"was trained as (--backbone-param model=NAME).")
        self.load_state_dict(state, strict=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unnormalised "no" embeddings [N, D] of token ids [N, context]."""
        x = self.token_embedding(tokens) + self.positional_embedding
        x = x + self.prompt_no.mean(dim=0)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return x @ self.text_projection


@dataclasses.dataclass
class CLIPNBackbone(OpenCLIPBackbone):
    """An open_clip CLIP with CLIPN's "no" text tower, from a CLIPN checkpoint (``weights``).

    ``model`` is the architecture the checkpoint was trained as; ``pretrained`` may name the
    open_clip tag it was fine-tuned from (its preprocessing is applied; "" = the model
    config's defaults, which for ViT-B-16 equal laion2b_s34b_b88k's).
    """

    name = "clipn"
    description = ("CLIPN: open_clip CLIP + CLIPN's 'no' text tower, from a CLIPN checkpoint "
                   "(--weights PATH).")
    model: str = "ViT-B-16"
    pretrained: str = ""
    weights: str = ""  # the CLIPN checkpoint (.pt with *_no keys); required

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        if not self.weights:
            raise MissingDataError(
                f"The CLIPN backbone (clipn-b16) needs a CLIPN checkpoint: download one "
                f"(e.g. epoch_10.pt from {CHECKPOINTS}) and pass --weights PATH.")
        super().load(device, dtype)
        self._no_tower = self._no_tower.to(device).eval()

    def _from_file(self, path: Path) -> tuple[Any, Any]:
        import open_clip

        if not path.exists():
            raise MissingDataError(f"CLIPN checkpoint {self.weights} does not exist; download "
                                   f"one from {CHECKPOINTS}.")
        state, _ = read_state_dict(path)
        no_state = {k: state.pop(k) for k in list(state) if is_no_key(k)}
        if not no_state:
            raise ParameterError(f"Weights {path} hold no CLIPN 'no' tower (*_no keys): a plain "
                                 f"CLIP checkpoint belongs to --backbone openclip --weights.")
        cfg = self.tag_config()
        with no_random_init_warning():
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model, pretrained=None, device="cpu",
                force_quick_gelu=self.force_quick_gelu or bool(cfg.get("quick_gelu")),
                image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"),
                image_resize_mode=cfg.get("resize_mode"))
        with suppress(Exception):  # a conversion that needs missing keys: the check says why
            state = fit_to_model(model, state)
        problems = state_dict_problems(model.state_dict(), state)
        if problems:
            raise ParameterError(f"Weights {path} do not fit open_clip model {self.model!r}: "
                                 f"{problems}. Pass the architecture the CLIPN checkpoint was "
                                 f"trained as (--backbone-param model=NAME).")
        model.load_state_dict(state, strict=True)
        tower = NoTextTower(model)
        tower.load_checkpoint_state(no_state, path)
        self._no_tower = tower
        return model, preprocess

    def encode_texts_no(self, texts: Sequence[str]) -> torch.Tensor:
        return encode_texts_halving(self._encode_no_batch, texts)

    def _encode_no_batch(self, texts: list[str]) -> torch.Tensor:
        _ = self._loaded
        tokens = self._tokenizer(texts).to(self.device)
        with torch.no_grad():
            feats = self._no_tower(tokens)
        return torch.nn.functional.normalize(feats.float(), dim=-1)
