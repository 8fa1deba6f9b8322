"""mini-clipn: the "no" tower's architecture (it starts as the yes tower), its weights file,
the pinned checksum, CLIPN's training losses by hand, and the backbone's "no" embeddings."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from oodbench.baselines.clipn import has_no_tower
from oodbench.errors import MissingDataError
from oodbench_mini import clipn as clipn_module
from oodbench_mini.clipn import (
    CLIPN_WEIGHTS_DIR,
    DEFAULT_NO_WEIGHTS,
    NO_TOWER_SHA256,
    MiniCLIPNBackbone,
    NoTower,
    encode_no,
    load_no_tower,
    save_no_tower,
)
from oodbench_mini.clipn_train import clipn_losses
from oodbench_mini.model import MiniBackbone, TextTower, file_sha256


@pytest.fixture(scope="module")
def text() -> TextTower:
    return TextTower("cpu")


@pytest.fixture(scope="module")
def backbone() -> MiniCLIPNBackbone:
    b = MiniCLIPNBackbone()
    b.load(torch.device("cpu"))
    return b


TEXTS = ["a photo of a flag.", "an icon of a star.", "a drawing of a playing card.", "a letter."]


def test_untrained_no_tower_is_the_yes_tower(text):
    """Identity projection, zero prompts, copied layers: the yes embeddings, to float error."""
    tower = NoTower(text.model, trained_layers=2).eval()
    yes = text.encode(TEXTS)
    no = encode_no(tower, text.tokenizer, TEXTS, torch.device("cpu"))
    assert torch.allclose(no, yes, atol=1e-5)
    assert tower.frozen == 4 and len(tower.layers) == 2
    assert all(not p.requires_grad for p in text.model.parameters())
    assert {n for n, p in tower.named_parameters() if p.requires_grad} == {
        n for n, _ in tower.named_parameters()}  # the base is not a submodule
    with torch.no_grad():
        tower.prompt_no[3].fill_(0.5)  # the mean prompt is what inference adds
    moved = encode_no(tower, text.tokenizer, TEXTS, torch.device("cpu"))
    assert not torch.allclose(moved, yes, atol=1e-3)


def test_weights_file_holds_only_trained_tensors_float16(text, tmp_path):
    tower = NoTower(text.model, trained_layers=1)
    with torch.no_grad():
        tower.prompt_no.normal_(generator=torch.Generator().manual_seed(0))
        tower.proj.weight.mul_(0.5)
    path = tmp_path / "no.safetensors"
    save_no_tower(tower, path, {"note": "test"})
    from safetensors.torch import load_file

    stored = load_file(str(path))
    assert {k.split(".")[0] for k in stored} == {"layers", "proj", "prompt_no"}
    assert {k.split(".")[1] for k in stored if k.startswith("layers.")} == {"5"}
    assert all(v.dtype == torch.float16 for v in stored.values())
    loaded, meta = load_no_tower(path, text.model)
    assert meta["trained_layers"] == "1" and meta["note"] == "test"
    assert torch.equal(loaded.prompt_no, tower.prompt_no.detach().half().float())
    want = tower.layers[0].up.weight.detach().half().float()
    assert torch.equal(loaded.layers[0].up.weight, want)


def test_committed_weights_are_pinned_and_small():
    assert DEFAULT_NO_WEIGHTS.stat().st_size < 30 * 2**20
    assert file_sha256(DEFAULT_NO_WEIGHTS) == NO_TOWER_SHA256
    sums = (CLIPN_WEIGHTS_DIR / "SHA256SUMS").read_text().split()
    assert sums == [NO_TOWER_SHA256, DEFAULT_NO_WEIGHTS.name]
    assert NO_TOWER_SHA256 in (CLIPN_WEIGHTS_DIR / "README.md").read_text()


def test_a_changed_committed_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "no_tower.safetensors"
    shutil.copy(DEFAULT_NO_WEIGHTS, copy)
    with copy.open("ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(clipn_module, "DEFAULT_NO_WEIGHTS", copy)
    with pytest.raises(MissingDataError, match="pinned"):
        MiniCLIPNBackbone().fingerprint()
    assert MiniCLIPNBackbone(no_weights=str(copy)).fingerprint().endswith(file_sha256(copy))
    monkeypatch.setattr(clipn_module, "DEFAULT_NO_WEIGHTS", tmp_path / "missing.safetensors")
    with pytest.raises(MissingDataError, match=r"train_clipn\.py"):
        MiniCLIPNBackbone().fingerprint()


def test_backbone_no_embeddings(backbone, text):
    assert has_no_tower(backbone)
    no = backbone.encode_texts_no(TEXTS)
    yes = backbone.encode_texts(TEXTS)
    assert no.shape == (4, 384) and torch.allclose(no.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(yes, text.encode(TEXTS), atol=1e-6)  # the mini yes tower, unchanged
    assert (no * yes).sum(-1).max() < 0.99  # trained away from the yes embeddings
    # each row depends on its text alone (equal-length batches, as the yes tower)
    assert torch.allclose(backbone.encode_texts_no(TEXTS[:1])[0], no[0], atol=1e-6)
    assert f"no-tower-sha256={NO_TOWER_SHA256}" in backbone.fingerprint()
    # the yes tower is mini's: its text embeddings are shared with mini runs
    assert backbone.text_fingerprint() == MiniBackbone().fingerprint()


def test_clipn_losses_by_hand():
    # one image z = (1, 0); two texts: yes (1, 0), (0, 1); no (0, 1), (1, 0); text 0 matches
    z = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    yes = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    no = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    match = torch.tensor([[True, False]])
    loss_yes, loss_no, tso = clipn_losses(z, yes, no, match, scale=2.0)
    # pair 0: l_yes = 2, l_no = 0 -> -log p_yes = log(1 + e^-2); pair 1: l_yes = 0, l_no = 2
    # -> -log p_no = log(1 + e^-2); the texts' yes and no are orthogonal: 2 - sqrt(2 + 1e-4)
    assert loss_yes.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-12)
    assert loss_no.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-12)
    assert tso.item() == pytest.approx(2 - math.sqrt(2 + 1e-4), abs=1e-12)
    # identical yes and no: every pair is a coin flip, the semantic-opposite loss is maximal
    same = clipn_losses(z, yes, yes, match, scale=2.0)
    assert same[0].item() == pytest.approx(math.log(2)) and same[2].item() == pytest.approx(
        2 - math.sqrt(1e-4))
