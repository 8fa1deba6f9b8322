from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from oodbench.baselines.neglabel import make_groups, neglabel_score
from oodbench.cache import ArtifactCache
from oodbench.cli import app
from oodbench.labels.bank import cached_bank, export_bank, import_bank
from oodbench.labels.generators import percentile_similarity, without_id_names
from oodbench.types import LabelBank


def test_neglabel_score_by_hand():
    # one image at angle 0; ID label at 0 (cos 1), negatives at 90° (cos 0) and 180° (cos -1)
    image = torch.tensor([[1.0, 0.0]])
    id_f = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    expected = math.exp(1 / t) / (math.exp(1 / t) + math.exp(0) + math.exp(-1 / t))
    assert neglabel_score(image, id_f, neg, t)[0] == pytest.approx(expected)
    # grouped: each negative in its own group, mean of the two per-group scores
    groups = [torch.tensor([0]), torch.tensor([1])]
    g0 = math.exp(2) / (math.exp(2) + 1)
    g1 = math.exp(2) / (math.exp(2) + math.exp(-2))
    assert neglabel_score(image, id_f, neg, t, groups)[0] == pytest.approx((g0 + g1) / 2)


def test_neglabel_score_is_stable_at_tiny_temperature():
    image = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    id_f = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    neg = torch.nn.functional.normalize(torch.randn(50, 8), dim=1)
    scores = neglabel_score(image, id_f, neg, 1e-4)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_groups_drop_remainder_and_are_fixed():
    groups = make_groups(1050, 100, seed=0)
    assert len(groups) == 100 and all(len(g) == 10 for g in groups)
    flat = torch.cat(groups)
    assert len(set(flat.tolist())) == 1000
    assert int(flat.max()) == 999  # the official code drops the last 50, not random ones
    assert torch.equal(flat, torch.cat(make_groups(1050, 100, seed=0)))
    assert len(make_groups(7, 100, seed=0)) == 7  # small banks keep every negative


def test_percentile_similarity_picks_the_quantile():
    id_f = torch.eye(3)
    cands = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # candidate 0 has cosines [1, 0, 0] -> 50% quantile 0, 100% quantile 1
    assert percentile_similarity(cands, id_f, 1.0).tolist() == [1.0, 1.0]
    assert percentile_similarity(cands, id_f, 0.5).tolist() == [0.0, 0.0]


def test_id_names_are_filtered_case_insensitively():
    assert without_id_names(["Cat", "dog ", "car"], ("cat", "Dog")) == ["car"]


def test_bank_cache_export_import_round_trip(tmp_path):
    cache_a, cache_b = ArtifactCache(tmp_path / "a"), ArtifactCache(tmp_path / "b")
    calls = []

    def compute() -> LabelBank:
        calls.append(1)
        return LabelBank(labels=["x", "y"], generator="g", params={"n": 2})

    bank = cached_bank(cache_a, "ab" * 32, compute)
    again = cached_bank(cache_a, "ab" * 32, compute)
    assert len(calls) == 1 and again.labels == bank.labels
    shared = export_bank(cache_a, "abab", tmp_path / "shared.json")
    key, imported = import_bank(cache_b, shared)
    assert key == "ab" * 32 and imported.params == {"n": 2}
    assert cached_bank(cache_b, key, compute).labels == ["x", "y"] and len(calls) == 1


