"""CLIPN (Wang et al., ICCV'23): a "no" text tower tells, per ID class, how likely an image is
*not* that class.

With image embedding z, the class's "yes" and "no" embeddings t_c, t_c^no (each prompt
normalised, averaged over the prompts, renormalised) and the logit scale s (100: the fixed
scale of CLIPN's classifier, ``classification.py``):

    l_c = s * cos(z, t_c),   l_c^no = s * cos(z, t_c^no)
    q_c = softmax([l_c, l_c^no])_0 = sigmoid(l_c - l_c^no)        (the "yes" probability)
    CTW = q_{argmax_c l_c}                                          (competing-to-win)
    ATD = Σ_c softmax_c(l) * q_c  = 1 - p_ood                       (agreeing-to-differ)

as CLIPN's ``zero_shot_infer.py`` computes them; higher = more in-distribution. The "no"
embeddings come from the backbone's ``encode_texts_no`` (a CLIPN backbone: ``clipn-b16``,
``mini-clipn``), with the same prompts as the "yes" ones (CLIPN encodes prompt.txt with both
towers). They travel in ``head.meta["id_no_features"]``, where OLE's CLIPN form reads them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F

from oodbench.backbones.base import Backbone
from oodbench.cache import content_key
from oodbench.errors import OODBenchError
from oodbench.feature_files import load_entry, save_entry
from oodbench.interfaces import Scorer
from oodbench.types import TextHead

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

NO_FEATURES_KEY = "id_no_features"  # head.meta key of the [C, D] "no" ID embeddings
CLIPN_SCALE = 100.0
# the CLIPN model a CLIPN-scored method runs on, per suite backbone (MethodSpec.backbones):
# CLIPN was trained from OpenAI's ViT-B/16, the mini world has its own "no" tower
CLIPN_BACKBONES = {"clip-b16": "clipn-b16", "mini": "mini-clipn"}


def has_no_tower(backbone: Backbone) -> bool:
    """Whether the backbone implements ``encode_texts_no`` (CLIPN's "no" text tower)."""
    return type(backbone).encode_texts_no is not Backbone.encode_texts_no


def require_no_tower(env: MethodEnv, who: str) -> None:
    """One line naming the CLIPN backbones when the run's backbone has no "no" tower."""
    if not has_no_tower(env.backbone):
        raise OODBenchError(
            f"{who} needs a CLIPN backbone (a 'no' text tower gives q_i), which backbone "
            f"{env.backbone_name!r} lacks: run with --backbone mini-clipn (offline suites) or "
            f"--backbone clipn-b16 --weights CLIPN.pt (a released CLIPN checkpoint).")


def no_text_features(env: MethodEnv, texts: Sequence[str]) -> torch.Tensor:
    """[len(texts), D] "no" embeddings, cached by the backbone's fingerprint and the texts.

    ``fingerprint()``, not ``text_fingerprint()``: a CLIPN backbone may share its "yes" text
    embeddings with its plain twin (mini-clipn with mini) but names its "no" tower only there.
    """
    texts = list(texts)
    backbone = env.backbone
    key = content_key("text-no-features/1", backbone.fingerprint(), texts)
    path = env.cache.path("texts-no", key, ".npy")
    if path.with_suffix(".json").exists():
        got = load_entry(path, backbone.embed_dim, len(texts))
        if not isinstance(got, str):
            return torch.from_numpy(got[0])
    step = max(1, env.ctx.batch_size)
    with torch.no_grad():
        parts = [backbone.encode_texts_no(texts[i : i + step]).float().cpu()
                 for i in range(0, len(texts), step)]
    feats = torch.cat(parts) if parts else torch.zeros(0, backbone.embed_dim)
    save_entry(path, feats.numpy(), {"rows": len(texts)})
    return feats


def id_no_features(env: MethodEnv, templates: Sequence[str] | None = None) -> torch.Tensor:
    """[C, D] "no" ID class embeddings: each prompt normalised, averaged, renormalised (as
    ``env.id_text_features`` for the "yes" side); the suite's prompts by default."""
    classes = list(env.suite.classes)
    total = torch.zeros(len(classes), env.backbone.embed_dim)
    for template in templates or list(env.suite.prompts):
        total = total + no_text_features(env, [template.format(c) for c in classes])
    return F.normalize(total, dim=-1)


def yes_probabilities(image_features: torch.Tensor, id_features: torch.Tensor,
                      id_no_features: torch.Tensor, scale: float) -> torch.Tensor:
    """[N, C] q_c = softmax over [l_c, l_c^no] of the "yes" logit (float64)."""
    z = image_features.double()
    yes = scale * z @ F.normalize(id_features.double(), dim=-1).T
    no = scale * z @ F.normalize(id_no_features.to(z.device).double(), dim=-1).T
    return torch.softmax(torch.stack([yes, no], dim=-1), dim=-1)[..., 0]


def clipn_scores(image_features: torch.Tensor, id_features: torch.Tensor,
                 id_no_features: torch.Tensor, scale: float,
                 variant: Literal["atd", "ctw"]) -> np.ndarray:
    """[N] CLIPN ATD or CTW scores (see the module docstring)."""
    logits = scale * image_features.double() @ F.normalize(id_features.double(), dim=-1).T
    q = yes_probabilities(image_features, id_features, id_no_features, scale)
    if variant == "ctw":
        out = q.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)
    else:
        out = (torch.softmax(logits, dim=1) * q).sum(dim=1)
    return out.cpu().numpy()


@dataclasses.dataclass
class CLIPNScorer(Scorer):
    """CLIPN's ATD (default) or CTW score; needs a backbone with a "no" text tower."""

    name = "clipn"
    description = ("CLIPN: 'yes' vs 'no' text towers; ATD = Σ softmax(100*cos)*q (default) or "
                   "CTW = q of the predicted class. Needs --backbone clipn-b16 or mini-clipn.")
    variant: Literal["atd", "ctw"] = "atd"
    scale: float = CLIPN_SCALE

    def __post_init__(self) -> None:
        self.check_positive("scale")

    def preflight(self, env: MethodEnv) -> None:
        require_no_tower(env, f"method scorer {self.name!r}")

    def prepare(self, env: MethodEnv, head: TextHead) -> TextHead:
        require_no_tower(env, f"scorer {self.name!r}")
        env.notes[self.name] = {"variant": self.variant.upper(), "scale": self.scale,
                                "templates": list(env.suite.prompts)}
        return head.replace(meta={**head.meta, NO_FEATURES_KEY: id_no_features(env)})

    def score(self, image_features: torch.Tensor, head: TextHead) -> np.ndarray:
        no = head.meta.get(NO_FEATURES_KEY)
        if no is None:
            raise OODBenchError(f"scorer {self.name!r} scores a head without 'no' embeddings: "
                                f"call prepare(env, head) first.")
        return clipn_scores(image_features, head.id_features, no, self.scale, self.variant)
