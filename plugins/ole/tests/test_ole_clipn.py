"""OLE (CLIPN), the paper's form: S = Σ_ID p_i·q_i by hand, and the ole-clipn scorer that takes
q_i from a backbone's "no" text tower (and names the CLIPN backbones when there is none)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from oodbench.errors import OODBenchError
from oodbench.types import TextHead
from oodbench_ole.scorer import OLECLIPNScorer, OLEScorer, ole_score


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_ole_clipn_score_by_hand_two_id_classes_one_outlier():
    # z = (1, 0); ID yes t_1 = (1, 0), t_2 = (0.6, 0.8); ID no t_1^no = (0.8, 0.6),
    # t_2^no = (0, 1); one outlier prototype o = (0, 1); scale s = 2
    z = t([1.0, 0.0])
    ids, no, outs = t([1.0, 0.0], [0.6, 0.8]), t([0.8, 0.6], [0.0, 1.0]), t([0.0, 1.0])
    # logits over ID ∪ O: (2, 1.2, 0); "no" logits: (1.6, 0)
    denominator = math.exp(2.0) + math.exp(1.2) + math.exp(0.0)
    p1, p2 = math.exp(2.0) / denominator, math.exp(1.2) / denominator
    q1, q2 = 1 / (1 + math.exp(-(2.0 - 1.6))), 1 / (1 + math.exp(-(1.2 - 0.0)))
    s = ole_score(z, ids, outs, scale=2.0, id_no_features=no)
    assert s[0] == pytest.approx(p1 * q1 + p2 * q2, abs=1e-12)
    # without the "no" tower q ≡ 1: OLE (CLIP) is the ID share p_1 + p_2
    assert ole_score(z, ids, outs, scale=2.0)[0] == pytest.approx(p1 + p2, abs=1e-12)


class NoTowerBackbone:
    """Duck-typed: the "no" embedding of every prompt is (1, 0), red's "yes" direction."""

    embed_dim = 2

    def fingerprint(self) -> str:
        return "fake-clipn"

    def encode_texts_no(self, texts):
        self.calls = [*getattr(self, "calls", []), list(texts)]
        return torch.tensor([[1.0, 0.0] for _ in texts])


def _env(make_env, backbone) -> SimpleNamespace:
    env = make_env(classes=("red", "green"), prompts=("a {}.", "the {}."),
                   id_features=t([1.0, 0.0], [0.0, 1.0]).float())
    env.backbone, env.ctx = backbone, SimpleNamespace(batch_size=8)
    env.backbone_name = "fake-clipn"
    return env


def test_prepare_embeds_both_towers_with_the_same_templates(make_env, monkeypatch):
    import oodbench.baselines.clipn as clipn_module

    monkeypatch.setattr(clipn_module, "has_no_tower", lambda b: hasattr(b, "encode_texts_no"))
    backbone = NoTowerBackbone()
    env = _env(make_env, backbone)
    seen = {}
    yes = env.id_text_features
    env.id_text_features = lambda templates=None: seen.setdefault("yes", templates) and yes()
    head = TextHead(t([1.0, 0.0], [0.0, 1.0]).float(), ["red", "green"],
                    t([-1.0, 0.0]).float(), ["o"])
    prepared = OLECLIPNScorer(id_templates="suite").prepare(env, head)
    assert seen["yes"] == ["a {}.", "the {}."]
    assert backbone.calls == [["a red.", "a green."], ["the red.", "the green."]]
    assert torch.allclose(prepared.meta["id_no_features"], t([1.0, 0.0], [1.0, 0.0]).float())
    assert env.notes["ole-clipn"]["variant"] == "OLE (CLIPN)"
    z = t([1.0, 0.0]).float()  # p_red ≈ 1 and q_red = σ(50·(1 - 1)) = 0.5
    assert OLECLIPNScorer().score(z, prepared)[0] == pytest.approx(0.5, abs=1e-6)
    assert OLEScorer().score(z, head)[0] == pytest.approx(1.0, abs=1e-6)
    # the "no" embeddings are cached: a second prepare encodes nothing
    OLECLIPNScorer(id_templates="suite").prepare(env, head)
    assert len(backbone.calls) == 2


def test_plain_backbone_gets_one_line_naming_the_clipn_backbones(make_env):
    from oodbench.testing.toy import ToyColourBackbone

    env = _env(make_env, ToyColourBackbone())
    env.backbone_name = "toy-colour"
    with pytest.raises(OODBenchError) as err:
        OLECLIPNScorer().preflight(env)
    assert "--backbone mini-clipn" in str(err.value) and "clipn-b16" in str(err.value)
    assert OLEScorer().preflight(env) is None  # OLE (CLIP) runs on any backbone


def test_ole_keeps_its_parameters_and_ole_clipn_is_registered(ole_registry):
    assert set(OLEScorer().params()) == {"scale", "id_templates"}  # records of `ole` unchanged
    spec = ole_registry.get("method", "ole-clipn").obj
    assert spec.scorer.name == "ole-clipn"
    assert [f.name for f in spec.finetuners] == ["ole-prototypes"]
    assert spec.label_generator.name == "ole-outliers"
