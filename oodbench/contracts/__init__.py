"""The public API of oodbench: everything a plugin may import, in one place.

``from oodbench.contracts import X`` (or ``from oodbench import X``) for every name in
``__all__``; the hooks that register these are in :mod:`oodbench.hookspecs`. Names load lazily,
so ``import oodbench`` stays cheap (no torch until a component class is used).

**Component kinds.** A component is a dataclass subclass of one kind with a class-level
``name`` (how methods and ``--param name.field=...`` address it), an optional ``description``,
typed fields as parameters (``int``, ``float``, ``bool``, ``str``, ``Literal[...]`` choices,
``X | None``, lists, dicts; see :mod:`oodbench.contracts.params`) with the defaults of the paper
it implements, and one main method that receives the run's :class:`MethodEnv`:

* :class:`LabelGenerator` ``.generate(env) -> LabelBank``: extra (outlier, negative) labels.
  A stochastic generator may declare an ``int`` parameter ``generations`` (default 1): with
  N > 1 the runner repeats labels -> synthesize -> finetune -> score N times, with seeds
  run-seed + 0..N-1, and records the mean and standard deviation.
* :class:`Synthesizer` ``.synthesize(env, labels) -> SampleSet``: images written under the cache.
* :class:`FineTuner` ``.finetune(env, head, samples) -> TextHead``: a new head.
* :class:`Scorer` ``.score(image_features, head) -> np.ndarray``: one score per image, higher =
  more in-distribution (``prepare(env, head)`` optionally fits on text features first).

Each may override ``preflight(env)`` (a cheap check that what it needs can be loaded here). A
generator must return a :class:`LabelBank` and a fine-tuner a :class:`TextHead`; anything else
stops the run with one line naming the component.

**LabelBank** (:class:`~oodbench.contracts.data.LabelBank`): ``labels`` (the extra class names),
``generator`` (its name), ``params``, ``source`` (e.g. "wordnet"), ``templates`` (prompt
templates, ``{}`` = the label), optional per-label ``groups`` with ``group_templates``, and
``meta``. It is an artefact: save/load as JSON, ``oodbench labels export/import``. The runner
embeds the labels with ``env.label_features(bank)`` into the head's ``extra_features``.

**TextHead** (:class:`~oodbench.contracts.data.TextHead`): what a scorer scores against.
``id_features`` [C, D] (row c = ID class c, L2-normalised), ``id_labels``, ``extra_features``
[M, D] or None with ``extra_labels``, ``image_adapter`` and ``meta``. Heads are immutable by
convention: ``head.replace(field=...)`` returns a new one.

**The adapter mechanics.** A fine-tuner that changes the image side returns
``head.replace(image_adapter=f)`` with ``f: Tensor[N, D] -> Tensor[N, D]`` (a function or a
``torch.nn.Module``). The runner calls ``head.adapt(features)`` on every image feature set
(ID test and each OOD set) on the run's device before ``Scorer.score`` and before ID accuracy,
so scorers always see adapted features; ``head.to(device)`` moves a module adapter (as a copy).
An adapter replaces the previous one: a fine-tuner that builds on an earlier adapter composes it
itself (``f = lambda x: mine(head.adapt(x))``). Keep the output L2-normalised if the scorer
expects cosine similarities.

**MethodEnv** (:class:`~oodbench.contracts.env.MethodEnv`): what every main method receives.
``env.ctx`` (:class:`RunContext`: device, dtype, seed, cache_dir, batch_size, ...),
``env.device``, ``env.backbone`` and ``env.suite`` (classes, prompts, class_type, task);

* ``env.id_train_images()``: the suite's ID *train* images (an ``ImageList``), the only images
  a method may learn from; a suite without ``id.train`` stops with a one-line fix.
* ``env.encode(images, phase=None) -> FeatureSet``: encode images with the run's backbone,
  through the feature cache (``.features`` [N, D] L2-normalised, ``.labels``, ``.paths``).
* ``env.id_text_features(templates=None)``, ``env.text_features(texts)``,
  ``env.label_features(bank)``: cached text embeddings.
* ``env.key(*parts) -> str``: a cache key that already includes the backbone fingerprint and
  the suite's ID classes; add everything else your artefact depends on (``self.params()``,
  input digests). Store artefacts with ``env.cache`` (atomic, content-keyed).
* ``env.rng(*salt)``: a numpy generator seeded by the run seed and ``salt``;
  ``env.reuse(stage)``: False after ``--rerun-from stage``; ``env.log(text)``; ``env.notes``:
  a dict that lands in the result record's ``notes``.

**A plugin**, with a label generator and a fine-tuner::

    import dataclasses
    import torch
    import oodbench
    from oodbench.contracts import FineTuner, LabelBank, LabelGenerator, MethodSpec, ComponentRef

    @dataclasses.dataclass
    class Opposites(LabelGenerator):
        name = "opposites"
        prefix: str = "not a"

        def generate(self, env):
            labels = [f"{self.prefix} {c}" for c in env.suite.classes]
            return LabelBank(labels, generator=self.name, params=self.params())

    @dataclasses.dataclass
    class Recenter(FineTuner):
        name = "recenter"

        def finetune(self, env, head, samples):
            mean = env.encode(env.id_train_images()).features.mean(0).to(env.device)
            adapt = lambda x: torch.nn.functional.normalize(x - mean, dim=-1)
            return head.replace(image_adapter=adapt)

    @oodbench.hookimpl
    def register_label_generators(register):
        register(Opposites)

    @oodbench.hookimpl
    def register_finetuners(register):
        register(Recenter)

    @oodbench.hookimpl
    def register_methods(register):
        register(MethodSpec(name="opposites-neglabel", scorer=ComponentRef("neglabel"),
                            label_generator=ComponentRef("opposites"),
                            finetuners=(ComponentRef("recenter"),)))

**The YAML method form** (``oodbench run --method m.yaml``) is the same composition, and may
combine components of different plugins (see :mod:`oodbench.contracts.method`)::

    name: opposites-neglabel
    label_generator: {name: opposites, params: {prefix: "no"}}
    finetuners: recenter
    scorer: neglabel

**Errors**: raise an :class:`OODBenchError` subclass whose message names the problem and the
fix on one line; the CLI prints it and exits with its ``exit_code``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS: dict[str, str] = {
    # component kinds and their base
    "Component": "oodbench.contracts.component",
    "Scorer": "oodbench.contracts.kinds",
    "LabelGenerator": "oodbench.contracts.kinds",
    "Synthesizer": "oodbench.contracts.kinds",
    "FineTuner": "oodbench.contracts.kinds",
    "Backbone": "oodbench.backbones.base",
    "TensorPreprocess": "oodbench.backbones.base",
    "TextGenerator": "oodbench.generative",
    "ImageDescriber": "oodbench.generative",
    "ImageGenerator": "oodbench.generative",
    "ImageClassifier": "oodbench.generative",
    # what flows between components
    "RunContext": "oodbench.contracts.data",
    "FeatureSet": "oodbench.contracts.data",
    "LabelBank": "oodbench.contracts.data",
    "SampleSet": "oodbench.contracts.data",
    "TextHead": "oodbench.contracts.data",
    "MethodEnv": "oodbench.contracts.env",
    # methods
    "MethodSpec": "oodbench.contracts.method",
    "ComponentRef": "oodbench.contracts.method",
    # registration
    "Register": "oodbench.hookspecs",
    # errors
    "OODBenchError": "oodbench.errors",
    "ParameterError": "oodbench.errors",
    "MissingDataError": "oodbench.errors",
    "OfflineError": "oodbench.errors",
    "ResourceError": "oodbench.errors",
    "PluginError": "oodbench.errors",
}

__all__ = [
    "Backbone",
    "Component",
    "ComponentRef",
    "FeatureSet",
    "FineTuner",
    "ImageClassifier",
    "ImageDescriber",
    "ImageGenerator",
    "LabelBank",
    "LabelGenerator",
    "MethodEnv",
    "MethodSpec",
    "MissingDataError",
    "OODBenchError",
    "OfflineError",
    "ParameterError",
    "PluginError",
    "Register",
    "ResourceError",
    "RunContext",
    "SampleSet",
    "Scorer",
    "Synthesizer",
    "TensorPreprocess",
    "TextGenerator",
    "TextHead",
]

if TYPE_CHECKING:
    from oodbench.backbones.base import Backbone, TensorPreprocess
    from oodbench.contracts.component import Component
    from oodbench.contracts.data import FeatureSet, LabelBank, RunContext, SampleSet, TextHead
    from oodbench.contracts.env import MethodEnv
    from oodbench.contracts.kinds import FineTuner, LabelGenerator, Scorer, Synthesizer
    from oodbench.contracts.method import ComponentRef, MethodSpec
    from oodbench.errors import (
        MissingDataError,
        OfflineError,
        OODBenchError,
        ParameterError,
        PluginError,
        ResourceError,
    )
    from oodbench.generative import ImageClassifier, ImageDescriber, ImageGenerator, TextGenerator
    from oodbench.hookspecs import Register


def __getattr__(name: str) -> object:
    """Import the defining module on first access (``import oodbench`` imports no torch)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'oodbench.contracts' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
