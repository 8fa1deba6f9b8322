"""--weights for open_clip backbones: file formats (OpenAI TorchScript included), the pretrained
tag's configuration applied to a file, clear errors, the offline probe, and the weights'
identity in the fingerprint, the record, its file name and the leaderboard (issue 19)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from oodbench import hub
from oodbench.backbones import base
from oodbench.backbones.openclip import OpenCLIPBackbone
from oodbench.errors import OfflineError, OODBenchError
from oodbench.results import record_filename
from oodbench.runner import RunRequest, run
from oodbench.types import RunContext

CPU = torch.device("cpu")
TEXTS = ["a photo of a cat.", "a dog"]
JIT_EXTRAS = {"input_resolution": torch.tensor(32), "context_length": torch.tensor(77),
              "vocab_size": torch.tensor(49408)}


@pytest.fixture
def tiny_model(tiny_clip_config):
    import open_clip

    torch.manual_seed(0)
    return open_clip.create_model(tiny_clip_config).eval()


def _pixels() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 32, 32)


def _embeddings(backbone: OpenCLIPBackbone) -> tuple[torch.Tensor, torch.Tensor]:
    return backbone.encode_images(_pixels()), backbone.encode_texts(TEXTS)


def _reference(model) -> tuple[torch.Tensor, torch.Tensor]:
    import open_clip

    with torch.no_grad():
        images = model.encode_image(_pixels())
        texts = model.encode_text(open_clip.get_tokenizer("oodbench-tiny")(TEXTS))
    return (torch.nn.functional.normalize(images.float(), dim=-1),
            torch.nn.functional.normalize(texts.float(), dim=-1))


def _as_buffers(state: dict[str, torch.Tensor], extra: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A module tree whose state dict is ``state`` + ``extra``, to script and save."""
    root = torch.nn.Module()
    for key, value in {**state, **extra}.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_buffer(leaf, value.clone())
    return root


def save_openai_jit(model, path: Path) -> Path:
    """What OpenAI's ``clip.load`` caches (e.g. ViT-B-16.pt): a TorchScript archive of the
    model in float16, with input_resolution / context_length / vocab_size in its state dict."""
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch.jit.save(torch.jit.script(_as_buffers(state, JIT_EXTRAS)), str(path))
    return path


def _tiny(weights: Path | str = "", **params) -> OpenCLIPBackbone:
    return OpenCLIPBackbone(model="oodbench-tiny", pretrained=params.pop("pretrained", ""),
                            weights=str(weights), **params)


# -- 1. file formats ---------------------------------------------------------------------------
def test_openai_torchscript_file_loads_as_the_plain_model(tiny_model, tmp_path):
    path = save_openai_jit(tiny_model, tmp_path / "ViT-B-16.pt")
    with pytest.raises(RuntimeError, match="TorchScript"):  # why it failed before
        torch.load(str(path), weights_only=True)
    backbone = _tiny(path)
    backbone.load(CPU)
    assert not isinstance(backbone._model, torch.jit.ScriptModule)
    # the file holds float16 weights: the reference is the same model with them
    tiny_model.load_state_dict({k: v.half().float() for k, v in tiny_model.state_dict().items()})
    images, texts = _embeddings(backbone)
    ref_images, ref_texts = _reference(tiny_model)
    assert torch.allclose(images, ref_images, atol=1e-6)
    assert torch.allclose(texts, ref_texts, atol=1e-6)


