"""``mini-clipn``: the mini backbone plus a CLIPN-style "no" text tower (Wang et al., ICCV'23).

CLIPN adds to CLIP a second text encoder that reads a prompt as its negation ("no {}") and 16
learnable "no" prompts, added to the token embeddings of every position (one drawn per text in
training, their mean at inference). A class's "yes" probability for an image is the softmax
over [s*cos(z, t_c), s*cos(z, t_c^no)].

The mini analogue: the "no" tower starts as a copy of the frozen MiniLM text tower; its last
``trained_layers`` BERT layers, a 384x384 projection after the mean pooling (initialised to
the identity) and the 16 "no" prompts [16, 128, 384] are trained with CLIPN's two losses
(``clipn_train.py``). One departure from CLIPN, for the CPU budget: the prompts are added to
the hidden states *entering the trained layers* (CLIPN adds them to the token embeddings), so
the frozen layers' outputs are computed once per training text and no gradient flows through
them. The committed file holds only the trained tensors (float16); the frozen first layers
are the yes tower's own. The image tower and the yes tower are the ``mini`` backbone's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import MissingDataError
from oodbench_mini.minilm import MiniLM
from oodbench_mini.model import EMBED_DIM, MiniBackbone, file_sha256

CLIPN_WEIGHTS_DIR = Path(__file__).resolve().parent / "clipn_weights"
DEFAULT_NO_WEIGHTS = CLIPN_WEIGHTS_DIR / "no_tower.safetensors"
# the committed no tower (clipn_weights/SHA256SUMS); a changed file is refused, so records made
# with mini-clipn always name these weights. Retraining prints the new value to put here.
NO_TOWER_SHA256 = "1de67280744dd0aee74e20754ebbc176aa8ea873defb88b154c9f8d87e014162"
NO_PROMPTS = 16
CONTEXT = 128  # MiniLM's positions: the tokenizer truncates there


class NoTower(nn.Module):
    """The "no" text tower on a frozen MiniLM ``base`` (shared with the yes tower).

    ``base``'s embeddings and first ``len(base.layers) - trained_layers`` layers are used as
    they are (frozen, not stored); the last ``trained_layers`` are own copies.
    """

    def __init__(self, base: MiniLM, trained_layers: int = 2, prompts: int = NO_PROMPTS,
                 context: int = CONTEXT) -> None:
        super().__init__()
        if not 0 < trained_layers <= len(base.layers):
            raise ValueError(f"trained_layers must lie in 1..{len(base.layers)}")
        self.base = [base]  # a list: not a submodule, so its weights are not in state_dict()
        self.frozen = len(base.layers) - trained_layers
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in base.layers[self.frozen:])
        self.proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(EMBED_DIM))
            self.proj.bias.zero_()
        # CLIPN initialises its "no" prompts to zeros
        self.prompt_no = nn.Parameter(torch.zeros(prompts, context, EMBED_DIM))
        self.layers.requires_grad_(True)

    def frozen_hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The base's hidden states after its frozen layers [N, L, D] (no gradient needed)."""
        base = self.base[0]
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = base.embed_norm(base.words(ids) + base.positions(positions)
                            + base.token_types.weight[0])
        bias = _key_bias(mask, x.dtype)
        for layer in base.layers[: self.frozen]:
            x = layer(x, bias)
        return x

    def head(self, hidden: torch.Tensor, mask: torch.Tensor,
             prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised "no" embeddings [N, D] from ``frozen_hidden`` [N, L, D], mask [N, L].

        ``prompt`` [N or 1, >= L, D] is added to the hidden states entering the trained layers;
        None = the mean of the 16 prompts (CLIPN's inference).
        """
        n = hidden.shape[1]
        if prompt is None:
            prompt = self.prompt_no.mean(0, keepdim=True)
        x = hidden + prompt[:, :n].to(hidden.dtype)
        bias = _key_bias(mask, x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.proj(pooled)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor,
                prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised "no" embeddings [N, D] of token ids [N, L] with mask [N, L]."""
        return self.head(self.frozen_hidden(ids, mask), mask, prompt)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors the weights file holds (layer names count from the base's layer 0)."""
        state = {f"layers.{self.frozen + int(k.split('.', 1)[0])}.{k.split('.', 1)[1]}": v
                 for k, v in self.layers.state_dict().items()}
        state.update({f"proj.{k}": v for k, v in self.proj.state_dict().items()})
        state["prompt_no"] = self.prompt_no.detach()
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        layers = {f"{int(k.split('.')[1]) - self.frozen}.{k.split('.', 2)[2]}": v
                  for k, v in state.items() if k.startswith("layers.")}
        self.layers.load_state_dict(layers, strict=True)
        self.proj.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("proj.")})
        with torch.no_grad():
            self.prompt_no.copy_(state["prompt_no"])


def _key_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias over keys: padded tokens get the dtype's most negative value."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def save_no_tower(tower: NoTower, path: Path, meta: dict[str, str]) -> None:
    """The trained tensors as float16 safetensors, with the architecture in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.half() for k, v in tower.trained_state().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"trained_layers": str(len(tower.layers)),
                                          "prompts": str(tower.prompt_no.shape[0]),
                                          "context": str(tower.prompt_no.shape[1]), **meta})


def missing_weights(path: Path) -> MissingDataError:
    return MissingDataError(
        f"mini-clipn 'no'-tower weights not found at {path}: reinstall oodbench-mini or run "
        f"`python plugins/mini/tools/train_clipn.py --out PATH` in the oodbench checkout.")


def load_no_tower(path: Path, base: MiniLM) -> tuple[NoTower, dict[str, str]]:
    """A :class:`NoTower` on ``base`` with the file's trained tensors (as float32)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.exists():
        raise missing_weights(path)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    tower = NoTower(base, int(meta.get("trained_layers", 2)), int(meta.get("prompts", 16)),
                    int(meta.get("context", CONTEXT)))
    tower.load_trained_state({k: v.float() for k, v in load_file(str(path)).items()})
    return tower.eval().requires_grad_(False), meta


@torch.no_grad()
def encode_no(tower: NoTower, tokenizer: Any, texts: Sequence[str], device: torch.device,
              batch_size: int = 256) -> torch.Tensor:
    """[N, D] normalised "no" embeddings, each row depending on its text alone: batches of
    equal token length (no padding), a batch of one text run twice, as the yes tower does."""
    if not texts:
        return torch.empty(0, EMBED_DIM, device=device)
    ids, mask = tokenizer(texts, CONTEXT)
    lengths = mask.sum(1)
    out = torch.empty(len(texts), EMBED_DIM, device=device)
    for length in torch.unique(lengths).tolist():
        rows = torch.nonzero(lengths == length).flatten()
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            batch = ids[chunk.repeat(2) if len(chunk) == 1 else chunk, :length].to(device)
            feats = tower(batch, torch.ones_like(batch)).float()
            out[chunk.to(device)] = F.normalize(feats, dim=-1)[: len(chunk)]
    return out


@dataclass
class MiniCLIPNBackbone(MiniBackbone):
    """The ``mini`` backbone with a CLIPN "no" text tower (``encode_texts_no``)."""

    name: ClassVar[str] = "mini-clipn"
    description: ClassVar[str] = (
        "offline mini CLIPN: the mini backbone + a 'no' text tower trained with CLIPN's losses")
    no_weights: str = ""  # "" = the committed clipn_weights/no_tower.safetensors

    _no: Any = field(default=None, init=False, repr=False, compare=False)
    _no_sha: str = field(default="", init=False, repr=False, compare=False)

    @property
    def no_weights_path(self) -> Path:
        return Path(self.no_weights).expanduser() if self.no_weights else DEFAULT_NO_WEIGHTS

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        super().load(device, dtype)
        self._no_sha = self._checked_sha()
        tower, _ = load_no_tower(self.no_weights_path, self._text.model)
        self._no = tower.to(self.device)

    def _checked_sha(self) -> str:
        if not self.no_weights_path.exists():
            raise missing_weights(self.no_weights_path)
        sha = file_sha256(self.no_weights_path)
        if not self.no_weights and sha != NO_TOWER_SHA256:
            raise MissingDataError(
                f"The committed mini-clipn weights {self.no_weights_path} have sha256 "
                f"{sha[:12]}..., not the pinned {NO_TOWER_SHA256[:12]}...: restore the file "
                f"(git checkout / reinstall oodbench-mini) or pass --backbone-param "
                f"no_weights=PATH for other weights.")
        return sha

    def fingerprint(self) -> str:
        if not self._no_sha:
            self._no_sha = self._checked_sha()
        return f"{super().fingerprint()}|no-tower-sha256={self._no_sha}"

    def text_fingerprint(self) -> str:
        """The ``mini`` backbone's: the yes tower is its own, so its text embeddings (label
        banks of 10k words) are shared with ``mini`` runs. The "no" embeddings are keyed by
        :meth:`fingerprint`, which names the "no" tower's weights."""
        return super().fingerprint()

    def weights_identity(self) -> dict[str, Any] | None:
        if not self.no_weights:
            return super().weights_identity()
        return {"path": str(self.no_weights_path.resolve()), "sha256": self._no_sha or
                self._checked_sha(), "tag": "mini-clipn no tower"}

    @torch.no_grad()
    def encode_texts_no(self, texts: Sequence[str]) -> torch.Tensor:
        self._require()
        return encode_no(self._no, self._text.tokenizer, texts, self.device)
