"""Reading a local open_clip weights file: safetensors, a state dict or checkpoint, or OpenAI's
TorchScript archive; fitted to the model it is loaded into, with one line for any mismatch."""

from __future__ import annotations

import logging
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

from oodbench.errors import OODBenchError, ParameterError

# what OpenAI's TorchScript CLIP carries besides parameters (open_clip's load_state_dict drops
# them too)
_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

class _DropRandomInitWarning(logging.Filter):
    """open_clip logs "No pretrained weights loaded ... initialized randomly" when a model is
    built without a tag; with a weights file that is loaded next, the line is wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def no_random_init_warning() -> Iterator[None]:
    root, drop = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (what OpenAI's ``clip.load`` caches, e.g.
    ViT-B-16.pt): a zip with ``constants.pkl``, which ``torch.load(weights_only=True)``
    refuses."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """(state dict, whether the file was TorchScript) from a weights file, on the CPU.

    TorchScript: ``torch.jit.load(map_location="cpu").state_dict()`` without OpenAI's
    input_resolution / context_length / vocab_size entries, as open_clip's openai.py and
    factory.load_state_dict do; safetensors; otherwise ``torch.load(weights_only=True)``, a
    ``{"state_dict": ...}`` training checkpoint unwrapped. ``module.`` (DistributedDataParallel)
    prefixes are removed.
    """
    jit = is_torchscript(path)
    if jit:
        try:
            with warnings.catch_warnings():  # torch 2.9+: "torch.jit.load is deprecated"
                warnings.simplefilter("ignore", FutureWarning)
                state = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except RuntimeError as exc:
            raise OODBenchError(f"Cannot read TorchScript weights {path}: "
                                f"{' '.join(str(exc).split())[:160]}") from None
        for key in _JIT_EXTRA_KEYS:
            state.pop(key, None)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise OODBenchError(f"Cannot read safetensors weights {path}: "
                                f"{' '.join(str(exc).split())[:160]}") from None
    else:
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError (not a zip / pickle)...
            raise OODBenchError(
                f"Cannot read weights {path} as a PyTorch checkpoint "
                f"({' '.join(str(exc).split())[:120]}); --weights takes a state dict "
                f"(.bin/.pt/.pth/.safetensors), a training checkpoint with 'state_dict', or "
                f"OpenAI's TorchScript .pt.") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                                   for v in loaded.values()):
            keys = ", ".join(map(str, list(loaded)[:5])) if isinstance(loaded, dict) else ""
            raise OODBenchError(
                f"Weights {path} hold no state dict (a {type(loaded).__name__}"
                f"{f' with keys {keys}' if keys else ''}); --weights takes a state dict or a "
                f"training checkpoint with 'state_dict'.")
        state = loaded
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}, jit


def fit_to_model(model: Any, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The conversions open_clip's ``factory.load_checkpoint`` applies before loading."""
    try:  # open_clip >= 2.24 for some of these; each step is skipped where it is missing
        from open_clip.convert import convert_state_dict

        state = convert_state_dict(model, state)
    except ImportError:
        pass
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed

    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        param = getattr(model, key, None)
        if key in state and param is not None and param.ndim != state[key].ndim:
            state[key] = state[key].reshape(param.shape)
    if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None \
            and "logit_scale" in state:
        state["logit_bias"] = torch.zeros_like(state["logit_scale"])
    position_ids = "text.transformer.embeddings.position_ids"
    if position_ids in state and not hasattr(model, position_ids):
        del state[position_ids]
    resize_pos_embed(state, model)
    try:
        from open_clip.model import resize_text_pos_embed

        resize_text_pos_embed(state, model)
    except ImportError:
        pass
    return state


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(map(str, t.shape)) + "]"


def state_dict_problems(expected: dict[str, torch.Tensor],
                        found: dict[str, torch.Tensor]) -> str:
    """What keeps ``found`` from loading into a model with state dict ``expected`` ("": fits):
    the first shape mismatch (key, expected vs found shape) and a few missing / unexpected
    keys, in one line."""
    parts = []
    mismatched = [k for k, v in found.items() if k in expected and expected[k].shape != v.shape]
    if mismatched:
        key = mismatched[0]
        more = f" (+{len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        parts.append(f"{key} has shape {_shape(found[key])}, the model expects "
                     f"{_shape(expected[key])}{more}")
    for what, keys in (("missing", [k for k in expected if k not in found]),
                       ("unexpected", [k for k in found if k not in expected])):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {what} key(s): {', '.join(keys[:3])}{more}")
    return "; ".join(parts)


def load_weights_file(model: Any, path: Path, model_name: str) -> bool:
    """Load ``path`` into the open_clip ``model`` (strict); True if it was TorchScript.

    A file that does not fit the architecture is a one-line error naming the first
    mismatched key with both shapes, and a few missing / unexpected keys.
    """
    if path.suffix in (".npz", ".npy"):  # big_vision (SigLIP) numpy weights: open_clip's path
        import open_clip

        try:
            open_clip.load_checkpoint(model, str(path))
        except Exception as exc:
            raise OODBenchError(f"Cannot load big_vision weights {path} into open_clip model "
                                f"{model_name!r}: {' '.join(str(exc).split())[:160]}") from None
        return False
    state, jit = read_state_dict(path)
    if not state:
        raise OODBenchError(f"Weights {path} hold an empty state dict.")
    # a conversion that needs keys the file lacks fails: the check below says why
    with suppress(Exception):
        state = fit_to_model(model, state)
    problems = state_dict_problems(model.state_dict(), state)
    if problems:  # a wrong --weights value: a usage error (exit 2)
        raise ParameterError(
            f"Weights {path} do not fit open_clip model {model_name!r}: {problems}. Pass the "
            f"architecture they were trained as (--backbone-param model=NAME, see "
            f"open_clip.list_models()).")
    model.load_state_dict(state, strict=True)
    return jit
