"""all-MiniLM-L6-v2 as a plain torch module: the mini backbone's frozen text tower.

A BERT encoder is a few dozen lines; writing it here instead of going through
``transformers.AutoModel`` keeps ``import transformers`` (~3.4 s) out of loading the mini
backbone. The weights are the package's own ``model.safetensors``; tokenisation is the
package's ``tokenizer.json`` through the Rust ``tokenizers`` library. A test checks the outputs
against ``transformers.BertModel`` on the same weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class BertConfig:
    """The fields of ``config.json`` the encoder uses."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text())
        self.vocab_size: int = raw["vocab_size"]
        self.hidden: int = raw["hidden_size"]
        self.layers: int = raw["num_hidden_layers"]
        self.heads: int = raw["num_attention_heads"]
        self.intermediate: int = raw["intermediate_size"]
        self.max_positions: int = raw["max_position_embeddings"]
        self.type_vocab: int = raw["type_vocab_size"]
        self.eps: float = raw["layer_norm_eps"]
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("model_type") != "bert":
            raise ValueError(f"{path}: not a BERT encoder with exact GELU")


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads = cfg.heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.eps)
        self.up = nn.Linear(h, cfg.intermediate)
        self.down = nn.Linear(cfg.intermediate, h)
        self.out_norm = nn.LayerNorm(h, eps=cfg.eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(b, n, h)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


class MiniLM(nn.Module):
    """BERT encoder returning the last hidden states (no pooler: the tower mean-pools)."""

    # our parameter names -> the BERT checkpoint's, per layer
    _LAYER_KEYS: ClassVar[dict[str, str]] = {
        "query": "attention.self.query", "key": "attention.self.key",
        "value": "attention.self.value", "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm", "up": "intermediate.dense",
        "down": "output.dense", "out_norm": "output.LayerNorm",
    }

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.positions = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_types = nn.Embedding(cfg.type_vocab, cfg.hidden)
        self.embed_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))

    @classmethod
    def from_dir(cls, model_dir: Path) -> MiniLM:
        from safetensors.torch import load_file

        model = cls(BertConfig(model_dir / "config.json"))
        state = load_file(str(model_dir / "model.safetensors"))
        mapped = {
            "words.weight": state["embeddings.word_embeddings.weight"],
            "positions.weight": state["embeddings.position_embeddings.weight"],
            "token_types.weight": state["embeddings.token_type_embeddings.weight"],
            "embed_norm.weight": state["embeddings.LayerNorm.weight"],
            "embed_norm.bias": state["embeddings.LayerNorm.bias"],
        }
        for i in range(len(model.layers)):
            for ours, theirs in cls._LAYER_KEYS.items():
                for p in ("weight", "bias"):
                    mapped[f"layers.{i}.{ours}.{p}"] = state[f"encoder.layer.{i}.{theirs}.{p}"]
        model.load_state_dict(mapped, strict=True)
        return model.eval().requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        positions = torch.arange(n, device=input_ids.device)
        x = self.words(input_ids) + self.positions(positions) + self.token_types.weight[0]
        x = self.embed_norm(x)
        # additive mask over keys: padded tokens get the dtype's most negative value
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x


class WordPiece:
    """The package's ``tokenizer.json`` through ``tokenizers``: padded id and mask tensors."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()  # we pad ourselves, to the batch or to max_length
        self._pad_id = self._tok.token_to_id("[PAD]")

    def __call__(self, texts: Sequence[str], max_length: int,
                 pad_to_max: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        self._tok.enable_truncation(max_length)
        encoded = self._tok.encode_batch(list(texts))
        width = max_length if pad_to_max else max((len(e.ids) for e in encoded), default=0)
        ids = torch.full((len(encoded), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, enc in enumerate(encoded):
            ids[row, : len(enc.ids)] = torch.tensor(enc.ids, dtype=torch.long)
            mask[row, : len(enc.ids)] = 1
        return ids, mask
