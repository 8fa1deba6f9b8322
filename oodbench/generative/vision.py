"""Multimodal LLM describers: transformers image-text-to-text models and an offline ranker.

Components call the two structured requests of :class:`ImageDescriber`, not free prompts:
``context(images, subjects)`` (what the image shows besides its main subject) and
``propose(images, prompts)`` (outlier labels for an image and a prompt). The
transformers backend answers them with its chat model (the base class's defaults over
``describe``); the offline ``vocabulary`` describer
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
from oodbench.generative import AdoptsBuiltModel, HubModel, ImageDescriber, context_prompt
from oodbench.generative.parsing import parse_list_answer

if TYPE_CHECKING:
    from oodbench.env import MethodEnv

@dataclasses.dataclass
class TransformersDescriber(HubModel, AdoptsBuiltModel, ImageDescriber):
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
            model: Any = AutoModelForImageTextToText.from_pretrained(self.model)
        except OSError as exc:
            raise OfflineError(
                f"Cannot load MLLM {self.model!r}: {' '.join(str(exc).split())[:120]}. Download"
                f" it where the hub is reachable and pass -p model=/local/folder."
            ) from None
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" \
            else self.device
        if device.startswith("cuda"):
            model = model.to(device, dtype=torch.bfloat16)
        self._adopt(model, processor, device)

    def _adopt(self, model: Any, processor: Any, device: str) -> None:
        processor.tokenizer.padding_side = "left"  # generate after each prompt's last token
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

    def uses_seed(self) -> bool:
        return self.temperature > 0

    def identity(self) -> str:
        sampling = (f":t={self.temperature}:p={self.top_p}:seed={self.seed}"
                    if self.uses_seed() else "")
        return f"transformers-mllm:{self.model}:{self.max_new_tokens}{sampling}"


VOCABULARIES = ("wordnet", "corpus", "wordnet+corpus")


PHRASE_PROMPT = "This image shows: {concepts}.\n{prompt}"


@dataclasses.dataclass
class VocabularyDescriber(ImageDescriber):
    """Offline: the top concepts of a vocabulary by image-text similarity (no language model).

    The vocabulary is WordNet's familiar concrete nouns (default); ``vocabulary`` adds (or
    swaps in) the offline catalogue's concept names, the mini world's own classes. ``bind(env)``
    gives it the run's backbone and text cache. ``propose`` returns the top concepts that are
    not ID classes. With ``phrase_with`` (a registered text generator) the top concepts go to
    that LLM with the request, and its answer is returned (parsed as a list by ``propose``):
    the caption-then-LLM stand-in for a multimodal LLM.
    """

    name = "vocabulary"
    description = "Offline describer: ranks WordNet concrete nouns by the backbone's similarity."
    top_k: int = 5
    template: str = "a photo of a {}"
    vocabulary: str = "wordnet"  # wordnet | corpus | wordnet+corpus
    phrase_with: str = ""  # "" = answer with the concepts; else a text generator's name
    phrase_params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {', '.join(VOCABULARIES)}, got "
                             f"{self.vocabulary!r}")

    def bind(self, env: MethodEnv) -> None:
        self._env = env
        if self.phrase_with:  # the LLM answers from the run's seed, as the MLLM would
            self._llm = env.registry.create("text_generator", self.phrase_with,
                                            {"seed": self.seed, **self.phrase_params})

    def uses_seed(self) -> bool:
        return hasattr(self, "_llm") and self._llm.uses_seed()

    def _words(self) -> list[str]:
        from oodbench.generative.nouns import concrete_nouns

        words = [w for w, _ in concrete_nouns()] if "wordnet" in self.vocabulary else []
        if "corpus" in self.vocabulary:
            from oodbench.data.offline import catalog_concepts

            words = list(dict.fromkeys(words + catalog_concepts()))
        return words

    def _vocabulary(self) -> tuple[list[str], torch.Tensor]:
        if not hasattr(self, "_vocab"):
            words = self._words()
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

    def _answer(self, concepts: list[list[str]], prompts: Sequence[str]) -> list[str]:
        """The concepts as the answer, or the LLM's answer to each prompt given them."""
        if not self.phrase_with:
            return [", ".join(c) for c in concepts]
        chats = [[{"role": "user", "content": PHRASE_PROMPT.format(concepts=", ".join(c),
                                                                    prompt=p)}]
                 for c, p in zip(concepts, prompts, strict=True)]
        return self._llm.generate(chats)

    def describe(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        return self._answer(self._ranked(images, [set()] * len(images)), prompts)

    def context(self, images: Sequence[Image.Image], subjects: Sequence[str]) -> list[str]:
        excluded = [{s.lower()} for s in subjects]
        return self._answer(self._ranked(images, excluded), [context_prompt(s) for s in subjects])

    def propose(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[list[str]]:
        ids = {c.lower() for c in self._env.suite.classes}
        ranked = self._ranked(images, [ids] * len(images))
        if not self.phrase_with:
            return ranked
        return [parse_list_answer(a) for a in self._answer(ranked, prompts)]

    def identity(self) -> str:
        vocab = "wordnet-concrete"
        if "corpus" in self.vocabulary:  # the catalogue's concepts change with its version
            from oodbench.data.offline import catalog_version

            corpus = f"corpus-v{catalog_version()}"
            vocab = corpus if self.vocabulary == "corpus" else f"{vocab}+{corpus}"
        out = f"vocabulary:{vocab}:{self.top_k}:{self.template}"  # the default's, unchanged
        if self.phrase_with:
            llm = self._llm.identity() if hasattr(self, "_llm") else \
                f"{self.phrase_with}:{self.phrase_params}"
            out += f":phrase={llm}"
        return out
