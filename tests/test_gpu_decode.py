"""--decode gpu: the tensor decode path, run on the CPU (decode_jpeg takes device="cpu")."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import oodbench.plugins as plugins_module
from oodbench.backbones.base import TensorPreprocess
from oodbench.backbones.hf import _ProcessorTransform, hf_tensor_spec
from oodbench.backbones.openclip import OpenCLIPBackbone, tensor_spec_from_transform
from oodbench.cache import ArtifactCache, content_key
from oodbench.cli import app
from oodbench.data.sources import ImageList, resolve_source
from oodbench.decode import decode_plan, plain_jpeg, preprocess_tensors
from oodbench.features import FeatureStore
from oodbench.types import RunContext
from tests.toy import ToyColourBackbone

CPU = torch.device("cpu")
# one 8-bit level in normalised units, for the smallest CLIP std
LEVEL = 1 / 255 / 0.2613


def _picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth random content (as photos are), so JPEG keeps it close to the original."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(max(2, height // 8), max(2, width // 8), 3),
                         dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def _decoded(data: bytes) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                       mode=ImageReadMode.RGB)


def _pil(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


# sizes: landscape, portrait, upscaling, no resize with an odd crop offset (301 - 224 = 77,
# where torchvision rounds 38.5 to 38 and transformers floors it), resize by one pixel
SIZES = [(500, 375), (375, 500), (150, 100), (301, 224), (227, 300), (640, 427)]


@pytest.fixture(scope="module")
def vit_b16() -> OpenCLIPBackbone:
    backbone = OpenCLIPBackbone(model="ViT-B-16", pretrained="")  # random init, no download
    backbone.load(CPU)
    return backbone


def test_openclip_spec_is_read_from_the_transform(vit_b16):
    spec = vit_b16.tensor_preprocess()
    assert spec == TensorPreprocess(
        size=224, interpolation="bicubic", mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711), resize_mode="shortest", crop=(224, 224),
        crop_offset="round")
    from open_clip.transform import image_transform

    squash = tensor_spec_from_transform(image_transform(64, is_train=False, resize_mode="squash"))
    assert squash is not None and squash.resize_mode == "squash" and squash.size == (64, 64)
    # open_clip's "longest" mode pads: no tensor spec, so --decode gpu falls back
    assert tensor_spec_from_transform(
        image_transform(64, is_train=False, resize_mode="longest")) is None
    with pytest.raises(ValueError):  # without a crop, output sizes would vary per image
        TensorPreprocess(size=224, interpolation="bicubic", mean=(0, 0, 0), std=(1, 1, 1))


def test_tensor_preprocessing_matches_pil_for_vit_b16(vit_b16):
    spec = vit_b16.tensor_preprocess()
    pil = vit_b16.preprocess()
    datas = [_jpeg_bytes(_picture(w, h, seed)) for seed, (w, h) in enumerate(SIZES)]
    reference = torch.stack([pil(_pil(d)) for d in datas])
    tensors = preprocess_tensors([_decoded(d) for d in datas], spec)
    assert tensors.shape == reference.shape == (len(SIZES), 3, 224, 224)
    diff = (tensors - reference).abs()
    assert float(diff.max()) <= LEVEL * 1.01  # at most one 8-bit level anywhere
    assert float((diff > 1e-4).float().mean()) < 1e-3  # and almost everywhere identical
    assert torch.equal(tensors[3], reference[3])  # no resize: the crop offset is exact
    # one forward (slow on a CPU) of the same downscaled image both ways
    feats = vit_b16.encode_images(torch.stack([reference[0], tensors[0]]))
    assert float(feats[0] @ feats[1]) > 0.9999


def test_hf_processor_spec_matches_the_processor():
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 64},
                                   crop_size={"height": 64, "width": 64})
    spec = hf_tensor_spec(processor)
    assert spec is not None and spec.crop_offset == "floor" and spec.size == 64
    siglip = hf_tensor_spec(SiglipImageProcessor())
    assert siglip is not None and siglip.resize_mode == "squash" and siglip.crop is None
    transform = _ProcessorTransform(processor)
    # 141 x 64 has an odd crop margin (77): transformers floors the offset to 38
    sizes = [(200, 150), (150, 200), (141, 64), (90, 70)]
    datas = [_jpeg_bytes(_picture(w, h, seed)) for seed, (w, h) in enumerate(sizes)]
    reference = torch.stack([transform(_pil(d)) for d in datas])
    tensors = preprocess_tensors([_decoded(d) for d in datas], spec)
    # transformers resizes uint8 tensors with torch's integer kernel: a level apart at most
    assert float((tensors - reference).abs().max()) <= 2 * LEVEL
    assert torch.allclose(tensors[2], reference[2], atol=1e-5)


def _mixed_folder(root: Path) -> dict[str, str]:
    """Every kind of file the GPU path must route; returns name -> expected route."""
    root.mkdir(parents=True)
    routes = {}
    for i, (w, h) in enumerate([(40, 30), (30, 40), (64, 48), (33, 32), (40, 30)]):
        (root / f"a{i}_rgb.jpg").write_bytes(_jpeg_bytes(_picture(w, h, i)))
        routes[f"a{i}_rgb.jpg"] = "tensor"
    (root / "b_grey.jpg").write_bytes(_jpeg_bytes(_picture(50, 40, 7).convert("L")))
    routes["b_grey.jpg"] = "tensor"
    (root / "c_cmyk.jpg").write_bytes(_jpeg_bytes(_picture(50, 40, 8).convert("CMYK")))
    routes["c_cmyk.jpg"] = "pil"
    _picture(45, 40, 9).save(root / "d_photo.png")
    routes["d_photo.png"] = "pil"
    trailer = _jpeg_bytes(_picture(40, 40, 10)) + bytes(range(256)) * 8  # 2 KB after the end
    (root / "e_trailer.jpg").write_bytes(trailer)
    routes["e_trailer.jpg"] = "pil"
    whole = _jpeg_bytes(_picture(60, 40, 11))
    (root / "f_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    routes["f_truncated.jpg"] = "skip"
    (root / "g_garbage.jpg").write_bytes(b"\xff\xd8\xff this is not really a JPEG \xff\xd9")
    routes["g_garbage.jpg"] = "skip"
    (root / "h_empty.jpg").write_bytes(b"")
    routes["h_empty.jpg"] = "skip"
    return routes


@pytest.fixture
def tiny_clip(tiny_clip_config) -> OpenCLIPBackbone:
    backbone = OpenCLIPBackbone(model=tiny_clip_config, pretrained="")
    backbone.load(CPU)
    return backbone


def test_plain_jpeg_routes_files(tmp_path):
    routes = _mixed_folder(tmp_path / "imgs")
    for name, route in routes.items():
        data = (tmp_path / "imgs" / name).read_bytes()
        assert plain_jpeg(data) == (route == "tensor"), name


def test_gpu_mode_keeps_and_skips_exactly_as_the_cpu_path(tmp_path, tiny_clip):
    routes = _mixed_folder(tmp_path / "imgs")
    images = resolve_source({"type": "imagefolder", "root": str(tmp_path / "imgs")}, "x", None)
    cpu_store = FeatureStore(ArtifactCache(tmp_path / "cache"))
    cpu = cpu_store.images(tiny_clip, images, RunContext(batch_size=4))
    notes: list[str] = []
    gpu_store = FeatureStore(ArtifactCache(tmp_path / "cache"), log=notes.append)
    ctx = RunContext(batch_size=4, decode="gpu", num_workers=1)  # bytes read in a worker
    gpu = gpu_store.images(tiny_clip, images, ctx)

    assert gpu.paths == cpu.paths and len(gpu.paths) == 9
    assert gpu.skipped == cpu.skipped  # same files, same reasons
    assert sorted(Path(p).name for p, _ in gpu.skipped) == sorted(
        n for n, r in routes.items() if r == "skip")
    assert gpu_store.stats.skipped == cpu_store.stats.skipped == 3
    assert gpu_store.stats.decoded_on_device == 6 and gpu_store.stats.decoded_with_pil == 3
    assert np.array_equal(gpu.labels, cpu.labels)
    assert torch.allclose(gpu.features, cpu.features, atol=2e-3)
    assert len(notes) == 1 and "CPU device" in notes[0]

    # the CPU path keeps the key existing caches were written under; the GPU path has its own
    legacy = content_key("image-features/1", tiny_clip.fingerprint(), images.fingerprint)
    assert cpu_store.image_key(tiny_clip, images) == legacy
    assert cpu_store.image_key(tiny_clip, images, RunContext()) == legacy
    assert gpu_store.image_key(tiny_clip, images, ctx) != legacy
    again = FeatureStore(ArtifactCache(tmp_path / "cache"))
    again.images(tiny_clip, images, ctx)
    assert again.stats.cache_hits == 1 and again.stats.images_encoded == 0


def test_decoder_rejection_falls_back_to_pil_per_image(tmp_path, tiny_clip, monkeypatch):
    import torchvision.io

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.jpg").write_bytes(_jpeg_bytes(_picture(40 + i, 30, i)))
    rejected = (root / "1.jpg").read_bytes()
    real = torchvision.io.decode_jpeg

    def picky(data, *args, **kwargs):  # as nvJPEG failing on a JPEG that PIL decodes
        batch = data if isinstance(data, list) else [data]
        if any(bytes(d.numpy()) == rejected for d in batch):
            raise RuntimeError("nvjpeg: unsupported JPEG")
        return real(data, *args, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", picky)
    images = resolve_source({"type": "imagefolder", "root": str(root)}, "x", None)
    store = FeatureStore(ArtifactCache(tmp_path / "cache"), log=lambda _: None)
    gpu = store.images(tiny_clip, images, RunContext(decode="gpu"))
    cpu = FeatureStore(ArtifactCache(tmp_path / "cache")).images(tiny_clip, images, RunContext())
    assert gpu.paths == cpu.paths and not gpu.skipped
    assert store.stats.decoded_on_device == 2 and store.stats.decoded_with_pil == 1
    assert torch.allclose(gpu.features[1], cpu.features[1], atol=1e-6)  # the PIL pixels


def test_backbone_without_spec_falls_back_with_one_note(tmp_path):
    from tests.toy import write_colour_images

    write_colour_images(tmp_path / "a", "red", 3, 0)
    write_colour_images(tmp_path / "b", "blue", 3, 1)
    backbone = ToyColourBackbone()
    backbone.load(CPU)
    notes: list[str] = []
    store = FeatureStore(ArtifactCache(tmp_path / "cache"), log=notes.append)
    ctx = RunContext(decode="gpu")
    for folder in ("a", "b"):
        images = resolve_source({"type": "imagefolder", "root": str(tmp_path / folder)}, "x",
                                None)
        store.images(backbone, images, ctx)
        assert store.image_key(backbone, images, ctx) == store.image_key(backbone, images)
    assert len(notes) == 1 and "toy-colour" in notes[0] and "CPU path" in notes[0]
    assert store.stats.images_encoded == 6 and store.stats.decoded_on_device == 0


def test_hugging_face_images_use_the_cpu_path(tiny_clip):
    images = ImageList("hf-set", ["hf://x/test/0"], np.array([-1]), "fp",
                       hf_dataset=[{"image": _picture(40, 30, 0)}])
    spec, why = decode_plan(tiny_clip, images, RunContext(decode="gpu"))
    assert spec is None and "Hugging Face" in why
    assert decode_plan(tiny_clip, images, RunContext()) == (None, "")


def test_cli_decode_option(registry, colour_suite, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    runner = CliRunner()
    base = ["run", "-m", "mcm", "-s", str(colour_suite), "--device", "cpu", "--workers", "0",
            "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "out")]
    result = runner.invoke(app, [*base, "--decode", "nvjpeg"])
    assert result.exit_code == 2 and "'nvjpeg' is not one of 'cpu', 'gpu'" in result.output
    result = runner.invoke(app, [*base, "--decode", "gpu"])
    assert result.exit_code == 0, result.output
    # the suite's toy backbone has no tensor spec: the run goes on on the CPU path, with a note
    # in the run's log and in the record
    record = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    notes = record["notes"]["features"]
    assert any("decode gpu" in n and "toy-colour" in n for n in notes)
    assert record["cache"]["decode"] == "gpu" and record["cache"]["decoded_on_device"] == 0
