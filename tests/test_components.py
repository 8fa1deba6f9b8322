from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from oodbench.components import Component, coerce, parse_param_args
from oodbench.errors import ParameterError
from oodbench.method import ComponentRef, MethodSpec, split_overrides


@dataclasses.dataclass
class Thing(Component):
    name = "thing"
    kind = "scorer"
    k: int = 3
    rate: float = 0.1
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    words: list[str] = dataclasses.field(default_factory=list)
    path: str | None = None


def test_from_params_coerces_strings():
    t = Thing.from_params({"k": "5", "rate": "1e-3", "flag": "yes", "mode": "b",
                           "words": "x, y", "path": "none"})
    assert (t.k, t.rate, t.flag, t.mode, t.words, t.path) == (5, 0.001, True, "b", ["x", "y"], None)
    assert t.params()["words"] == ["x", "y"]


@pytest.mark.parametrize("params, message", [
    ({"k": "three"}, "thing.k expects int"),
    ({"mode": "c"}, "must be one of"),
    ({"flag": "maybe"}, "expects true/false"),
    ({"nope": 1}, "has no parameter 'nope'"),
    ({"k": 2.5}, "expects an integer"),
    ({"rate": "inf"}, "must be a finite number"),
    ({"rate": "nan"}, "must be a finite number"),
])
def test_bad_params_are_one_line_errors(params, message):
    with pytest.raises(ParameterError, match=message) as info:
        Thing.from_params(params)
    assert "\n" not in str(info.value)


def test_coerce_json_list():
    assert coerce('["a b", "c"]', list[str], "x") == ["a b", "c"]


def test_parse_param_args():
    assert parse_param_args(["a.b=1", "c= x "]) == {"a.b": "1", "c": "x"}
    with pytest.raises(ParameterError):
        parse_param_args(["novalue"])


def test_split_overrides_by_role_name_and_bare_field():
    spec = MethodSpec(name="m", scorer=ComponentRef("s"), label_generator=ComponentRef("g"))
    fields = {"s": {"temperature", "k"}, "g": {"k", "count"}}
    out = split_overrides(spec, {"scorer.temperature": "2", "count": "5", "k": "1"}, fields)
    assert out == {"g": {"count": "5", "k": "1"}, "s": {"temperature": "2", "k": "1"}}
    with pytest.raises(ParameterError, match="no component of method 'm'"):
        split_overrides(spec, {"zzz": "1"}, fields)
    with pytest.raises(ParameterError, match="no component 'nope'"):
        split_overrides(spec, {"nope.k": "1"}, fields)


def test_method_spec_round_trip(tmp_path):
    spec = MethodSpec.from_dict({"name": "x", "scorer": {"name": "mcm", "params": {"t": 2}},
                                 "finetuners": ["a", "b"]})
    assert MethodSpec.from_dict(spec.to_dict()) == spec
    path = tmp_path / "m.yaml"
    path.write_text("name: y\nscorer: mcm\nlabel_generator: {name: g, params: {n: 3}}\n")
    loaded = MethodSpec.from_file(path)
    assert loaded.label_generator == ComponentRef("g", {"n": 3})
    assert "backbones" not in loaded.to_dict()  # records of methods without one keep their keys


def test_a_method_names_its_backbone_per_suite_backbone(tmp_path):
    spec = MethodSpec.from_dict({"name": "x", "scorer": "clipn",
                                 "backbones": {"mini": "mini-clipn"}})
    assert spec.backbone_for("mini") == "mini-clipn"
    assert spec.backbone_for("clip-b16") == "clip-b16"  # not named: the suite's own
    assert spec.to_dict()["backbones"] == {"mini": "mini-clipn"}
    assert MethodSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ParameterError, match="backbones"):
        MethodSpec.from_dict({"name": "x", "scorer": "mcm", "backbones": ["mini-clipn"]})


