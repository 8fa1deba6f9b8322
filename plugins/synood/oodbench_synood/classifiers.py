"""Frozen guidance classifiers: torchvision ResNet-50 (the paper) or a backbone's zero-shot head."""

from __future__ import annotations

import torch

from oodbench.cache import tensor_digest
from oodbench.env import MethodEnv
from oodbench.errors import MissingDataError, OfflineError


class ZeroShotHead:
    """Logits = s · cos(backbone(image), ID class embeddings): a classifier over the suite's ID
    classes that needs no extra weights (the offline world's stand-in for ResNet-50)."""

    def __init__(self, env: MethodEnv, scale: float = 100.0) -> None:
        self.backbone = env.backbone
        self.text = env.id_text_features().to(env.device)
        self.scale = scale
        self.num_classes = int(self.text.shape[0])

    @staticmethod
    def identity(env: MethodEnv) -> str:
        """What the guidance depends on, for the images' cache key (cheap: no image encoded)."""
        return f"zero-shot:{tensor_digest(env.id_text_features())}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.encode_images_differentiable(images.to(self.backbone.device))
        return self.scale * feats @ self.text.T


class TorchvisionResNet50:
    """torchvision ResNet-50 IMAGENET1K_V2 with its resize-232/crop-224 preprocessing, frozen."""

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

    @staticmethod
    def identity(env: MethodEnv) -> str:
        return "torchvision:resnet50:IMAGENET1K_V2"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images, size=232, mode="bilinear", antialias=True,
                                            align_corners=False)
        top = (x.shape[-2] - 224) // 2
        left = (x.shape[-1] - 224) // 2
        x = x[..., top : top + 224, left : left + 224]
        return self.model((x - self.mean) / self.std)


CLASSIFIERS = {"zero-shot": ZeroShotHead, "resnet50": TorchvisionResNet50}


def classifier_identity(name: str, env: MethodEnv) -> str:
    return CLASSIFIERS[name].identity(env) if name in CLASSIFIERS else name


def make_classifier(name: str, env: MethodEnv) -> ZeroShotHead | TorchvisionResNet50:
    if name == "zero-shot":
        return ZeroShotHead(env)
    if name == "resnet50":
        return TorchvisionResNet50(env)
    raise MissingDataError(f"Unknown guidance classifier {name!r}; use zero-shot or resnet50.")