@pytest.mark.parametrize("form", ["bin", "safetensors", "training-checkpoint"])
def test_state_dict_files_load(tiny_model, tmp_path, form):
    state = tiny_model.state_dict()
    if form == "bin":
        path = tmp_path / "open_clip_pytorch_model.bin"
        torch.save(state, path)
    elif form == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "open_clip_model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # what open_clip's training script writes under DistributedDataParallel
        path = tmp_path / "epoch_3.pt"
        torch.save({"epoch": 3, "name": "run", "optimizer": {"state": {}},
                    "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    backbone = _tiny(path)
    backbone.load(CPU)
    images, texts = _embeddings(backbone)
    ref_images, ref_texts = _reference(tiny_model)
    assert torch.equal(images, ref_images) and torch.equal(texts, ref_texts)


# -- 2. the pretrained tag's configuration with a file ----------------------------------------
def test_real_tags_configuration_is_read_without_building_a_model():
    siglip = OpenCLIPBackbone(model="ViT-B-16-SigLIP", pretrained="webli", weights="x.bin")
    assert siglip.tag_config() == {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                                   "interpolation": "bicubic", "resize_mode": "squash"}
    openai = OpenCLIPBackbone(model="ViT-B-16", pretrained="openai", weights="x.bin")
    assert openai.tag_config()["quick_gelu"] is True
    assert OpenCLIPBackbone(model="ViT-B-16", pretrained="", weights="x.bin").tag_config() == {}
    with pytest.raises(OODBenchError, match="no pretrained tag 'webli' for 'ViT-B-16'") as info:
        OpenCLIPBackbone(model="ViT-B-16", pretrained="webli", weights="x.bin").tag_config()
    assert "openai" in str(info.value) and "pretrained=" in str(info.value)


@pytest.fixture
def fake_tag(monkeypatch, tiny_clip_config):
    """A pretrained tag of the tiny model, configured as SigLIP-like tags are (and QuickGELU)."""
    from open_clip import pretrained

    cfg = {"url": "", "hf_hub": "nobody/tiny/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
           "interpolation": "bilinear", "resize_mode": "squash", "quick_gelu": True}
    monkeypatch.setitem(pretrained._PRETRAINED, tiny_clip_config, {"faketag": cfg})
    return "faketag"


def test_tag_configuration_is_applied_to_a_weights_file(tiny_model, tmp_path, fake_tag):
    path = tmp_path / "tiny.bin"
    torch.save(tiny_model.state_dict(), path)
    plain, tagged = _tiny(path), _tiny(path, pretrained=fake_tag)
    plain.load(CPU)
    tagged.load(CPU)
    spec = tagged.tensor_preprocess()
    assert spec is not None
    assert (spec.mean, spec.std, spec.resize_mode) == ((0.5,) * 3, (0.5,) * 3, "squash")
    assert tagged.interpolation_used() == "bilinear"
    act = type(tagged._model.transformer.resblocks[0].mlp.gelu).__name__
    assert act == "QuickGELU"  # the tag was trained with it; the model config says GELU
    assert type(plain._model.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"
    assert plain.tensor_preprocess().mean != (0.5,) * 3
    pixels = torch.stack([tagged.preprocess()(Image.new("RGB", (50, 40), "red"))])
    assert torch.allclose(pixels[0, 0], torch.full((32, 32), 1.0))  # (1 - 0.5) / 0.5
    assert plain.fingerprint() != tagged.fingerprint()


def test_openai_jit_without_quick_gelu_warns_once(tiny_model, tmp_path, caplog):
    path = save_openai_jit(tiny_model, tmp_path / "ViT-B-16.pt")
    with caplog.at_level(logging.WARNING, logger="oodbench.backbones.openclip"):
        _tiny(path).load(CPU)
    lines = [r.getMessage() for r in caplog.records if "QuickGELU" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "--backbone-param force_quick_gelu=true" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oodbench.backbones.openclip"):
        forced = _tiny(path, force_quick_gelu=True)
        forced.load(CPU)
    assert not [r for r in caplog.records if "QuickGELU" in r.getMessage()]
    assert type(forced._model.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert ":force_quick_gelu:" in forced.fingerprint()


# -- 3. errors that say what is wrong ------------------------------------------------------------
def test_wrong_architecture_names_key_and_shapes(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["text_projection"] = torch.zeros(32, 24)
    path = tmp_path / "wide.bin"
    torch.save(state, path)
    with pytest.raises(OODBenchError) as info:
        _tiny(path).load(CPU)
    text = str(info.value)
    assert "text_projection has shape [32, 24], the model expects [32, 16]" in text
    assert "hub" not in text and "\n" not in text and "model=NAME" in text


def test_missing_and_unexpected_keys_are_named(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    del state["ln_final.weight"]
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "odd.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(OODBenchError) as info:
        _tiny(path).load(CPU)
    text = str(info.value)
    assert "1 missing key(s): ln_final.weight" in text
    assert "1 unexpected key(s): extra.weight" in text and "hub" not in text


def test_a_folder_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "clip-vit-base-patch16"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(OODBenchError) as info:
        _tiny(folder).load(CPU)
    text = str(info.value)
    assert "is a folder" in text and "hf-clip" in text and "hub" not in text
    (folder / "open_clip_pytorch_model.bin").write_bytes(b"")
    with pytest.raises(OODBenchError, match=r"open_clip_pytorch_model\.bin: pass one of those"):
        _tiny(folder).load(CPU)


# -- 4. no network: the quick probe, and honest hints --------------------------------------------
@pytest.fixture
def undecided_offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE unset (the probe may set it: restored after), an empty HF cache."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    try:
        import datasets.config

        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    except ImportError:
        pass
    monkeypatch.setattr(hub, "_OFFLINE_SET_HERE", False, raising=False)
    yield
    os.environ.pop("HF_HUB_OFFLINE", None)


def test_unreachable_hub_fails_at_once_without_claiming_the_user_set_offline(
        undecided_offline, monkeypatch, tiny_clip_config):
    probes = []
    monkeypatch.setattr(hub, "hub_reachable", lambda: probes.append(1) or False)
    with pytest.raises(OfflineError) as info:
        OpenCLIPBackbone(model="ViT-B-32-quickgelu", pretrained="openai").load(CPU)
    text = str(info.value)
    assert probes and os.environ.get("HF_HUB_OFFLINE") == "1"  # probed, then offline mode
    assert "(the Hugging Face hub is unreachable)" in text
    assert "HF_HUB_OFFLINE is set" not in text and "\n" not in text


def test_user_set_offline_is_named_as_such(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_OFFLINE_SET_HERE", False)
    assert hub.offline_hint() == " (HF_HUB_OFFLINE is set)"
    monkeypatch.setattr(hub, "_OFFLINE_SET_HERE", True)  # the probe set it, not the user
    assert hub.offline_hint() == " (the Hugging Face hub is unreachable)"
    assert not hub.offline_set_by_user()


def test_probe_goes_to_the_proxy_when_one_is_configured(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    url = "https://huggingface.co"
    assert hub.probe_target(url) == url
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert hub.probe_target(url) == "http://proxy.internal:3128"
    probed = []
    monkeypatch.setattr(hub, "host_reachable", lambda target: probed.append(target) or True)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub.hub_reachable() and probed == ["http://proxy.internal:3128"]
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert hub.probe_target(url) == url


# -- 6. the weights' identity --------------------------------------------------------------------
def test_weights_file_is_hashed_once_per_path_size_and_mtime(tmp_path, monkeypatch):
    import oodbench.download

    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 1000)
    calls = []
    real = oodbench.download.file_sha256
    monkeypatch.setattr(oodbench.download, "file_sha256",
                        lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(base, "_SHA256_MEMO", {})
    first = base.weights_sha256(path)
    assert base.weights_sha256(path) == first and len(calls) == 1
    monkeypatch.setattr(base, "_SHA256_MEMO", {})  # a new process: the disk cache answers
    assert base.weights_sha256(path) == first and len(calls) == 1
    path.write_bytes(b"y" * 1000)
    os.utime(path, ns=(1, 1))
    assert base.weights_sha256(path) != first and len(calls) == 2


def test_fingerprint_names_the_weights_content_and_keeps_the_tag_fingerprint(tiny_model,
                                                                             tmp_path):
    import hashlib

    path = tmp_path / "a.bin"
    torch.save(tiny_model.state_dict(), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    backbone = _tiny(path)
    backbone.load(CPU)
    assert f":sha256={sha}:" in backbone.fingerprint() and str(tmp_path) not in \
        backbone.fingerprint()
    assert backbone.weights_identity() == {"path": str(path.resolve()), "sha256": sha,
                                           "tag": None}
    moved = tmp_path / "moved.bin"
    path.rename(moved)  # same content elsewhere: same fingerprint, same feature caches
    again = _tiny(moved)
    again.load(CPU)
    assert again.fingerprint() == backbone.fingerprint()
    plain = _tiny()
    plain.load(CPU)  # no --weights: today's fingerprint, no identity
    assert plain.fingerprint().startswith("openclip:oodbench-tiny:::")
    assert plain.weights_identity() is None


def test_weights_runs_get_their_own_record_files_and_leaderboard_rows(
        registry, colour_suite, tiny_model, tmp_path):
    from oodbench.leaderboard import Entry

    out = tmp_path / "results"
    paths, shas = [], []
    for name, scale in (("a.bin", 1.0), ("b.bin", 0.5)):
        path = tmp_path / name
        torch.save({k: v * scale for k, v in tiny_model.state_dict().items()}, path)
        record = run(RunRequest("mcm", str(colour_suite), backbone="tiny-clip",
                                backbone_params={"weights": str(path)}, output_dir=out),
                     RunContext(cache_dir=tmp_path / "cache", batch_size=16), registry)
        sha = record["backbone"]["weights"]["sha256"]
        assert record["backbone"]["weights"]["path"] == str(path.resolve())
        assert sha in record["backbone"]["fingerprint"]
        assert Path(record["path"]).name == f"mcm--colours--tiny-clip--w{sha[:8]}.json"
        assert Entry(Path(record["path"]).name, record).backbone == \
            f"tiny-clip (weights {sha[:8]})"
        paths.append(record["path"])
        shas.append(sha)
    assert len(set(paths)) == 2 and all(Path(p).exists() for p in paths)
    written = json.loads(Path(paths[0]).read_text())
    assert written["backbone"]["weights"]["sha256"] == shas[0]
    plain = run(RunRequest("mcm", str(colour_suite), backbone="tiny-clip", output_dir=out),
                RunContext(cache_dir=tmp_path / "cache", batch_size=16), registry)
    assert "weights" not in plain["backbone"]
    assert Path(plain["path"]).name == "mcm--colours--tiny-clip.json"
    assert Entry("x.json", plain).backbone == "tiny-clip"
    assert record_filename("mcm", "colours", "tiny-clip") == "mcm--colours--tiny-clip.json"


# -- 7. timings cover the ID text encoding -------------------------------------------------------
def test_id_text_encoding_is_timed(registry, colour_suite, tmp_path):
    record = run(RunRequest("mcm", str(colour_suite)),
                 RunContext(cache_dir=tmp_path / "cache", batch_size=16), registry)
    timings = record["timings"]
    assert timings["encode_text"] > 0
    for key in ("load_backbone", "encode", "prepare", "score", "total"):
        assert key in timings
