"""The diffusion training corpus: the catalogue's train split at 32x32 with its texts.

Training texts mix the catalogue's captions, "a photo of a {concept}." style prompts and the
same for the coarse category (so "a photo of a mammal." is in-distribution for prompts), with
10 % empty texts for classifier-free guidance.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from oodbench.data.offline import catalog_file
from oodbench.errors import OODBenchError
from oodbench_mini.corpus import read_catalog

if TYPE_CHECKING:
    from oodbench_mini.train_diffusion import TrainConfig

TEMPLATES = (
    "a photo of a {}.",
    "a drawing of a {}.",
    "an icon of a {}.",
    "a clip art of a {}.",
    "a picture of a {}.",
    "a {}.",
    "{}",
)
PACK_FIELDS = ("caption", "concept", "category")


class Corpus:
    """The train split at the model's resolution (uint8, in memory) with its texts.

    Read from the catalogue, or from a packed ``.npz`` (``--pack-corpus``): ~43 MB at 32x32,
    small enough to carry to a GPU machine that has no copy of the offline data.
    """

    def __init__(self, data_dir: Path | None, resolution: int, packed: Path | None = None) -> None:
        if packed is not None:
            self._load_packed(packed, resolution)
        else:
            self._load_catalog(data_dir, resolution)
        # categories sampled ~evenly (1/sqrt(n) per image): Fashion-MNIST's 10k images must
        # not drown the few hundred clip-art images of each other category
        counts = Counter(r["category"] for r in self.rows)
        self.weights = torch.tensor(
            [counts[r["category"]] ** -0.5 for r in self.rows], dtype=torch.double
        )

    def _load_catalog(self, data_dir: Path | None, resolution: int) -> None:
        path = catalog_file(data_dir)
        self.rows = [r for r in read_catalog(path) if r["split"] == "train"]
        if not self.rows:
            raise OODBenchError(f"The catalogue {path} has no train-split images.")
        arrays = []
        for r in self.rows:
            with Image.open(path.parent / r["path"]) as img:
                img = img.convert("RGB").resize((resolution, resolution), Image.Resampling.BOX)
                arrays.append(np.asarray(img))
        self.pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def _load_packed(self, packed: Path, resolution: int) -> None:
        try:
            with np.load(packed) as data:
                pixels, rows = data["pixels"], json.loads(data["rows"].tobytes().decode())
        except (OSError, KeyError, ValueError) as exc:
            raise OODBenchError(f"Cannot read the packed corpus {packed}: {exc}; rebuild it "
                                "with --pack-corpus.") from None
        if pixels.shape[-1] != resolution:
            raise OODBenchError(f"{packed} holds {pixels.shape[-1]}px images, the model wants "
                                f"{resolution}px: rebuild it with --pack-corpus.")
        self.rows, self.pixels = rows, torch.from_numpy(pixels)

    def pack(self, out: Path) -> None:
        """Write pixels and texts to one ``.npz`` (atomically)."""
        rows = json.dumps([{k: r[k] for k in PACK_FIELDS} for r in self.rows]).encode()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(tmp, pixels=self.pixels.numpy(), rows=np.frombuffer(rows, dtype=np.uint8))
        os.replace(tmp, out)

    def __len__(self) -> int:
        return len(self.rows)

    def text(self, row: dict, rnd: random.Random, cfg: TrainConfig) -> str:
        if rnd.random() < cfg.cfg_dropout:
            return ""
        u = rnd.random()
        if u < cfg.caption_share:
            return row["caption"]
        name = row["concept"] if u < (1 + cfg.caption_share) / 2 else row["category"]
        return rnd.choice(TEMPLATES).format(name)

    def batch(
        self, n: int, gen: torch.Generator, rnd: random.Random, cfg: TrainConfig
    ) -> tuple[torch.Tensor, list[str]]:
        """[n, 3, R, R] pixels in [-1, 1] (random horizontal flips) and one text each."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        x = self.pixels[idx].float() / 127.5 - 1.0
        flip = torch.rand(n, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        return x, [self.text(self.rows[int(i)], rnd, cfg) for i in idx]
