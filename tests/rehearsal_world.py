"""The rehearsal world (issue 19): small stand-ins in the formats users really have.

``build_world(root)`` writes, under ``root``:

* ``data/`` (what ``OODBENCH_DATA`` points at): ImageNet val as an ImageFolder with all 1000
  real wnid folders, one image each (a run refuses an absent or empty class folder), and a
  train folder of two classes (no method here reads it); the MOS far-OOD
  sets (``ood/{iNaturalist,SUN,Places}/images/*.jpg``, DTD as ``ood/dtd/images/<texture>/``
  with its ``labels/`` beside); OpenOOD v1.5 as its download script leaves it
  (``openood/benchmark_imglist/imagenet/test_*.txt`` + ``images_largescale/`` +
  ``images_classic/``, with an unlisted file that must not be read); ImageNet-O
  (``ood/imagenet-o/<wnid>/*.jpg`` and its README.txt); Food-101 as ``oodbench data fetch``
  leaves it: parquet files in the Hugging Face hub cache (``hf/hub/datasets--ethz--food101``:
  blobs, a snapshot of symlinks, refs/main) and the split records under ``data/hf/``.
* ``hf/``: ``HF_HOME`` (the hub cache above; ``datasets`` prepares the parquet under it).
* ``data/suites/``: copies of the shipped suites (found through the registry) with every
  ``expected_count`` nulled and nothing else changed; the files they name relative to
  themselves (includes, ``{file: ../classlists/...}``) are copied to the same relative places
  (``data/classlists/``: inside the data folder, where a suite may read list files).
* ``weights/``: one random ``ViT-B-16-quickgelu`` open_clip state dict (rounded through float16,
  as OpenAI's weights are) as ``.bin``, ``.safetensors``, an open_clip training checkpoint
  (``{"epoch", "name", "state_dict": {"module." + k}, "optimizer"}``) and an OpenAI-style
  TorchScript file; a ``ViT-B-32-quickgelu`` state dict (the wrong architecture for clip-b16);
  a tiny Hugging Face ``CLIPModel`` folder with OpenAI's real BPE vocabulary (converted from the
  ``bpe_simple_vocab_16e6.txt.gz`` that open_clip ships) and OpenAI's image processor settings.

``python tests/rehearsal_world.py drive PLAN.json OUT.json`` runs each planned
``oodbench run ...`` through typer's CliRunner in one fresh process (its environment is what
the test gives it: ``OODBENCH_DATA``, ``HF_HUB_OFFLINE=1``, ``HF_HOME`` ...; the Hugging Face
libraries read those when they are imported, so a fresh process is the only way to give them
without patching) and writes each run's exit code, output and record to OUT.json.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUITES = ("imagenet-far", "imagenet-openood", "imagenet10-vs-20", "food101")
FOOD_REPO = "ethz/food101"
FOOD_REVISION = "e06acf2a88084f04bce4d4a525165d68e0a36c38"  # a stand-in commit hash
# OpenOOD v1.5's folder of each list's images (scripts/download/download.py, --save_dir)
OPENOOD_FOLDERS = {"test_ssb_hard.txt": "ssb_hard", "test_ninco.txt": "ninco",
                   "test_inaturalist.txt": "inaturalist", "test_textures.txt": "texture",
                   "test_openimage_o.txt": "openimage_o"}


@dataclass
class World:
    root: Path
    data: Path
    hf_home: Path
    suites: dict[str, Path]  # suite name -> the copied YAML
    weights: dict[str, Path]  # format -> file (bin, safetensors, checkpoint, jit, wrong-arch)
    hf_clip: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # suite -> set -> images
    seconds: dict[str, float] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # format -> the weights file's sha256


# -- images ------------------------------------------------------------------------------------
_SEED = [0]


def _image(path: Path, mode: str = "RGB", size: tuple[int, int] = (72, 56)) -> None:
    """A small seeded noise image (each one different), saved in the format of its suffix."""
    import numpy as np
    from PIL import Image

    _SEED[0] += 1
    rng = np.random.default_rng(_SEED[0])
    base = rng.integers(0, 256, size=(1, 1, 3))
    pixels = (base + rng.integers(-60, 60, size=(size[1], size[0], 3))).clip(0, 255)
    image = Image.fromarray(pixels.astype("uint8"), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)


def _images(folder: Path, names: list[str]) -> int:
    for name in names:
        _image(folder / name)
    return len(names)


# -- suites ------------------------------------------------------------------------------------
def registered_suite(name: str) -> Path:
    """The shipped suite file, found only through the registry (never a hard-coded folder)."""
    from oodbench.plugins import Registry

    return Path(Registry().load(entry_points=False).get("suite", name).obj)


def _null_counts(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (None if k == "expected_count" else _null_counts(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_null_counts(v) for v in node]
    return node


def _file_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["file"])] if set(node) == {"file"} else []
        return own + [r for v in node.values() for r in _file_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _file_refs(v)]
    return []


def copy_suite(source: Path, target_dir: Path, seen: set[Path] | None = None) -> Path:
    """Copy ``source`` (and what it includes) into ``target_dir`` with expected_count nulled;
    the files it names relative to itself are copied to the same relative places."""
    import yaml

    seen = set() if seen is None else seen
    source = source.resolve()
    target = target_dir / source.name
    if source in seen:
        return target
    seen.add(source)
    data = yaml.safe_load(source.read_text())
    includes = data.get("include") or []
    for inc in [includes] if isinstance(includes, str) else includes:
        copy_suite(source.parent / inc, (target_dir / inc).parent, seen)
    for ref in _file_refs(data):
        dest = (target_dir / ref).resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.parent / ref, dest)
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(_null_counts(data), sort_keys=False, width=1000))
    return target


# -- data --------------------------------------------------------------------------------------
def _imagenet(data: Path, suites: dict[str, Any]) -> dict[str, dict[str, int]]:
    """ImageNet val as an ImageFolder with the real wnid folders; returns counts per suite set.

    A class folder that is absent or empty stops a run (data.folders._class_images), so all 1000
    val folders exist, with one image each (two in the first ImageNet-10 class; the second
    ImageNet-10 class's image is greyscale, as some ImageNet val JPEGs are). Train (read by no
    method run here) holds two classes.
    """
    wnids_1k = suites["imagenet-far"].id_test["class_dirs"]
    in10 = suites["imagenet10-vs-20"].id_test["class_dirs"]
    in20 = suites["imagenet10-vs-20"].ood[0].source["class_dirs"]
    assert len(wnids_1k) == 1000 and len(in10) == 10 and len(in20) == 20
    assert set(in10) <= set(wnids_1k) and set(in20) <= set(wnids_1k)
    val = data / "imagenet" / "val"
    extra = {in10[0]: 1}
    number = 0
    for wnid in wnids_1k:
        for _ in range(1 + extra.get(wnid, 0)):
            number += 1
            _image(val / wnid / f"ILSVRC2012_val_{number:08d}.JPEG",
                   "L" if wnid == in10[1] else "RGB")
    train = data / "imagenet" / "train"
    for wnid in (wnids_1k[0], in10[0]):
        _image(train / wnid / f"{wnid}_10026.JPEG")
    return {"imagenet-far": {"id": number},
            "imagenet10-vs-20": {"id": len(in10) + 1, "imagenet-20": len(in20)}}


def _mos(data: Path) -> dict[str, int]:
    """MOS far-OOD subsets as their tarballs unpack, and DTD as its release unpacks."""
    ood = data / "ood"
    counts = {name: _images(ood / name / "images", [f"{stem}.jpg" for stem in stems])
              for name, stems in (("iNaturalist", ["0a1b2c3d", "9f8e7d6c"]),
                                  ("SUN", ["sun_aaaflwpsdqdtxosj", "sun_abcdqjzrkmmrdxaw"]),
                                  ("Places", ["b_badlands_00000034", "c_canyon_00000160"]))}
    dtd = ood / "dtd"
    counts["Textures"] = (_images(dtd / "images" / "banded", ["banded_0002.jpg"])
                          + _images(dtd / "images" / "zigzagged", ["zigzagged_0012.jpg"]))
    (dtd / "labels").mkdir(parents=True)
    (dtd / "labels" / "train1.txt").write_text("banded/banded_0002.jpg\n")
    return counts


def _openood(data: Path, suite: Any) -> dict[str, int]:
    """OpenOOD v1.5 as its download script leaves it: lists + images (flat ImageNet val)."""
    base = data / "openood"
    lists = base / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)
    val = base / "images_largescale" / "imagenet_1k" / "val"
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4)]
    _images(val, names)  # the 4th is not in test_imagenet.txt (OpenOOD's val split): not read
    (lists / "test_imagenet.txt").write_text(
        f"imagenet_1k/val/{names[0]} 65\nimagenet_1k/val/{names[1]} 970\n"
        f"imagenet_1k/val/{names[2]} 0\n")
    counts = {"id": 3}
    for ood in suite.ood:
        listing = ood.source.get("imglist")
        if not listing:
            continue
        list_name = Path(listing).name
        folder = OPENOOD_FOLDERS[list_name]
        root = Path(str(ood.source["imglist_root"]).replace("${data}", str(data)))
        rels = [f"{folder}/{sub}img_{i}.jpg" for i, sub in
                enumerate(["a/", "b/"] if folder in ("ssb_hard", "texture", "ninco") else ["", ""])]
        for rel in rels:
            _image(root / rel)
        _image(root / folder / "unlisted.jpg")  # in the folder but not in the list
        (lists / list_name).write_text("".join(f"{rel} -1\n" for rel in rels))
        counts[ood.name] = len(rels)
    # ImageNet-O: <wnid>/*.jpg and a README.txt that is not an image
    imagenet_o = data / "ood" / "imagenet-o"
    counts["ImageNet-O"] = (_images(imagenet_o / "n01443537", ["11.jpg"])
                            + _images(imagenet_o / "n01704323", ["3.jpg"]))
    (imagenet_o / "README.txt").write_text("ImageNet-O: 2000 images of 200 classes\n")
    return counts


def _hub_file(hub: Path, repo: str, revision: str, rel: str, content: bytes) -> None:
    """One file of a dataset repo in the hub cache, laid out as huggingface_hub writes it."""
    repo_dir = hub / f"datasets--{repo.replace('/', '--')}"
    blob = repo_dir / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    link = repo_dir / "snapshots" / revision / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)


def _food101(data: Path, hub: Path, suite: Any, names_file: Path, tmp: Path) -> dict[str, int]:
    """Food-101 as `oodbench data fetch food101` leaves it: the validation and train parquet
    files in the hub cache (the hub's ClassLabel: the 101 names in hub order) and a record of
    each split under <data>/hf/."""
    import datasets
    from PIL import Image

    hub_names = [n.replace(" ", "_") for n in names_file.read_text().split("\n") if n.strip()]
    assert len(hub_names) == 101 and hub_names[16] == "cheesecake"
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=hub_names)})
    id_labels = list(suite.id_test["labels"])
    ood_labels = list(next(s for s in suite.ood if s.name == "food-51").source["labels"])
    # rows per file: two validation files (as the hub's export splits a split), one train file
    plan = {"validation": [[id_labels[0], ood_labels[0], id_labels[1]],
                           [ood_labels[1], id_labels[2]]],
            "train": [[id_labels[0], ood_labels[0]]]}
    counts = {"id": 0, "food-51": 0}
    for split, files in plan.items():
        rels = []
        for index, labels in enumerate(files):
            images = []
            for _ in labels:
                path = tmp / "food.jpg"
                _image(path, size=(96, 80))
                with Image.open(path) as img:
                    img.load()
                    images.append(img.copy())
            ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
            out = tmp / f"{split}-{index}.parquet"
            ds.to_parquet(str(out))
            rel = f"data/{split}-{index:05d}-of-{len(files):05d}.parquet"
            _hub_file(hub, FOOD_REPO, FOOD_REVISION, rel, out.read_bytes())
            rels.append(rel)
            if split == "validation":
                counts["id"] += sum(label in id_labels for label in labels)
                counts["food-51"] += sum(label in ood_labels for label in labels)
        record = {"repo": FOOD_REPO, "config": None, "split": split, "revision": FOOD_REVISION,
                  "loader": "parquet", "files": rels, "features": features.to_dict()}
        target = data / "hf" / FOOD_REPO.replace("/", "--") / "default" / f"{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=1) + "\n")
    return counts


# -- models ------------------------------------------------------------------------------------
def openai_bpe_files(folder: Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt of OpenAI's CLIP tokenizer (49,408 tokens) from the BPE file
    open_clip ships, built as open_clip's SimpleTokenizer builds its vocabulary."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges)
                                       + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def tiny_hf_clip(folder: Path, tmp: Path) -> Path:
    """A random tiny transformers CLIPModel with OpenAI's tokenizer and image processor."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    vocab, merges = openai_bpe_files(tmp / "bpe")
    tokenizer = CLIPTokenizer(str(vocab), str(merges))
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "bos_token_id": 49406,
                     "eos_token_id": 49407, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    # OpenAI's processor: shortest edge 224, centre crop 224, bicubic, CLIP mean/std
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def _openai_style_jit(model: Any, path: Path) -> None:
    """A TorchScript archive shaped like OpenAI's clip.load cache (e.g. ViT-B-16.pt): the CLIP
    parameters under OpenAI's names (which open_clip's CLIP shares), fp16 where OpenAI's
    convert_weights makes them fp16, and the input_resolution / context_length / vocab_size
    entries OpenAI's files carry."""
    import open_clip
    import torch

    class OpenAICLIP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = model.visual
            self.transformer = model.transformer
            self.token_embedding = model.token_embedding
            self.positional_embedding = model.positional_embedding
            self.ln_final = model.ln_final
            self.text_projection = model.text_projection
            self.logit_scale = model.logit_scale
            self.register_buffer("input_resolution", torch.tensor(224))
            self.register_buffer("context_length", torch.tensor(77))
            self.register_buffer("vocab_size", torch.tensor(49408))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.visual(image)

    wrapper = OpenAICLIP().eval()
    open_clip.model.convert_weights_to_lp(wrapper, torch.float16)
    with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's files are TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(wrapper), str(path))


def open_clip_weights(folder: Path) -> dict[str, Path]:
    """One random ViT-B-16-quickgelu state dict in four file formats + a wrong architecture."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    with torch.no_grad():  # OpenAI's weights are float16: every format holds the same values
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    out = {"bin": folder / "open_clip_pytorch_model.bin",
           "safetensors": folder / "open_clip_model.safetensors",
           "checkpoint": folder / "epoch_32.pt",
           "jit": folder / "ViT-B-16.pt",
           "wrong-arch": folder / "ViT-B-32-quickgelu.safetensors"}
    torch.save(state, out["bin"])
    save_file(state, str(out["safetensors"]), metadata={"format": "pt"})
    torch.save({"epoch": 32, "name": "rehearsal",
                "state_dict": {"module." + k: v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]}},
               out["checkpoint"])
    del state
    _openai_style_jit(copy.deepcopy(model), out["jit"])
    del model
    other = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(out["wrong-arch"]),
              metadata={"format": "pt"})
    return out


# -- the world ---------------------------------------------------------------------------------
def build_world(root: Path) -> World:
    from oodbench.data.suite import load_suite

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    data, hf_home, tmp = root / "data", root / "hf", root / "tmp"
    for folder in (data, hf_home, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    shipped = {name: registered_suite(name) for name in SUITES}
    # the copies lie in the data folder, their class lists beside them as in the package
    # (`file: ../classlists/...`): a suite reads list files only from its own folder, the data
    # folder and oodbench's own class lists
    suites = {name: copy_suite(path, data / "suites") for name, path in shipped.items()}
    parsed = {name: load_suite(path) for name, path in shipped.items()}
    counts: dict[str, dict[str, int]] = {}
    imagenet = _imagenet(data, parsed)
    mos = _mos(data)
    counts["imagenet-far"] = {**imagenet["imagenet-far"], **mos}
    counts["imagenet10-vs-20"] = imagenet["imagenet10-vs-20"]
    counts["imagenet-openood"] = _openood(data, parsed["imagenet-openood"])
    names = shipped["food101"].parent / "../classlists/food101_names.txt"
    counts["food101"] = {**_food101(data, hf_home / "hub", parsed["food101"], names, tmp), **mos}
    seconds["data"] = time.perf_counter() - start
    start = time.perf_counter()
    hf_clip = tiny_hf_clip(root / "weights" / "tiny-hf-clip", tmp)
    seconds["hf_clip"] = time.perf_counter() - start
    start = time.perf_counter()
    weights = open_clip_weights(root / "weights")
    seconds["open_clip_weights"] = time.perf_counter() - start
    return World(root, data, hf_home, suites, weights, hf_clip, counts, seconds)


def link_wordnet(world: World) -> bool:
    """Whether WordNet is installed; when it is in the data folder (`oodbench data
    fetch-wordnet` puts it there), link it into the world's data folder, where a user has it."""
    from oodbench.errors import MissingDataError
    from oodbench.labels.wordnet import wordnet_dir
    from oodbench.paths import data_dir

    try:
        found = wordnet_dir()
    except MissingDataError:
        return False
    source = data_dir() / "wordnet"
    if source in found.parents:
        (world.data / "wordnet").symlink_to(source.resolve(), target_is_directory=True)
    return True  # else the system's (apt-get install wordnet-base), found there too


def drop_weights(world: World) -> None:
    """Delete the ~2.7 GB of weight files (pytest keeps the last temporary folders)."""
    for file in world.weights.values():
        file.unlink(missing_ok=True)


def environment(world: World) -> dict[str, str]:
    """The environment of a connected user's run, pointed at the world, hub switched off."""
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("OODBENCH_", "HF_", "HUGGINGFACE_"))]:
        del env[key]
    env.update({"OODBENCH_DATA": str(world.data), "OODBENCH_HOME": str(world.root / "home"),
                "OODBENCH_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1",
                "HF_HOME": str(world.hf_home),
                "HF_DATASETS_CACHE": str(world.hf_home / "datasets"),
                "TOKENIZERS_PARALLELISM": "false"})
    return env


# -- the driver --------------------------------------------------------------------------------
def drive(plan_file: Path, out_file: Path) -> None:
    """Run every planned `oodbench run` argv through CliRunner; write what each did."""
    from typer.testing import CliRunner

    from oodbench.cli import app

    plan = json.loads(plan_file.read_text())
    results: dict[str, Any] = {}
    runner = CliRunner()
    for cell in plan:
        start = time.perf_counter()
        result = runner.invoke(app, cell["args"])
        error = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            error = "".join(traceback.format_exception(result.exception))[-4000:]
        records = sorted(Path(cell["output"]).glob("*.json"))
        results[cell["id"]] = {
            "exit_code": result.exit_code, "stdout": result.stdout[-4000:],
            "stderr": result.stderr[-4000:], "exception": error,
            "records": [str(r) for r in records],
            "record": json.loads(records[0].read_text()) if len(records) == 1 else None,
            "seconds": round(time.perf_counter() - start, 2)}
        out_file.write_text(json.dumps(results))  # as it goes: a crash keeps what ran
        print(f"{cell['id']}: exit {result.exit_code} in {results[cell['id']]['seconds']}s",
              file=sys.__stderr__, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "drive":
        drive(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: rehearsal_world.py drive PLAN.json OUT.json")
