"""Frozen guidance classifiers: torchvision ResNet-50 (the paper) or a backbone's zero-shot head.

Both are components of the core's ``image_classifier`` kind (``oodbench plugins`` lists them),
chosen with ``-p synood-inpaint.classifier=NAME``; a third-party plugin adds one with the
``register_image_classifiers`` hook (a subclass of ``oodbench.generative.ImageClassifier``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from oodbench.cache import tensor_digest
from oodbench.env import MethodEnv
from oodbench.errors import MissingDataError, OfflineError
from oodbench.generative import ImageClassifier


@dataclasses.dataclass
class ZeroShotHead(ImageClassifier):
    """Logits = s · cos(backbone(image), ID class embeddings): a classifier over the suite's ID
    classes that needs no extra weights (the offline world's stand-in for ResNet-50)."""

    name = "zero-shot"
    description = "the run's backbone as a zero-shot classifier over the suite's ID classes"
    scale: float = 100.0

    def identity(self, env: MethodEnv) -> str:
        extra = "" if self.scale == 100.0 else f"|scale={self.scale}"  # keys of the default kept
        return f"zero-shot:{tensor_digest(env.id_text_features())}{extra}"

    def bind(self, env: MethodEnv) -> None:
        self.backbone = env.backbone
        # on the backbone's device: a launcher's shard may synthesize on another GPU
        self.text = env.id_text_features().to(env.backbone.device)
        self.num_classes = int(self.text.shape[0])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.encode_images_differentiable(images.to(self.backbone.device))
        return (self.scale * feats @ self.text.T).to(images.device)


@dataclasses.dataclass
class TorchvisionResNet50(ImageClassifier):
    """torchvision ResNet-50 with its resize-232/crop-224 preprocessing, frozen."""

    name = "resnet50"
    description = "torchvision ResNet-50 IMAGENET1K_V2 (the paper's guidance classifier)"
    weights: str = "IMAGENET1K_V2"  # a torchvision ResNet50_Weights name

    def identity(self, env: MethodEnv) -> str:
        return f"torchvision:resnet50:{self.weights}"

    def check_available(self, stand_in: str = "") -> None:
        """One line, before any work, when the weights are neither cached nor downloadable."""
        from torchvision.models import ResNet50_Weights

        from oodbench.hub import host_reachable

        try:
            url = ResNet50_Weights[self.weights].url
        except KeyError:
            raise MissingDataError(f"resnet50.weights={self.weights!r} is not a torchvision "
                                   f"ResNet50_Weights name (e.g. IMAGENET1K_V2).") from None
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if cached.exists() or host_reachable(url):
            return
        hint = f", or run the offline stand-in explicitly with {stand_in}" if stand_in else ""
        raise OfflineError(f"resnet50 needs torchvision's {self.weights} weights: {cached} does "
                           f"not exist and {url} cannot be reached. Download the file on a "
                           f"connected machine into that folder{hint}.")

    def bind(self, env: MethodEnv) -> None:
        try:
            from torchvision.models import ResNet50_Weights, resnet50
        except ImportError:
            raise MissingDataError("torchvision is needed for the ResNet-50 guidance.") from None
        try:
            model = resnet50(weights=ResNet50_Weights[self.weights])
        except KeyError:
            raise MissingDataError(f"resnet50.weights={self.weights!r} is not a torchvision "
                                   f"ResNet50_Weights name (e.g. IMAGENET1K_V2).") from None
        except (OSError, RuntimeError) as exc:
            raise OfflineError(
                f"Cannot download torchvision ResNet-50 {self.weights} weights ({exc}); put the "
                f"file in $TORCH_HOME/hub/checkpoints or use -p synood-inpaint.classifier="
                f"zero-shot."
            ) from None
        self.model = model.eval().to(env.device).requires_grad_(False)
        self.num_classes = 1000
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=env.device).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=env.device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images, size=232, mode="bilinear", antialias=True,
                                            align_corners=False)
        top = (x.shape[-2] - 224) // 2
        left = (x.shape[-1] - 224) // 2
        x = x[..., top : top + 224, left : left + 224]
        return self.model((x - self.mean) / self.std)


def make_classifier(name: str, env: MethodEnv) -> ImageClassifier:
    """The registered classifier ``name``, loaded for the run (unknown name: one line)."""
    classifier = env.registry.create("image_classifier", name)
    classifier.bind(env)
    return classifier


def classifier_identity(name: str, env: MethodEnv) -> str:
    return env.registry.create("image_classifier", name).identity(env)
