"""The result record as a typed model: the one definition its JSON Schema is published from
(``oodbench schema record``) and every record is validated against (``leaderboard build``).

:func:`oodbench.results.validate_record` and :func:`oodbench.results.record_json_schema` are
the entry points; the field-by-field meaning is documented in :mod:`oodbench.results`. The
models validate strictly (a ``true`` is not a number, a number is not a string); sections that
vary by method (``params``, ``notes``, ``curves``, ``timings``) are open mappings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA = "oodbench.result/1"

# a metric in [0, 1], computed in floating point: an AUPR of 1 can come out as 1 + 2e-16
EPS = 1e-9
Fraction = Annotated[float, Field(ge=-EPS, le=1.0 + EPS)]


class _Closed(BaseModel):
    """A section with a fixed set of fields: an unknown key is a typo, not data."""

    model_config = ConfigDict(strict=True, extra="forbid")


class _Open(BaseModel):
    """A section whose named fields are checked and that may carry more."""

    model_config = ConfigDict(strict=True, extra="allow")


class SetMetrics(_Closed):
    """Detection metrics of one OOD set against the ID test set."""

    group: Literal["near", "far", "extra"]
    auroc: Fraction
    fpr95: Fraction
    aupr_in: Fraction | None = None
    aupr_out: Fraction | None = None
    n_id: int | None = Field(default=None, ge=0)
    n_ood: int | None = Field(default=None, ge=0)
    fpr_convention: Literal["paper", "openood"] | None = None
    ci: dict[str, list[float]] | None = Field(
        default=None, description="bootstrap intervals: metric -> [low, high] (--bootstrap)")


class GroupMetrics(_Closed):
    """Unweighted means over the OOD sets of one group."""

    auroc: Fraction
    fpr95: Fraction
    aupr_in: Fraction | None = None
    aupr_out: Fraction | None = None
    sets: int | None = Field(default=None, ge=1, description="OOD sets averaged")


class GenerationMetrics(_Closed):
    auroc: Fraction
    fpr95: Fraction
    aupr_in: Fraction | None = None
    aupr_out: Fraction | None = None
    ci: dict[str, list[float]] | None = None


class GenerationStd(_Closed):
    auroc: Fraction | None = None
    fpr95: Fraction | None = None
    aupr_in: Fraction | None = None
    aupr_out: Fraction | None = None


class PerGeneration(_Closed):
    seed: int
    label_set: int = Field(ge=0)
    labels: int | None = Field(default=None, description="label count of the generation")
    id_accuracy: Fraction
    metrics: dict[str, GenerationMetrics]
    groups: dict[str, GenerationMetrics]


class StdBlock(_Closed):
    metrics: dict[str, GenerationStd]
    groups: dict[str, GenerationStd]
    id_accuracy: float = Field(ge=0.0)


class Generations(_Closed):
    """N > 1 independent generations of a stochastic label generator (see oodbench.results)."""

    n: int = Field(ge=1)
    seeds: list[int]
    label_sets: list[int]
    distinct_label_sets: int
    std_ddof: int = 1
    per_generation: list[PerGeneration]
    std: StdBlock

    @model_validator(mode="after")
    def _consistent(self) -> Generations:
        n = self.n
        if len(self.seeds) != n or len(set(self.seeds)) != n:
            raise ValueError(f"seeds must be {n} distinct integers")
        if len(self.label_sets) != n or not all(0 <= x < n for x in self.label_sets):
            raise ValueError(f"label_sets must be {n} indices in [0, {n})")
        if self.distinct_label_sets != len(set(self.label_sets)):
            raise ValueError("distinct_label_sets does not match label_sets")
        if len(self.per_generation) != n:
            raise ValueError(f"per_generation must hold {n} entries")
        return self


class SuiteInfo(_Closed):
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    hash: str = Field(description="SHA-256 of the resolved suite file")
    task: Literal["far", "near", "fine-grained"]


class BackboneInfo(_Open):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str = Field(description="weights + preprocessing identity")
    preprocessing: dict[str, Any] | None = Field(
        default=None, description="{interpolation, chosen_by} for backbones with that choice")
    weights: dict[str, Any] | None = Field(
        default=None, description="the --weights identity (path, sha256, tag or files)")


class Environment(_Open):
    oodbench: str
    git_revision: str | None = Field(description="commit (+dirty) of the oodbench checkout")
    python: str | None = None
    platform: str | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None


class ComponentSource(_Closed):
    """Which plugin (distribution and version) supplied one component of the run."""

    role: Literal["backbone", "label_generator", "synthesizer", "finetuner", "scorer"]
    name: str
    plugin: str
    distribution: str
    version: str


class Record(_Closed):
    """One result record (``oodbench.result/1``): one method x one suite x one backbone."""

    model_config = ConfigDict(strict=True, extra="forbid", title="oodbench result record")

    schema_: Literal["oodbench.result/1"] = Field(alias="schema")
    method: str = Field(min_length=1)
    method_spec: dict[str, Any] | None = Field(default=None, description="the composition")
    params: dict[str, dict[str, Any]] = Field(description="component -> its parameters")
    suite: SuiteInfo
    backbone: BackboneInfo
    source: Literal["offline", "real"] | None = None
    metrics: dict[str, SetMetrics] = Field(min_length=1, description="OOD set -> metrics")
    groups: dict[Literal["near", "far"], GroupMetrics]
    id_accuracy: Fraction
    fpr_convention: Literal["paper", "openood"]
    labels: dict[str, Any] | None = None
    notes: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, Any] | None = None
    curves: dict[str, dict[str, list[float]]] | None = None
    environment: Environment
    seed: int
    created: str = Field(description="UTC time, ISO 8601")
    timings: dict[str, float]
    cache: dict[str, Any] | None = None
    substitutions: dict[str, Any] | None = Field(
        default=None, description="component.parameter -> value replacing a paper setting")
    overrides: dict[str, str] | None = Field(default=None, description="-p overrides as given")
    generations: Generations | None = None
    components: list[ComponentSource] | None = Field(
        default=None, description="the plugin that supplied each component")
    path: str | None = Field(default=None, description="where run() wrote it (not in the file)")

    @model_validator(mode="after")
    def _std_names_sets(self) -> Record:
        if self.generations is not None and set(self.generations.std.metrics) != set(self.metrics):
            raise ValueError("generations.std.metrics must name the same OOD sets as metrics")
        return self
