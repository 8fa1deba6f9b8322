"""Registers the text LLM and multimodal LLM backends."""

from __future__ import annotations

from oodbench import hookimpl
from oodbench.generative.text import OpenAIEndpointGenerator, TransformersTextGenerator, qwen_path
from oodbench.generative.vision import TransformersDescriber, VocabularyDescriber
from oodbench.hookspecs import Register


@hookimpl
def register_text_generators(register: Register) -> None:
    register(TransformersTextGenerator)
    register(OpenAIEndpointGenerator)
    register(TransformersTextGenerator, name="qwen2.5-coder-1.5b",
             defaults={"model": "Qwen/Qwen2.5-Coder-1.5B-Instruct", "gguf_file": str(qwen_path()),
                       "prefill": "- ", "repetition_penalty": 1.1, "cpu_quantize": "int8"},
             description="Offline real LLM: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF "
                         "(oodbench data fetch-llm); weak at near-OOD prompts.")


@hookimpl
def register_image_describers(register: Register) -> None:
    register(TransformersDescriber)
    register(TransformersDescriber, name="qwen2-vl-7b",
             defaults={"model": "Qwen/Qwen2-VL-7B-Instruct"},
             description="Qwen2-VL-7B-Instruct via transformers (needs the hub or a local copy).")
    register(VocabularyDescriber)
