"""The plugin contract of oodbench: every hook a plugin may implement, and what it means.

A plugin is a module (or an object) with functions named after these hooks and decorated with
``oodbench.hookimpl``. Each hook receives a ``register`` callback owned by the core, so that a
plugin is a few lines and the core checks names, types and collisions in one place::

    import oodbench

    @oodbench.hookimpl
    def register_scorers(register):
        register(MyScorer)            # a subclass of oodbench.Scorer with name = "my-score"

Third-party packages expose their plugin module through the setuptools entry-point group
``oodbench`` (``[project.entry-points.oodbench] my = "my_pkg.plugin"``); the built-in
baselines, backbones, suites and generative backends are plugins of exactly the same form.

Every class these hooks register, and everything else a plugin may import (``LabelBank``,
``TextHead``, ``MethodEnv``, ``MethodSpec``, the errors), is in :mod:`oodbench.contracts` (also
importable from ``oodbench``); its docstring documents them, the image-adapter mechanics and
the YAML method form, with a label generator + fine-tuner example.

Conventions for every component registered below:

* It is a dataclass: its public fields are its parameters, with the defaults of the paper it
  implements; ``--param name.field=value`` (CLI) and method files override them.
* It takes the device, dtype, seed and cache directory from the run's ``MethodEnv``.
* Scores are per image, as numpy float arrays, and **higher means more in-distribution**.
* Expensive artefacts are cached under ``env.cache`` keyed by everything that produced them.

All hooks are called once per plugin at start-up; none returns anything.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("oodbench")

Register = Callable[..., None]


# -- models ------------------------------------------------------------------------------------
@hookspec
def register_backbones(register: Register) -> None:
    """Register vision-language backbones.

    :param register: call ``register(cls, name=None, defaults=None, description=None)`` with a
        subclass of :class:`oodbench.contracts.Backbone`. ``name``/``defaults`` register a
        preset of the same class (e.g. ``clip-b16`` = ``openclip`` with model ``ViT-B-16``).
        A backbone encodes images and texts into one L2-normalised space of width
        ``embed_dim``; ``fingerprint()`` must change whenever its embeddings could change.
    """


@hookspec
def register_suites(register: Register) -> None:
    """Register benchmark suites.

    :param register: call ``register(path)`` with a suite YAML file or a directory of them.
        A suite names its ID dataset (class names, prompt templates, test and train sources)
        and its OOD datasets, each in the group ``near`` or ``far``.
    """


# -- components of methods -----------------------------------------------------------------------
@hookspec
def register_label_generators(register: Register) -> None:
    """Register label generators (subclasses of :class:`oodbench.LabelGenerator`).

    ``generate(env) -> LabelBank`` returns extra class labels (outlier, negative or
    envisioned labels) for the suite's ID classes, with the labels' provenance. Label banks
    are artefacts: cached, exportable and importable. A stochastic generator declares an
    ``int`` parameter ``generations`` (the contract's default: 1): the runner then averages N
    independent generations with seeds run-seed + 0..N-1.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_synthesizers(register: Register) -> None:
    """Register sample synthesizers (subclasses of :class:`oodbench.Synthesizer`).

    ``synthesize(env, labels) -> SampleSet`` writes images near the ID/OOD boundary as files
    with a manifest (prompt, seed, parameters, source image) under the cache, atomically, so
    that an interrupted synthesis resumes where it stopped.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_finetuners(register: Register) -> None:
    """Register fine-tuners (subclasses of :class:`oodbench.FineTuner`).

    ``finetune(env, head, samples) -> TextHead`` adapts the backbone's view: it may set an
    image-feature adapter (e.g. a residual projection) and/or replace the ID or extra label
    embeddings (tuned features, learned prototypes). Trained weights are cached and keyed.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_scorers(register: Register) -> None:
    """Register scorers (subclasses of :class:`oodbench.Scorer`).

    ``score(image_features, head) -> np.ndarray`` returns one float per image, higher = more
    in-distribution. ``image_features`` are L2-normalised [N, D] rows already passed through
    the head's image adapter; ``head.id_features`` are the ID class embeddings [C, D] and
    ``head.extra_features`` the extra label embeddings [M, D] (or None).

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_methods(register: Register) -> None:
    """Register methods: compositions of the components above.

    :param register: call ``register(MethodSpec(...))``. A method names one scorer and
        optionally a label generator, a synthesizer and fine-tuners (applied in order), each
        with parameters. The core runs them as: labels -> samples -> fine-tuning -> scoring.
        A YAML method file with the same fields is equivalent (``--method path.yaml``).
    """


# -- generative backends (used by label generators and synthesizers) ---------------------------
@hookspec
def register_text_generators(register: Register) -> None:
    """Register text LLM backends (subclasses of :class:`oodbench.generative.TextGenerator`).

    ``generate(prompts) -> list[str]``: one answer per chat prompt, greedy unless a
    parameter says otherwise. Used to envision outlier labels and broad categories.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_image_describers(register: Register) -> None:
    """Register multimodal LLM backends (:class:`oodbench.generative.ImageDescriber`).

    ``describe(images, prompts) -> list[str]``: one answer per (image, prompt) pair; used to
    list an image's contents besides its subject and to propose outlier labels from images.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_image_generators(register: Register) -> None:
    """Register diffusion backends (:class:`oodbench.generative.ImageGenerator`).

    Text-to-image and in-painting with per-image seeds, guidance and strength, plus the
    latent-level access (start noise in, denoised latent out, differentiable decode) that
    guided synthesis needs.

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


@hookspec
def register_image_classifiers(register: Register) -> None:
    """Register frozen, differentiable image classifiers (``oodbench.generative.ImageClassifier``).

    ``bind(env)`` loads the model for a run; ``classifier(images) -> logits`` maps [N, 3, H, W]
    RGB in [0, 1] to [N, C]; ``identity(env)`` names what the logits depend on, without loading
    anything (for cache keys). Used to guide synthesis (e.g. SynOOD's energy score).

    :param register: call ``register(cls)`` once per class; ``name=``/``defaults=`` add presets.
    """


HOOK_KINDS: dict[str, str] = {
    "register_backbones": "backbone",
    "register_suites": "suite",
    "register_label_generators": "label_generator",
    "register_synthesizers": "synthesizer",
    "register_finetuners": "finetuner",
    "register_scorers": "scorer",
    "register_methods": "method",
    "register_text_generators": "text_generator",
    "register_image_describers": "image_describer",
    "register_image_generators": "image_generator",
    "register_image_classifiers": "image_classifier",
}


