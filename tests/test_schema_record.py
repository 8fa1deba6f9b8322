"""The result record's model: every committed record validates; a bad one is one line naming
the file, the field and the fix; the published JSON Schema says the same as the model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from oodbench.errors import OODBenchError, RecordError
from oodbench.results import record_json_schema, record_problems, validate_record

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
COMMITTED = sorted(RESULTS.glob("*.json"))


def _record() -> dict[str, Any]:
    return json.loads((RESULTS / "mcm--offline-far--mini.json").read_text())


def test_there_are_committed_records() -> None:
    assert len(COMMITTED) >= 30


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_every_committed_record_validates(path: Path) -> None:
    validate_record(json.loads(path.read_text()), str(path))


def _error(data: Any, source: str = "leaderboard/results/x.json") -> str:
    with pytest.raises(RecordError) as info:
        validate_record(data, source)
    assert isinstance(info.value, OODBenchError)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"Result record {source}: ")
    assert "oodbench schema record" in message  # the fix names where the format is
    return message


@pytest.mark.parametrize("corrupt, expected", [
    (lambda r: r.update(schema="oodbench.result/2"),
     "schema must be 'oodbench.result/1', got 'oodbench.result/2'"),
    (lambda r: r.update(id_accuracy=True), "id_accuracy must be a number, got True"),
    (lambda r: r["metrics"]["animals"].update(auroc=1.5),
     "metrics.animals.auroc: input should be less than or equal to 1.000000001, got 1.5"),
    (lambda r: r.update(fpr_convention="strict"),
     "fpr_convention must be one of 'paper', 'openood', got 'strict'"),
    (lambda r: r.pop("suite"), "missing field 'suite'"),
    (lambda r: r.update(metrics={}), "metrics: dictionary should have at least 1 item"),
    (lambda r: r["metrics"]["food"].update(group="middle"), "metrics.food.group must be one of "
                                                            "'near', 'far', 'extra'"),
    (lambda r: r["suite"].update(version=0), "suite.version: input should be greater than"),
    (lambda r: r.update(method=""), "method: string should have at least 1 character"),
])
def test_a_bad_field_is_named(corrupt, expected) -> None:
    record = _record()
    corrupt(record)
    assert expected in _error(record)


def test_a_misspelt_field_gets_a_did_you_mean() -> None:
    record = _record()
    record["metricz"] = record.pop("metrics")
    message = _error(record)
    # the unknown key comes first: it explains the missing one
    assert "unknown field 'metricz' (did you mean 'metrics'?)" in message and "(+1 more)" in message
    record = _record()
    record["suite"]["tsak"] = "far"
    assert "unknown field 'suite.tsak' (did you mean 'task'?); allowed: name, version, hash, " \
           "task" in _error(record)


def test_not_an_object() -> None:
    assert "not a JSON object (got list)" in _error([1, 2])


def test_the_generations_block_is_checked_across_fields() -> None:
    from tests.test_generations import _with_generations

    good = _with_generations()
    validate_record(good, "good.json")
    bad = copy.deepcopy(good)
    bad["generations"]["seeds"] = [0, 0]
    assert "generations: seeds must be 2 distinct integers" in _error(bad)
    bad = copy.deepcopy(good)
    bad["generations"]["std"]["metrics"].pop("birds")
    assert "generations.std.metrics must name the same OOD sets as metrics" in _error(bad)


def test_floating_point_excess_of_a_fraction_is_accepted() -> None:
    record = _record()
    record["metrics"]["animals"]["aupr_out"] = 1.0000000000000002  # what sklearn can return
    assert record_problems(record) == []


def test_component_provenance_is_optional_and_typed() -> None:
    record = _record()
    record["components"] = [{"role": "scorer", "name": "mcm", "plugin": "oodbench.baselines",
                             "distribution": "oodbench", "version": "0.1.0"}]
    assert record_problems(record) == []
    record["components"][0]["role"] = "painter"
    assert "components[0].role must be one of 'backbone'" in _error(record)


def test_the_published_schema_describes_the_record() -> None:
    schema = record_json_schema()
    json.dumps(schema)  # serialisable as published
    assert schema["$schema"].endswith("2020-12/schema") and schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert {"schema", "method", "suite", "backbone", "metrics", "groups", "id_accuracy",
            "fpr_convention", "params", "environment", "seed", "created",
            "timings"} == set(schema["required"])
    assert schema["properties"]["schema"]["const"] == "oodbench.result/1"
    assert "components" in schema["properties"] and "components" not in schema["required"]
    set_metrics = schema["$defs"]["SetMetrics"]["properties"]
    assert set_metrics["auroc"]["maximum"] == pytest.approx(1.0)
    assert set(set_metrics["group"]["enum"]) == {"near", "far", "extra"}
