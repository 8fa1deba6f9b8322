"""A fine-tuner: move image and text features to a common origin (the modality gap)."""

from __future__ import annotations

import dataclasses

import torch

from oodbench import FineTuner, MethodEnv, OODBenchError, SampleSet, TextHead


class Recentre(torch.nn.Module):
    """The image adapter: subtract the ID train images' mean feature, renormalise. A module
    (not a lambda), so that the runner moves it to the run's device with the head."""

    def __init__(self, mean: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(features - self.mean.to(features.dtype), dim=-1)


@dataclasses.dataclass
class RecentreFineTuner(FineTuner):
    """Images minus the ID train image mean, texts minus the ID text mean."""

    name = "recentre"
    description = "Subtracts each modality's ID mean feature (image: ID train split)."

    def finetune(self, env: MethodEnv, head: TextHead, samples: SampleSet | None) -> TextHead:
        if head.image_adapter is not None:
            raise OODBenchError(f"{self.name} must be the first fine-tuner of a method.")
        train = env.encode(env.id_train_images())  # encoded once, cached across runs
        image_mean = train.features.mean(dim=0)
        text_mean = head.id_features.mean(dim=0)

        def centre(texts: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(texts - text_mean, dim=-1)

        extra = head.extra_features
        return head.replace(id_features=centre(head.id_features),
                            extra_features=None if extra is None else centre(extra),
                            image_adapter=Recentre(image_mean))
