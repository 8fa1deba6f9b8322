"""OLE's components one by one: templates, outlier labels, the prototype fine-tuner, params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodbench.errors import OODBenchError, ParameterError
from oodbench.labels import wordnet
from oodbench.types import TextHead
from oodbench_ole import prototypes as proto_module
from oodbench_ole.finetuner import OLEPrototypes
from oodbench_ole.labels import OFFICIAL_LIST_SIZE, OLEOutliers
from oodbench_ole.scorer import OLEScorer
from oodbench_ole.templates import NAMED, resolve_templates


# -- templates -----------------------------------------------------------------------------------
def test_template_sets_have_the_papers_two_kinds_of_64():
    clip, with_ = NAMED["clip64"], NAMED["with64"]
    assert len(clip) == len(set(clip)) == 64 and len(with_) == len(set(with_)) == 64
    assert NAMED["ole128"] == clip + with_
    assert all(x.count("{}") == 1 and "'" not in x for x in NAMED["ole128"])
    assert all(" with " in x for x in with_) and not any(" with " in x for x in clip)


def test_template_specs_resolve_or_fail_early():
    assert resolve_templates("suite", ["a {}."]) == ["a {}."]
    assert resolve_templates("a {}.|the {}!", []) == ["a {}.", "the {}!"]
    with pytest.raises(ValueError, match="unknown template set"):
        resolve_templates("ole-128", [])
    with pytest.raises(ParameterError):
        OLEOutliers.from_params({"templates": "nonsense"})


def test_auto_templates_are_the_papers_except_on_the_cpu_sized_mini_backbone():
    suite = ["a photo of a {}.", "a drawing of a {}."]
    assert resolve_templates("auto", suite, "mini") == suite
    assert resolve_templates("auto", suite, "open_clip") == NAMED["ole128"]
    assert resolve_templates("auto", suite) == NAMED["ole128"]
    assert OLEOutliers().templates == "auto" and OLEPrototypes().id_templates == "auto"


# -- outlier labels ------------------------------------------------------------------------------
def test_wordnet_outliers_are_single_word_concrete_nouns_minus_id_names(fake_wordnet, make_env):
    env = make_env(classes=("Dog", "piano keys"))
    bank = OLEOutliers().generate(env)
    # noun.cognition ("idea") is not concrete; multi-word, capitalised and digit lemmas go;
    # "dog" is dropped case-insensitively (the ID class is "Dog"), only once despite 2 synsets
    assert bank.labels == ["cat", "zebra", "hammer", "claw-hammer", "piano", "pianoforte",
                           "apple"]
    assert bank.templates == NAMED["ole128"]
    assert bank.meta["removed_id_names"] == 1 and bank.meta["candidates"] == 8
    assert "WordNet" in bank.source


def test_outlier_subsample_is_seeded_ordered_and_cached(fake_wordnet, make_env):
    env = make_env()
    small = OLEOutliers(max_labels=3).generate(env)
    assert small.labels == OLEOutliers(max_labels=3).generate(make_env()).labels
    everything = OLEOutliers(max_labels=0).generate(env).labels
    assert len(small.labels) == 3
    assert small.labels == [w for w in everything if w in small.labels]  # WordNet order kept
    other = OLEOutliers(max_labels=3, seed=1).generate(env).labels
    assert set(other) <= set(everything)
    assert OLEOutliers(lexfiles=["noun.food"]).generate(env).labels == ["apple"]


def test_outliers_from_a_list_or_a_file(tmp_path, make_env):
    env = make_env(classes=("red",))
    bank = OLEOutliers(source="list", words=["Red", "cyan", "cyan", "grey"]).generate(env)
    assert bank.labels == ["cyan", "grey"]
    words = tmp_path / "words.txt"
    words.write_text("# my outliers\ncyan\n\nRED\nteal\n")
    bank = OLEOutliers(source="file", path=str(words), templates="suite").generate(env)
    assert bank.labels == ["cyan", "teal"] and bank.templates == ["a photo of a {}."]
    words.write_text("cyan\n")  # a new file content gives a new bank, not a stale cache hit
    assert OLEOutliers(source="file", path=str(words)).generate(env).labels == ["cyan"]
    with pytest.raises(OODBenchError):
        OLEOutliers(source="list", words=["red"]).generate(env)


def test_real_wordnet_gives_the_official_list_size(monkeypatch, make_env, real_data_dir):
    if not (real_data_dir / "wordnet" / "usr" / "share" / "wordnet" / "data.noun").exists() \
            and not (wordnet.SYSTEM_DIR / "data.noun").exists():
        pytest.skip("WordNet 3.0 is absent: run `oodbench data fetch-wordnet`")
    monkeypatch.setenv("OODBENCH_DATA", str(real_data_dir))
    wordnet.load_synsets.cache_clear()
    bank = OLEOutliers().generate(make_env(classes=("dog", "Piano", "hammer")))
    assert bank.meta["candidates"] == OFFICIAL_LIST_SIZE  # the fixed list, before the filter
    assert len(bank.labels) == OFFICIAL_LIST_SIZE - bank.meta["removed_id_names"]
    assert len(set(bank.labels)) == len(bank.labels)
    assert not {"dog", "piano", "hammer"} & set(bank.labels)
    # every suite gets the same fixed list, minus its own class names
    other = OLEOutliers().generate(make_env(classes=("zzz-not-a-noun",))).labels
    assert len(other) == OFFICIAL_LIST_SIZE
    assert [w for w in other if w not in {"dog", "piano", "hammer"}] == bank.labels


# -- prototype fine-tuner ------------------------------------------------------------------------
def _head(rng: np.random.Generator, n_labels: int = 60, dim: int = 6) -> TextHead:
    ids = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(4, dim)) + 2.0), dim=-1)
    extra = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(n_labels, dim))),
                                          dim=-1)
    return TextHead(ids.float(), ["a", "b", "c", "d"], extra.float(),
                    [f"w{i}" for i in range(n_labels)])


def test_finetuner_replaces_extra_labels_and_caches_prototypes(make_env, monkeypatch):
    head = _head(np.random.default_rng(0))
    env = make_env(classes=head.id_labels)
    tuner = OLEPrototypes(n_prototypes=20, covariance="kmeans", id_covariance="kmeans",
                          id_templates="head", quantile=0.3)
    out = tuner.finetune(env, head, None)
    notes = env.notes["ole-prototypes"]
    assert notes["prototypes"] == 20 and notes["labels"] == 60
    assert out.extra_features.shape == (notes["outliers"], 6)
    assert len(out.extra_labels) == notes["outliers"] >= 1
    assert out.extra_labels[0].startswith("prototype-")
    assert torch.equal(out.id_features, head.id_features)  # "head": ID embeddings untouched
    assert torch.allclose(out.extra_features.norm(dim=1), torch.ones(notes["outliers"]))
    assert len(list((env.cache.root / "ole").glob("*/*.npy"))) == 1

    def no_clustering(*args, **kwargs):
        raise AssertionError("prototypes should come from the cache")

    monkeypatch.setattr("oodbench_ole.finetuner.cluster", no_clustering)
    again = tuner.finetune(make_env(classes=head.id_labels), head, None)
    assert torch.equal(again.extra_features, out.extra_features)
    assert again.extra_labels == out.extra_labels


def test_finetuner_cache_key_follows_the_label_embeddings(make_env):
    rng = np.random.default_rng(0)
    env = make_env(classes=["a", "b", "c", "d"])
    tuner = OLEPrototypes(n_prototypes=5, covariance="kmeans", id_covariance="kmeans",
                          id_templates="head")
    tuner.finetune(env, _head(rng), None)
    tuner.finetune(env, _head(rng), None)  # other labels: a second cache entry
    assert len(list((env.cache.root / "ole").glob("*/*.npy"))) == 2


def test_finetuner_uses_the_template_ensemble_for_id_and_clamps_small_sets(make_env):
    head = _head(np.random.default_rng(2), n_labels=3, dim=5)
    seen = {}
    new_ids = torch.nn.functional.normalize(torch.ones(4, 5) + torch.eye(4, 5), dim=-1)

    def id_features(templates=None):
        seen["templates"] = templates
        return new_ids

    env = make_env(classes=head.id_labels)
    env.id_text_features = id_features
    out = OLEPrototypes(covariance="full").finetune(env, head, None)  # K = 500 -> 3
    assert seen["templates"] == NAMED["ole128"]
    assert torch.equal(out.id_features, new_ids)
    assert env.notes["ole-prototypes"]["prototypes"] == 3
    assert env.notes["ole-prototypes"]["kept_prototypes"] >= 1


def test_finetuner_needs_outlier_labels(make_env):
    head = TextHead(torch.eye(3), ["a", "b", "c"])
    with pytest.raises(OODBenchError, match="label generator"):
        OLEPrototypes(id_templates="head").finetune(make_env(), head, None)


@pytest.mark.parametrize("params", [{"covariance": "bogus"}, {"quantile": "2"},
                                    {"lambda_max": "0.1", "lambda_min": "0.2"},
                                    {"n_prototypes": "0"}])
def test_bad_parameters_are_parameter_errors(params):
    with pytest.raises(ParameterError):
        OLEPrototypes.from_params(params)


def test_parameters_parse_from_cli_strings():
    tuner = OLEPrototypes.from_params({"covariance": "kmeans", "generate": "false",
                                       "n_prototypes": "50"})
    assert (tuner.covariance, tuner.generate, tuner.n_prototypes) == ("kmeans", False, 50)
    assert OLEScorer.from_params({"scale": "100"}).scale == 100.0
    assert proto_module.HOPGConfig().per_component == 30


def test_scorer_prepare_records_the_variant_and_can_reembed_id(make_env):
    head = _head(np.random.default_rng(4))
    env = make_env(classes=head.id_labels, prompts=("a {}.", "an {}!"))
    seen = {}

    def id_features(templates=None):
        seen["templates"] = templates
        return head.id_features * 1.0

    env.id_text_features = id_features
    prepared = OLEScorer().prepare(env, head)
    assert prepared is head and "templates" not in seen  # "" keeps the head's ID embeddings
    assert env.notes["ole"] == {"variant": "OLE (CLIP)", "outliers": 60, "scale": 50.0}
    OLEScorer(id_templates="suite").prepare(env, head)
    assert seen["templates"] == ["a {}.", "an {}!"]
    clipn = head.replace(meta={"id_no_features": head.id_features.flip(0)})
    OLEScorer().prepare(env, clipn)
    assert env.notes["ole"]["variant"] == "OLE (CLIPN)"
    image = torch.nn.functional.normalize(torch.randn(3, 6), dim=-1)
    assert (OLEScorer().score(image, clipn) < OLEScorer().score(image, head)).all()


# -- the fixed list is embedded once for every suite ---------------------------------------
def test_fixed_list_is_embedded_before_the_id_filter_only_when_it_removes_names(fake_wordnet,
                                                                                 make_env):
    env = make_env(classes=("Dog",))
    bank = OLEOutliers(templates="clip64").generate(env)
    assert bank.meta["removed_id_names"] == 1
    (labels, templates), = env.store.calls  # one call: the whole fixed list, every template
    assert labels == ["dog", *bank.labels] and templates == NAMED["clip64"]
    nothing_removed = make_env(classes=("zzz",))
    OLEOutliers(templates="clip64").generate(nothing_removed)
    assert nothing_removed.store.calls == []  # the bank's own list is the fixed list


def test_a_second_suite_encodes_no_outlier_label(tmp_path):
    """Suites differ only by their ID names: the second one's bank comes from the first's rows."""
    from types import SimpleNamespace

    from oodbench.cache import ArtifactCache
    from oodbench.env import MethodEnv
    from oodbench.features import FeatureStore
    from oodbench.testing import ToyColourBackbone
    from oodbench.types import RunContext

    backbone = ToyColourBackbone()
    backbone.load(torch.device("cpu"))
    ctx = RunContext(cache_dir=tmp_path / "cache", batch_size=4)
    words = ["cyan", "red", "stone", "yellow", "cloud"]

    def env_for(*classes: str) -> MethodEnv:  # a fresh store = a new process
        suite = SimpleNamespace(classes=classes, prompts=("a photo of a {}.",))
        return MethodEnv(ctx, backbone, "toy-colour", suite,
                         FeatureStore(ArtifactCache(ctx.cache_dir)), None)

    generator = OLEOutliers(source="list", words=words, templates="clip64")
    first = env_for("red")
    first.label_features(generator.generate(first))
    assert first.store.stats.texts_encoded == len(words) * 64
    second = env_for("yellow", "blue")
    bank = generator.generate(second)
    feats = second.label_features(bank)
    assert bank.labels == ["cyan", "red", "stone", "cloud"]
    assert second.store.stats.texts_encoded == 0
    direct = second.store.label_embeddings(backbone, bank.labels, NAMED["clip64"], ctx)
    assert torch.equal(feats, direct)
