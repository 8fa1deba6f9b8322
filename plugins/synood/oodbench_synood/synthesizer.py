"""SynOOD's synthesizer: MLLM context prompts + energy-guided in-painting of ID train images.

Per selected ID image: the describer lists what the image shows besides its class; the prompt
"A photo only remain {answer[:73]}." (the paper's template, kept verbatim as the default) drives
a whole-image in-painting at strength 0.6 whose start noise is refined K times by the gradient
of the guidance loss. Each image is written with a manifest entry, atomically, as soon as it
is made: an interrupted run resumes where it stopped. ``shard_index``/``shard_count`` (default:
the RANK / WORLD_SIZE that ``accelerate launch`` or torchrun set) give each process a disjoint,
deterministic slice; with ``LOCAL_RANK`` set (one process per GPU) a CUDA run's shard
synthesizes on ``cuda:LOCAL_RANK``. A shard that finishes while others still run stops with exit
status 0 (``ShardFinished``); the shard that finds every image made continues to fine-tuning.

``per_class`` and ``step`` default to "auto": the paper's N = 50 and r = 10 (SD-2-inpainting +
ResNet-50), or the offline settings below when the in-painter is the CPU ``mini-diffusion``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from oodbench.cache import atomic_write, atomic_write_text, content_key
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError
from oodbench.interfaces import Synthesizer
from oodbench.standins import check_backend
from oodbench.types import LabelBank, SampleSet
from oodbench_synood.classifiers import classifier_identity, make_classifier
from oodbench_synood.guidance import effective_margin, guided_inpaint
from oodbench_synood.select import select_images

PAPER = {"per_class": 50, "step": 10.0}
# The offline stand-ins (mini-diffusion + the mini backbone's zero-shot head, 2 CPU cores):
# N = 4 keeps every synood variant on every offline suite inside CI time (~1 s of CPU per image
# and iteration). r: the paper's r = 10 moves this pixel-space noise by 2-12 times its own norm,
# and on offline-far/-near the guided images come out *more* confident than unguided ones;
# r = 0.1 raises s towards the margin and lowers the confidence on the ID train images of all
# three offline suites while moving ε by at most 12 % (`python -m oodbench_synood.probe`; the
# table is in plugins/synood/README.md). No evaluation image was used to choose either value.
OFFLINE = {"per_class": 4, "step": 0.1}
OFFLINE_INPAINTERS = ("mini-diffusion",)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class ShardFinished(OODBenchError):
    """A shard made its images while other shards' images are still missing: not a failure.
    Exit status 0, so that ``accelerate launch``/torchrun do not stop the other shards."""

    exit_code = 0


def shard_device(run_device: torch.device) -> torch.device:
    """cuda:$LOCAL_RANK for a launcher's process (accelerate, torchrun) on a CUDA run without
    a device index, so each process of a machine synthesizes on its own GPU; otherwise the run's
    device (CPU runs stay on the CPU; an explicit ``--device cuda:i`` wins)."""
    local = _env_int("LOCAL_RANK", -1)
    if local < 0 or run_device.type != "cuda" or run_device.index is not None:
        return run_device
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if local >= torch.cuda.device_count():
        raise OODBenchError(f"LOCAL_RANK={local} but {torch.cuda.device_count()} GPUs are "
                            f"visible; launch at most that many processes per machine.")
    return torch.device("cuda", local)


@dataclasses.dataclass
class SynOODSynthesizer(Synthesizer):
    name = "synood-inpaint"
    description = "SynOOD: MLLM context prompt + energy-guided iterative in-painting."
    per_class: int = 0  # N images per ID class; 0 = auto (50, the paper; 4 offline)
    selector: str = "complexity"  # complexity (file bytes per pixel) | random | first
    describer: str = "vocabulary"  # users: transformers-mllm (LLaVA-1.5)
    prompt_template: str = "A photo only remain {}."
    answer_chars: int = 73
    inpainter: str = "mini-diffusion"  # users: diffusers-inpaint (SD-2-inpainting)
    classifier: str = "zero-shot"  # users: resnet50 (torchvision IMAGENET1K_V2)
    iterations: int = 3  # K
    margin: float = -5.0  # m, for a 1,000-class classifier (see guidance.effective_margin)
    relative_margin: bool = True
    step: float = -1.0  # r; 0 = no energy gradient (ablation); < 0 = auto (10; 0.1 offline)
    strength: float = 0.6
    steps: int = 20
    guidance: float = 8.0
    batch_size: int = 2
    seed: int = 0
    # torch CPU threads while synthesizing (0 = leave torch's setting). The mini UNet is too
    # small to gain from intra-op threads, and on a shared CPU a second thread spins: one
    # 20-step denoise took 24 s of CPU with 2 threads, 2.1 s with 1 (2 cores, load 5-8)
    threads: int = 1
    shard_index: int = -1  # -1 = $RANK (0 without it)
    shard_count: int = 0  # 0 = $WORLD_SIZE (1 without it)

    # on real data: the paper's models and N, r (the vocabulary describer, mini-diffusion and
    # the zero-shot head are offline stand-ins; MLLM: the paper names none, LLaVA-1.5 here)
    paper_settings: ClassVar[dict[str, Any]] = {
        "describer": "transformers-mllm", "inpainter": "diffusers-inpaint",
        "classifier": "resnet50", "per_class": PAPER["per_class"], "step": PAPER["step"]}

    def preflight(self, env: MethodEnv) -> None:
        check_backend(env, "image_describer", self.describer, {},
                      "-p synthesizer.describer=vocabulary")
        check_backend(env, "image_generator", self.inpainter, {},
                      "-p synthesizer.inpainter=mini-diffusion")
        check_backend(env, "image_classifier", self.classifier, {},
                      "-p synthesizer.classifier=zero-shot")

    def resolved(self) -> dict[str, float]:
        """The N and r that run: the given ones, or the preset for the in-painter."""
        preset = OFFLINE if self.inpainter in OFFLINE_INPAINTERS else PAPER
        return {"per_class": self.per_class if self.per_class > 0 else preset["per_class"],
                "step": self.step if self.step >= 0 else preset["step"]}

    def synthesize(self, env: MethodEnv, labels: LabelBank | None) -> SampleSet:
        train = env.id_train_images()
        run = self.resolved()
        chosen = select_images(train, int(run["per_class"]), self.selector,
                               env.rng("synood", self.seed))
        inpainter = env.registry.create("image_generator", self.inpainter)
        describer = env.registry.create("image_describer", self.describer)
        describer.bind(env)
        what = {k: v for k, v in self.params().items()
                if not k.startswith("shard_") and k != "threads"}
        # noise-seed/2: start noise seeded by the image's bytes, no longer by its path.
        # grad/decoder-input: the noise steps by ∂L/∂u, u the VAE decoder's input, as the
        # official code does (before: ∂L/∂ẑ₀, 5.49x larger on SD), so images made before are
        # not reused. Not for mini-diffusion, a pixel model whose step never changed (u = ẑ₀):
        # its keys, and the offline records that name its image folder, stay as they were.
        version = ["noise-seed/2"]
        if self.inpainter not in OFFLINE_INPAINTERS:
            version.append("grad/decoder-input")
        key = env.key("synood-images", *version, what, run, inpainter.identity(),
                      describer.identity(), classifier_identity(self.classifier, env),
                      [train.keys[i] for i in chosen])
        folder = env.cache.root / "images" / "synood" / key[:24]
        count = self.shard_count or _env_int("WORLD_SIZE", 1)
        index = self.shard_index if self.shard_index >= 0 else _env_int("RANK", 0)
        mine = chosen[index::count] if count > 1 else chosen
        todo = [i for i in mine if not env.reuse("synthesize")
                or not self._out(folder, i).with_suffix(".json").exists()]
        # a cached image that does not open (truncated, emptied) is made again, alone
        making = set(todo)
        broken = [i for i in mine if i not in making and not image_opens(self._out(folder, i))]
        if broken:
            env.log(f"synood-inpaint: {len(broken)} cached image(s) in {folder} do not open "
                    f"(first: {self._out(folder, broken[0]).name}); making them again")
            making.update(broken)
            todo = [i for i in mine if i in making]
        if todo:
            device = shard_device(env.device)
            shard_env = env if device == env.device else dataclasses.replace(
                env, ctx=dataclasses.replace(env.ctx, device=device))
            with torch_threads(self.threads if device.type == "cpu" else 0):
                self._make(shard_env, train, todo, folder, inpainter, describer, run["step"])
        missing = [i for i in chosen if not self._out(folder, i).with_suffix(".json").exists()]
        if missing:
            # each shard checks after writing its own images, so the last to finish sees them
            # all and carries on; the others stop here with exit status 0
            raise ShardFinished(
                f"synood-inpaint: shard {index} of {count} finished its {len(mine)} images "
                f"(exit status 0); other shards have not made {len(missing)} of the "
                f"{len(chosen)} images yet. The shard that finishes last continues to "
                f"fine-tuning and scoring; if a shard was stopped, rerun the same command (or "
                f"one process) to make the missing images and continue.")
        manifest = [json.loads(self._out(folder, i).with_suffix(".json").read_text())
                    for i in chosen]
        env.notes["synood_images"] = {"count": len(chosen), "folder": str(folder), **run}
        return SampleSet(paths=[self._out(folder, i) for i in chosen], manifest=manifest,
                         meta={"folder": str(folder), "key": key})

    @staticmethod
    def _out(folder: Path, index: int) -> Path:
        return folder / f"{index:07d}.png"

    def _make(self, env: MethodEnv, train: Any, todo: list[int], folder: Path, inpainter: Any,
              describer: Any, step: float) -> None:
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
            pixels = torch.stack([to_tensor(im, size) for im in sources]).to(env.device)
            noise = torch.cat([inpainter.noise(1, noise_seed(self.seed, train.keys[i]))
                               for i in batch])
            made, scores = guided_inpaint(inpainter, classifier, pixels, prompts, noise,
                                          self.iterations, margin, step,
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


def image_opens(path: Path) -> bool:
    """Whether ``path`` is a whole image file (PIL ``verify``: every chunk and its CRC)."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # PIL raises OSError, SyntaxError, struct.error... for broken files
        return False


def noise_seed(seed: int, key: str) -> int:
    """The start-noise seed of one source image: from its bytes (a file) or its dataset
    reference (``hf://...``), never from where the data lies, which differs between machines
    (seeding by path gave other images, and other results, with the data in another folder)."""
    identity = key
    if not key.startswith("hf://"):
        identity = hashlib.sha256(Path(key).read_bytes()).hexdigest()
    return int(content_key(seed, identity)[:8], 16)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (0: unchanged), then restore."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _to_image(pixels: torch.Tensor) -> Image.Image:
    array = (pixels.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
    return Image.fromarray(array.astype(np.uint8))