def test_labels_cli(tmp_path):
    cache = ArtifactCache(tmp_path / "c")
    cached_bank(cache, "ab" * 32, lambda: LabelBank(["tree"], "g"))
    runner = CliRunner()
    result = runner.invoke(app, ["labels", "list", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0 and "abab" in result.output
    result = runner.invoke(app, ["labels", "show", "abab", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0 and "tree" in result.output
    result = runner.invoke(app, ["labels", "show", "zz", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 1 and "No label bank 'zz'" in result.output


def test_negative_labels_help_on_the_colour_suite(registry, colour_suite, tmp_path):
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    words = tmp_path / "negatives.txt"
    words.write_text("yellow\nmagenta\ngrey\nred\n")  # "red" is an ID name: must be dropped
    method = tmp_path / "neg.yaml"
    method.write_text(f"name: neg-file\nlabel_generator: {{name: file, params: {{path: {words}}}}}"
                      f"\nscorer: {{name: neglabel, params: {{id_template: ''}}}}\n")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    neg = run(RunRequest(str(method), str(colour_suite)), ctx, registry)
    mcm = run(RunRequest("mcm", str(colour_suite)), ctx, registry)
    assert neg["labels"]["count"] == 3
    # the near-OOD colours are now labels of their own: their images put mass on them
    assert neg["metrics"]["secondary"]["auroc"] >= mcm["metrics"]["secondary"]["auroc"]
    assert neg["metrics"]["secondary"]["fpr95"] == 0.0
    hist = neg["curves"]["secondary"]
    assert sum(hist["ood_hist"][: len(hist["ood_hist"]) // 2]) == 30  # all OOD in the low half


def test_neglabel_mining_on_wordnet(registry, colour_suite, tmp_path):
    from oodbench.labels import wordnet
    from oodbench.runner import RunRequest, run
    from oodbench.types import RunContext

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")
    ctx = RunContext(cache_dir=tmp_path / "cache")
    params = {"max_per_pool": "400", "ngroup": "10"}
    record = run(RunRequest("neglabel", str(colour_suite), params=params), ctx, registry)
    # 15 % of each pool of 400 candidates
    assert record["labels"]["count"] == 60 + 60
    again = run(RunRequest("neglabel", str(colour_suite), params=params), ctx, registry)
    assert again["cache"]["texts_encoded"] == 0  # bank and embeddings come from the cache


def test_chunked_grouped_score_matches_the_plain_formula():
    """Chunks of images and contiguous group blocks change memory, not the scores."""
    g = torch.Generator().manual_seed(0)

    def unit(n: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)

    image, id_f, neg = unit(50), unit(4), unit(37)
    groups = make_groups(37, 5, 0)
    lse_id = torch.logsumexp(image.double() @ id_f.double().T / 0.01, dim=1)
    logits = image.double() @ neg.double().T / 0.01
    expected = torch.stack([torch.exp(lse_id - torch.logaddexp(
        lse_id, torch.logsumexp(logits[:, idx], dim=1))) for idx in groups]).mean(0).numpy()
    for chunk in (7, 50, 4096):
        got = neglabel_score(image, id_f, neg, 0.01, groups, chunk=chunk)
        assert got.shape == (50,) and np.allclose(got, expected, rtol=0, atol=1e-12)
    assert neglabel_score(image[:0], id_f, neg, 0.01, groups).shape == (0,)


def _wordnet_or_skip() -> None:
    from oodbench.labels import wordnet

    try:
        wordnet.wordnet_dir()
    except Exception as exc:
        pytest.skip(f"WordNet not installed ({exc})")


def test_neglabel_pool_on_real_wordnet():
    """NegLabel's pool: one head word per synset of 24 noun files + 3 adjective files.

    From WordNet 3.0 (Debian wordnet-base) that is 58,514 + 12,280 candidates; the released
    lists (built from a later English WordNet) hold 57,628 + 12,372 (plugin README).
    """
    from oodbench.labels.generators import WordNetCandidates

    _wordnet_or_skip()
    pools = WordNetCandidates(pool="neglabel").full_pools()
    assert (len(pools["noun"]), len(pools["adjective"])) == (58_514, 12_280)
    assert not set(pools["noun"]) & set(pools["adjective"])  # one de-duplication for both
    assert "entity" in pools["noun"]
    assert "golden retriever" not in pools["noun"]  # noun.animal left out
    assert "pizza" not in pools["noun"]  # noun.food too
    assert all(w == w.lower() for w in pools["noun"][:2000])
    wide = WordNetCandidates(pool="all-lemmas").full_pools()
    assert (len(wide["noun"]), len(wide["adjective"])) == (119_034, 21_538)


def test_neglabel_word_lists_folder(tmp_path):
    """The released txtfiles layout: files in lexicographer order, nouns first, shared dedup,
    noun.animal / noun.food skipped, unknown files (gt labels) ignored."""
    from oodbench.errors import MissingDataError
    from oodbench.labels.generators import WordNetCandidates

    (tmp_path / "noun.act.txt").write_text("running\nsleep\n")
    (tmp_path / "noun.Tops.txt").write_text("entity\nsleep\n")
    (tmp_path / "noun.animal.txt").write_text("dog\n")
    (tmp_path / "adj.all.txt").write_text("red\nsleep\n")
    (tmp_path / "noun.gt_labels.txt").write_text("cat\n")
    pools = WordNetCandidates(pool="neglabel", word_lists=str(tmp_path)).full_pools()
    assert pools == {"noun": ["entity", "sleep", "running"], "adjective": ["red"]}
    with pytest.raises(MissingDataError, match="word_lists=DIR"):
        WordNetCandidates(pool="neglabel", word_lists=str(tmp_path / "no")).full_pools()


@pytest.mark.slow
def test_neglabel_imagenet1k_bank_size(registry, tmp_path):
    """The ImageNet-1K bank: 15 % of each pool, ID names kept as in the official code."""
    import torch

    from oodbench.cache import ArtifactCache
    from oodbench.data.suite import load_suite
    from oodbench.env import MethodEnv
    from oodbench.features import FeatureStore
    from oodbench.labels.generators import NegLabelMining
    from oodbench.types import RunContext

    _wordnet_or_skip()
    suite = load_suite(registry.get("suite", "imagenet-far").obj)
    assert len(suite.classes) == 1000
    from oodbench_mini.model import MiniBackbone  # the mini plugin's backbone, directly

    backbone = MiniBackbone()
    backbone.load(torch.device("cpu"))
    env = MethodEnv(RunContext(cache_dir=tmp_path), backbone, "mini", suite,
                    FeatureStore(ArtifactCache(tmp_path)), registry)
    bank = NegLabelMining().generate(env)
    assert len(bank.labels) == int(0.15 * 58_514) + int(0.15 * 12_280) == 10_619
    assert bank.groups.count("adjective") == 1_842


@pytest.mark.parametrize("key", ["../../../../tmp/x", "/tmp/x", "ab" * 31 + "/x", "x" * 64])
def test_an_imported_bank_never_writes_outside_the_cache(tmp_path, key):
    """A shared bank whose meta.key is a path is refused on one line; nothing is written."""
    bank = LabelBank(["tree"], "g", meta={"key": key})
    shared = tmp_path / "shared.json"
    bank.save(shared)
    result = CliRunner().invoke(app, ["labels", "import", str(shared),
                                      "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code != 0 and "not a cache key" in result.output
    assert len(result.output.strip().splitlines()) == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != shared]
    assert written == []


def test_cache_paths_cannot_leave_the_cache(tmp_path):
    from oodbench.errors import OODBenchError

    cache = ArtifactCache(tmp_path)
    assert cache.path("labels", "ab" * 32, ".json").parent.parent.parent == tmp_path
    for kind, key in (("labels", "../x"), ("..", "ab"), ("labels", "a/b"), ("labels", "")):
        with pytest.raises(OODBenchError, match="cache key"):
            cache.path(kind, key, ".json")


@pytest.mark.parametrize(("change", "problem"), [
    ({"labels": "tree"}, "`labels` must be a list of strings"),
    ({"labels": [1, 2]}, "`labels` must be a list of strings"),
    ({"groups": ["noun"]}, "`groups` must be a list of strings, one per label"),
    ({"templates": "a {}"}, "`templates` must be a list of strings"),
    ({"meta": []}, "`meta` must be an object"),
])
def test_a_malformed_bank_is_refused_and_a_cached_one_regenerated(tmp_path, change, problem):
    import json

    from oodbench.errors import OODBenchError

    good = json.loads(LabelBank(["tree", "rock"], "g", groups=["a", "b"]).to_json())
    path = tmp_path / "bank.json"
    path.write_text(json.dumps({**good, **change}))
    with pytest.raises(OODBenchError, match=problem):
        LabelBank.load(path)
    cache = ArtifactCache(tmp_path / "c")
    bad = cache.path("labels", "cd" * 32, ".json")
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({**good, **change}))
    assert cached_bank(cache, "cd" * 32, lambda: LabelBank(["new"], "g")).labels == ["new"]
    assert LabelBank.load(bad).labels == ["new"]  # healed on disk
