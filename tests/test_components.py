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
