"""Multimodal LLM describers: transformers image-text-to-text models and an offline ranker.

Components call the two structured requests, not free prompts:
``context(images, subjects)`` (SynOOD: what the image shows besides its main subject) and
``propose(images, prompts)`` (MM-OOD: outlier labels for an image and a prompt). The
transformers backend answers them with its chat model; the offline ``vocabulary`` describer
ranks a vocabulary by the run backbone's image-text similarity and answers with the top
concepts, deterministically (it is a retrieval model, and records name it so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from oodbench.cache import content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.generative import ImageDescriber
from oodbench.generative.prompts import parse_list_answer

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

CONTEXT_PROMPT = ("List the things this image shows other than the {subject}, as a short "
                  "comma-separated list of nouns.")


def context_prompt(subject: str) -> str:
    return CONTEXT_PROMPT.format(subject=subject)


@dataclasses.dataclass
class TransformersDescriber(ImageDescriber):
    """LLaVA-1.5, Qwen2-VL or any transformers image-text-to-text chat model."""

    name = "transformers-mllm"
    description = "A transformers image-text-to-text chat model (LLaVA-1.5, Qwen2-VL, ...)."
    model: str = "llava-hf/llava-1.5-7b-hf"
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy; > 0 samples, seeded by `seed` (the run's seed)
    top_p: float = 1.0
    batch_size: int = 4
    device: str = "auto"

    def _load(self) -> None:
        if hasattr(self, "_model"):
            return
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError:
            raise MissingDataError("The MLLM backend needs the [mllm] extra: "
                                   "pip install 'oodbench[mllm]'") from None
        try:
            processor = AutoProcessor.from_pretrained(self.model)
            model = AutoModelForImageTextToText.from_pretrained(self.model)
        except OSError as exc:
            raise OfflineError(
                f"Cannot load MLLM {self.model!r}: {' '.join(str(exc).split())[:120]}. Download"
                f" it where the hub is reachable and pass -p model=/local/folder."
            ) from None
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" \
            else self.device
        if device.startswith("cuda"):
            model = model.to(device, dtype=torch.bfloat16)
        processor.tokenizer.padding_side = "left"
        self._model, self._processor, self._device = model.eval(), processor, device

    def describe(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        if len(images) != len(prompts):
            raise OODBenchError("describe() needs one prompt per image.")
        self._load()
        answers: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch_images = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            texts = [self._processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"},
                                              {"type": "text", "text": prompt}]}],
                add_generation_prompt=True, tokenize=False)
                for prompt in prompts[start : start + self.batch_size]]
            inputs = self._processor(images=batch_images, text=texts, return_tensors="pt",
                                     padding=True).to(self._device)
            sampling: dict[str, Any] = {"do_sample": False}
            if self.temperature > 0:
                sampling = {"do_sample": True, "temperature": self.temperature,
                            "top_p": self.top_p}
            devices = [torch.device(self._device)] if self._device.startswith("cuda") else []
            # seeded from the run seed and the prompts, leaving the caller's RNG state alone
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(int(content_key(self.seed, texts)[:8], 16))
                out = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                           **sampling)
            new = out[:, inputs["input_ids"].shape[1]:]
            answers += self._processor.batch_decode(new, skip_special_tokens=True)
        return answers

    def context(self, images: Sequence[Image.Image], subjects: Sequence[str]) -> list[str]:
        return self.describe(images, [context_prompt(s) for s in subjects])

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        return [parse_list_answer(a) for a in self.describe(images, prompts)]

    def uses_seed(self) -> bool:
        return self.temperature > 0

    def identity(self) -> str:
        sampling = (f":t={self.temperature}:p={self.top_p}:seed={self.seed}"
                    if self.uses_seed() else "")
        return f"transformers-mllm:{self.model}:{self.max_new_tokens}{sampling}"


@dataclasses.dataclass
class VocabularyDescriber(ImageDescriber):
    """Offline: the top concepts of a vocabulary by image-text similarity (no language model).

    The vocabulary is WordNet's familiar concrete nouns; ``bind(env)`` gives it the run's
    backbone and text cache. ``propose`` returns the top concepts that are not ID classes.
    """

    name = "vocabulary"
    description = "Offline describer: ranks WordNet concrete nouns by the backbone's similarity."
    top_k: int = 5
    template: str = "a photo of a {}"

    def bind(self, env: MethodEnv) -> None:
        self._env = env

    def _vocabulary(self) -> tuple[list[str], torch.Tensor]:
        if not hasattr(self, "_vocab"):
            from oodbench.generative.envision import KnowledgeEnvisioner

            words = [w for w, _ in KnowledgeEnvisioner()._pool()]
            feats = self._env.text_features([self.template.format(w) for w in words])
            self._vocab = (words, feats)
        return self._vocab

    def _ranked(self, images: Sequence[Image.Image],
                exclude: Sequence[set[str]]) -> list[list[str]]:
        if not hasattr(self, "_env"):
            raise OODBenchError("The vocabulary describer needs bind(env) before use.")
        backbone = self._env.backbone
        pixels = torch.stack([backbone.preprocess()(im.convert("RGB")) for im in images])
        with torch.no_grad():
            feats = backbone.encode_images(pixels.to(backbone.device)).float().cpu()
        words, vocab = self._vocabulary()
        order = torch.argsort(feats @ vocab.T, dim=1, descending=True)
        out = []
        for row, banned in zip(order.tolist(), exclude, strict=True):
            chosen = [words[i] for i in row
                      if not any(b in words[i] or words[i] in b for b in banned)]
            out.append(chosen[: self.top_k])
        return out

    def describe(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        return [", ".join(c) for c in self._ranked(images, [set()] * len(images))]

    def context(self, images: Sequence[Image.Image], subjects: Sequence[str]) -> list[str]:
        excluded = [{s.lower()} for s in subjects]
        return [", ".join(c) for c in self._ranked(images, excluded)]

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        ids = {c.lower() for c in self._env.suite.classes}
        return self._ranked(images, [ids] * len(images))

    def identity(self) -> str:
        return f"vocabulary:wordnet-concrete:{self.top_k}:{self.template}"


