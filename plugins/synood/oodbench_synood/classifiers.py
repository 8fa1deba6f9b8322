"""Frozen guidance classifiers: torchvision ResNet-50 (the paper) or a backbone's zero-shot head.

Classifiers are registered components, chosen by name with ``-p synood-inpaint.classifier=NAME``.
The core has no hook for classifiers (``oodbench.hookspecs`` is method-agnostic), so this plugin
owns one of the same form, under its own pluggy project ``oodbench_synood``: a third-party
package adds a classifier with a hook implementation exposed through the entry-point group
``oodbench_synood``::

    from oodbench_synood.classifiers import GuidanceClassifier, hookimpl

    class MyClassifier(GuidanceClassifier):
        name = "my-classifier"
        ...

    @hookimpl
    def register_guidance_classifiers(register):
        register(MyClassifier)

    # pyproject.toml: [project.entry-points.oodbench_synood] my = "my_pkg.synood_plugin"
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import pluggy
import torch

from oodbench.cache import tensor_digest
from oodbench.env import MethodEnv
from oodbench.errors import MissingDataError, OfflineError, PluginError, UnknownNameError

PROJECT = "oodbench_synood"  # pluggy project name and entry-point group
hookimpl = pluggy.HookimplMarker(PROJECT)
_hookspec = pluggy.HookspecMarker(PROJECT)


class GuidanceClassifier(ABC):
    """A frozen, differentiable classifier: [N, 3, H, W] RGB in [0, 1] -> [N, C] logits.

    Built once per synthesis from the run (``env.device``, the backbone, the suite)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    num_classes: int

    @abstractmethod
    def __init__(self, env: MethodEnv) -> None: ...

    @classmethod
    @abstractmethod
    def identity(cls, env: MethodEnv) -> str:
        """What the guidance depends on, for the images' cache key (cheap: loads nothing)."""

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class ZeroShotHead(GuidanceClassifier):
    """Logits = s · cos(backbone(image), ID class embeddings): a classifier over the suite's ID
    classes that needs no extra weights (the offline world's stand-in for ResNet-50)."""

    name = "zero-shot"
    description = "the run's backbone as a zero-shot classifier over the suite's ID classes"

    def __init__(self, env: MethodEnv, scale: float = 100.0) -> None:
        self.backbone = env.backbone
        # on the backbone's device: a launcher's shard may synthesize on another GPU
        self.text = env.id_text_features().to(env.backbone.device)
        self.scale = scale
        self.num_classes = int(self.text.shape[0])

    @classmethod
    def identity(cls, env: MethodEnv) -> str:
        return f"zero-shot:{tensor_digest(env.id_text_features())}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.encode_images_differentiable(images.to(self.backbone.device))
        return (self.scale * feats @ self.text.T).to(images.device)


class TorchvisionResNet50(GuidanceClassifier):
    """torchvision ResNet-50 IMAGENET1K_V2 with its resize-232/crop-224 preprocessing, frozen."""

    name = "resnet50"
    description = "torchvision ResNet-50 IMAGENET1K_V2 (the paper's guidance classifier)"

    def __init__(self, env: MethodEnv) -> None:
        try:
            from torchvision.models import ResNet50_Weights, resnet50
        except ImportError:
            raise MissingDataError("torchvision is needed for the ResNet-50 guidance.") from None
        try:
            model = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)
        except (OSError, RuntimeError) as exc:
            raise OfflineError(
                f"Cannot download torchvision ResNet-50 IMAGENET1K_V2 weights ({exc}); put the "
                f"file in $TORCH_HOME/hub/checkpoints or use -p classifier=zero-shot."
            ) from None
        self.model = model.eval().to(env.device).requires_grad_(False)
        self.num_classes = 1000
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=env.device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=env.device).view(1, 3, 1, 1)

    @classmethod
    def identity(cls, env: MethodEnv) -> str:
        return "torchvision:resnet50:IMAGENET1K_V2"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images, size=232, mode="bilinear", antialias=True,
                                            align_corners=False)
        top = (x.shape[-2] - 224) // 2
        left = (x.shape[-1] - 224) // 2
        x = x[..., top : top + 224, left : left + 224]
        return self.model((x - self.mean) / self.std)


class _Specs:
    @_hookspec
    def register_guidance_classifiers(self, register: Callable[[type], None]) -> None:
        """Register guidance classifiers: ``register(cls)`` with a subclass of
        :class:`GuidanceClassifier` whose ``name`` is set."""


class _Builtins:
    @hookimpl
    def register_guidance_classifiers(self, register: Callable[[type], None]) -> None:
        register(ZeroShotHead)
        register(TorchvisionResNet50)


def load_classifiers(*plugins: Any, entry_points: bool = True
                     ) -> dict[str, type[GuidanceClassifier]]:
    """name -> class, from the built-ins, ``plugins`` and the ``oodbench_synood`` entry points.
    A third-party plugin that fails to import is reported on stderr and skipped, as the core
    does, so it cannot break runs that do not use it."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(_Specs)
    pm.register(_Builtins(), name="builtin")
    for plugin in plugins:
        pm.register(plugin)
    for ep in md.entry_points(group=PROJECT) if entry_points else ():
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # any import-time failure of a third-party plugin
            print(f"oodbench-synood: classifier plugin {ep.name!r} skipped: {exc}",
                  file=sys.stderr)
    found: dict[str, type[GuidanceClassifier]] = {}

    def register(cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, GuidanceClassifier) and cls.name):
            raise PluginError(f"register_guidance_classifiers expects a GuidanceClassifier "
                              f"subclass with a name, got {cls!r}")
        if cls.name in found:
            raise PluginError(f"guidance classifier {cls.name!r} is registered twice")
        found[cls.name] = cls

    pm.hook.register_guidance_classifiers(register=register)
    return found


@functools.cache
def classifiers() -> dict[str, type[GuidanceClassifier]]:
    """The process's guidance classifiers (loaded once)."""
    return load_classifiers()


def classifier_class(name: str) -> type[GuidanceClassifier]:
    known = classifiers()
    if name not in known:
        raise UnknownNameError("guidance classifier", name, known)
    return known[name]


def classifier_identity(name: str, env: MethodEnv) -> str:
    return classifier_class(name).identity(env)


def make_classifier(name: str, env: MethodEnv) -> GuidanceClassifier:
    return classifier_class(name)(env)
