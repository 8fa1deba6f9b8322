"""SynOOD's synthesizer: MLLM context prompts + energy-guided in-painting of ID train images.

Per selected ID image: the describer lists what the image shows besides its class; the prompt
"A photo only remain {answer[:73]}." (the paper's template, kept verbatim as the default) drives
a whole-image in-painting at strength 0.6 whose start noise is refined K times by the gradient
of the guidance loss. Each image is written with a manifest entry, atomically, as soon as it
is made: an interrupted run resumes where it stopped. ``shard_index``/``shard_count`` (default:
the RANK / WORLD_SIZE that ``accelerate launch`` or torchrun set) give each process a disjoint,
deterministic slice.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from oodbench.cache import atomic_write, atomic_write_text, content_key
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError
from oodbench.interfaces import Synthesizer
from oodbench.types import LabelBank, SampleSet
from oodbench_synood.classifiers import make_classifier
from oodbench_synood.guidance import effective_margin, guided_inpaint
from oodbench_synood.select import select_images


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclasses.dataclass
class SynOODSynthesizer(Synthesizer):
    name = "synood-inpaint"
    description = "SynOOD: MLLM context prompt + energy-guided iterative in-painting."
    per_class: int = 50  # N images per ID class (the paper: 50 on ImageNet)
    selector: str = "complexity"  # complexity (file bytes per pixel) | random | first
    describer: str = "vocabulary"  # users: transformers-mllm (LLaVA-1.5)
    prompt_template: str = "A photo only remain {}."
    answer_chars: int = 73
    inpainter: str = "mini-diffusion"  # users: diffusers-inpaint (SD-2-inpainting)
    classifier: str = "zero-shot"  # users: resnet50 (torchvision IMAGENET1K_V2)
    iterations: int = 3  # K
    margin: float = -5.0  # m, for a 1,000-class classifier (see guidance.effective_margin)
    relative_margin: bool = True
    step: float = 10.0  # r; 0 = no energy gradient (ablation)
    strength: float = 0.6
    steps: int = 20
    guidance: float = 8.0
    batch_size: int = 2
    seed: int = 0
    shard_index: int = -1  # -1 = $RANK (0 without it)
    shard_count: int = 0  # 0 = $WORLD_SIZE (1 without it)

    def synthesize(self, env: MethodEnv, labels: LabelBank | None) -> SampleSet:
        train = env.id_train_images()
        chosen = select_images(train, self.per_class, self.selector, env.rng("synood", self.seed))
        inpainter = env.registry.create("image_generator", self.inpainter)
        describer = env.registry.create("image_describer", self.describer)
        describer.bind(env)
        what = {k: v for k, v in self.params().items() if not k.startswith("shard_")}
        key = env.key("synood-images", what, inpainter.identity(),
                      describer.identity(), [train.keys[i] for i in chosen])
        folder = env.cache.root / "images" / "synood" / key[:24]
        count = self.shard_count or _env_int("WORLD_SIZE", 1)
        index = self.shard_index if self.shard_index >= 0 else _env_int("RANK", 0)
        mine = chosen[index::count] if count > 1 else chosen
        todo = [i for i in mine if not env.reuse("synthesize")
                or not self._out(folder, i).with_suffix(".json").exists()]
        if todo:
            self._make(env, train, todo, folder, inpainter, describer)
        missing = [i for i in chosen if not self._out(folder, i).with_suffix(".json").exists()]
        if missing:
            raise OODBenchError(f"synood-inpaint: shard {index} of {count} is done; "
                                f"{len(missing)} images of other shards are missing. Run the "
                                f"remaining shards, then run once more with a single process.")
        manifest = [json.loads(self._out(folder, i).with_suffix(".json").read_text())
                    for i in chosen]
        env.notes["synood_images"] = {"count": len(chosen), "folder": str(folder)}
        return SampleSet(paths=[self._out(folder, i) for i in chosen], manifest=manifest,
                         meta={"folder": str(folder), "key": key})

    @staticmethod
    def _out(folder: Path, index: int) -> Path:
        return folder / f"{index:07d}.png"

    def _make(self, env: MethodEnv, train: Any, todo: list[int], folder: Path, inpainter: Any,
              describer: Any) -> None:
        classifier = make_classifier(self.classifier, env)
        margin = effective_margin(self.margin, classifier.num_classes, self.relative_margin)
        update = env.progress("synthesize (synood)", len(todo)) if env.progress else None
        size = inpainter.resolution
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            sources = [train.open(i) for i in batch]
            classes = [env.suite.classes[int(train.labels[i])] for i in batch]
            answers = describer.context(sources, classes)
            prompts = [self.prompt_template.format(a[: self.answer_chars]) for a in answers]
            pixels = torch.stack([_to_tensor(im, size) for im in sources]).to(env.device)
            noise = torch.cat([inpainter.noise(1, int(content_key(self.seed, train.keys[i])[:8],
                                                              16)) for i in batch])
            made, scores = guided_inpaint(inpainter, classifier, pixels, prompts, noise,
                                          self.iterations, margin, self.step,
                                          self.strength, self.steps, self.guidance)
            for j, i in enumerate(batch):
                out = self._out(folder, i)
                image = _to_image(made[j])
                atomic_write(out, lambda tmp, im=image: im.save(tmp, format="PNG"))
                entry = {"path": str(out), "source": train.keys[i], "label": int(train.labels[i]),
                         "class": classes[j], "answer": answers[j], "prompt": prompts[j],
                         "guidance_scores": scores, "seed": self.seed}
                atomic_write_text(out.with_suffix(".json"), json.dumps(entry))
            if update:
                update(min(start + len(batch), len(todo)), len(todo))


def _to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _to_image(pixels: torch.Tensor) -> Image.Image:
    array = (pixels.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8))