@pytest.mark.parametrize("name, params", [
    ("mcm", {"temperature": "-1"}), ("msp", {"temperature": "0"}),
    ("energy", {"temperature": "-0.01"}), ("neglabel", {"ngroup": "0"}),
    ("mcm", {"temperature": "inf"}),
])
def test_scorer_parameters_outside_their_range_are_refused(name, params):
    """A temperature of -1 or inf used to score (AUROC 0.50, Infinity in the record)."""
    from oodbench.baselines.plugin import LABEL_SCORERS, SCORERS

    scorer = {s.name: s for s in (*SCORERS, *LABEL_SCORERS)}[name]
    with pytest.raises(ParameterError, match=r"must be (> 0|a finite number)") as info:
        scorer.from_params(params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    ({"name": "m", "scorer": {"name": "mcm", "param": {"t": 2}}},
     "m.yaml: unknown field 'scorer.param' (did you mean 'params'?); allowed: name, params"),
    ({"name": "m", "scorer": "mcm", "finetuner": "recenter"},
     "unknown field 'finetuner' (did you mean 'finetuners'?)"),
    ({"name": "m", "scorer": {"name": "mcm", "params": [1]}},
     "scorer.params must be a mapping, got [1]"),
    ({"name": "m"}, "missing field 'scorer'"),
    ({"scorer": "mcm"}, "missing field 'name'"),
    ({"name": "m", "scorer": "mcm", "interpolation": "nearest"},
     "interpolation must be one of '', 'model', 'bilinear', 'bicubic', got 'nearest'"),
    ({"name": "m", "scorer": "mcm", "finetuners": [{"params": {}}]},
     "missing field 'finetuners[0].name'"),
    ({"name": "m", "scorer": ""}, "scorer.name: string should have at least 1 character"),
])
def test_method_file_mistakes_name_file_field_and_fix(data, message):
    with pytest.raises(ParameterError) as info:
        MethodSpec.from_dict(data, where="m.yaml")
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("m.yaml: ")
    assert "a component a name or {name: ..., params: {field: value}}" in text  # the fix


def test_method_file_shorthands():
    spec = MethodSpec.from_dict({"name": "m", "scorer": "mcm", "finetuners": "recenter",
                                 "label_generator": "none", "synthesizer": None,
                                 "interpolation": None})
    assert spec.finetuners == (ComponentRef("recenter"),)  # one name, not letters
    assert spec.label_generator is None and spec.synthesizer is None and spec.interpolation == ""
    assert MethodSpec.from_dict({"name": "m", "scorer": {"name": "mcm", "params": None}}
                                ).scorer == ComponentRef("mcm")


def test_unreadable_method_file_is_one_line(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ParameterError, match="Cannot read method file") as info:
        MethodSpec.from_file(path)
    assert "\n" not in str(info.value)
    path.write_text("- a list\n")
    with pytest.raises(ParameterError, match="must be a YAML mapping"):
        MethodSpec.from_file(path)


@pytest.mark.parametrize("value, annotation, expected", [
    ("3.0", int, 3), (1, float, 1.0), ("on", bool, True), (3, str, "3"),
    ("a", Literal["a", "b"], "a"), ("[1, 2]", list[int], [1, 2]), ("1,2", tuple[int, ...], (1, 2)),
    ("null", int | None, None), ('{"a": 1}', dict, {"a": 1}), ("x", Literal["x"] | None, "x"),
])
def test_coerce_accepts(value, annotation, expected):
    result = coerce(value, annotation, "c.f")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value, annotation, message", [
    (True, int, "c.f expects int, got True"), (True, float, "c.f expects float, got True"),
    ("c", Literal["a", "b"], "c.f must be one of 'a', 'b', got 'c'."),
    (True, str, "c.f expects str, got True"), ("[1", list[int], "c.f: '[1' is not valid JSON"),
    ("x", int | None, "c.f expects int, got 'x'"), ("{}", list[int], "c.f expects int, got '{}'"),
])
def test_coerce_refuses_with_the_component_field(value, annotation, message):
    with pytest.raises(ParameterError) as info:
        coerce(value, annotation, "c.f")
    assert message in str(info.value)


def test_public_api_is_in_one_place():
    import oodbench
    import oodbench.contracts as contracts
    from oodbench import hookspecs

    assert set(contracts.__all__) == set(contracts._EXPORTS)
    for name in contracts.__all__:
        assert getattr(oodbench, name) is getattr(contracts, name), name
        assert name in oodbench.__all__
    for name in ("LabelBank", "TextHead", "MethodEnv", "env.id_train_images()", "env.encode(",
                 "env.key(", "image_adapter", "finetuners: recenter", "generations"):
        assert name in contracts.__doc__, name
    assert "oodbench.contracts" in hookspecs.__doc__
    # the old module paths stay importable for plugins
    from oodbench.components import Component
    from oodbench.env import MethodEnv
    from oodbench.interfaces import Scorer
    from oodbench.types import LabelBank

    assert (Component, MethodEnv, Scorer, LabelBank) == (
        contracts.Component, contracts.MethodEnv, contracts.Scorer, contracts.LabelBank)
