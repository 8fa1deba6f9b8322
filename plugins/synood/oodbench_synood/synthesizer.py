"""SynOOD's synthesizer: MLLM context prompts + energy-guided in-painting of ID train images.

Per selected ID image: the describer lists what the image shows besides its class; the prompt
"A photo only remain {answer[:73]}." (the paper's template, kept verbatim as the default) drives
a whole-image in-painting at strength 0.6 whose start noise is refined K times by the gradient
of the guidance loss. Each image is written with a manifest entry, atomically, as soon as it
is made: an interrupted run resumes where it stopped. Under ``accelerate launch`` / torchrun
each process makes its share of whole batches (:meth:`oodbench.shards.Processes.share`), on its
own device, and the manifests are gathered, so every process continues with every image.
``shard_index``/``shard_count`` split the images by hand across separate runs without a
launcher (a strided slice each); such a run stops with an error while other slices are missing.

``per_class`` and ``step`` default to "auto": the paper's N = 50 and r = 10 (SD-2-inpainting +
ResNet-50), or the offline settings below when the in-painter is the CPU ``mini-diffusion``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image

from oodbench import shards
from oodbench.cache import atomic_write, atomic_write_text, content_key
from oodbench.env import MethodEnv
from oodbench.errors import OODBenchError, ParameterError
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


@dataclasses.dataclass
class SynOODSynthesizer(Synthesizer):
    name = "synood-inpaint"
    description = "SynOOD: MLLM context prompt + energy-guided iterative in-painting."
    per_class: int = 0  # N images per ID class; 0 = auto (50, the paper; 4 offline)
    selector: Literal["complexity", "random", "first"] = "complexity"  # complexity: bytes/pixel
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
    # split by hand across separate runs (no launcher): slice shard_index::shard_count; the
    # defaults (-1, 0) leave the split to the launch (accelerate launch / torchrun), if any
    shard_index: int = -1
    shard_count: int = 0

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
        self._split_by_hand(shards.processes(env.device))

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
        procs = shards.processes(env.device)
        mine = self._share(chosen, procs)
        todo = self._todo(env, folder, mine)
        if todo:
            batches = [mine[k : k + self.batch_size] for k in range(0, len(mine), self.batch_size)]
            with torch_threads(self.threads if env.device.type == "cpu" else 0):
                self._make(env, train, batches, set(todo), folder, inpainter, describer,
                           run["step"])
        made: dict[int, dict[str, Any]] = {}
        for part in procs.gather(self._manifest(folder, mine)):  # every process's images
            made.update(part)
        made.update(self._manifest(folder, [i for i in chosen if i not in made]))
        missing = [i for i in chosen if i not in made]
        if missing:
            raise OODBenchError(
                f"synood-inpaint: made {len(mine)} images (shard {self.shard_index} of "
                f"{self.shard_count}); {len(missing)} of the {len(chosen)} images are not made "
                f"yet in {folder}. Run the other shards, then this command again to score; or "
                f"split one launch instead: accelerate launch -m oodbench run ...")
        env.notes["synood_images"] = {"count": len(chosen), "folder": str(folder), **run}
        return SampleSet(paths=[self._out(folder, i) for i in chosen],
                         manifest=[made[i] for i in chosen],
                         meta={"folder": str(folder), "key": key})

    def _share(self, chosen: list[int], procs: shards.Processes) -> list[int]:
        """The chosen images this process makes: its share of whole batches under a launcher,
        the ``shard_index::shard_count`` slice when split by hand, else all of them."""
        if not self._split_by_hand(procs):
            rows = procs.share(len(chosen), self.batch_size)
            return chosen[rows.start : rows.stop]
        return chosen[self.shard_index :: self.shard_count]

    def _split_by_hand(self, procs: shards.Processes) -> bool:
        """Whether shard_index/shard_count are given (checked: both, and without a launch)."""
        if self.shard_count <= 0 and self.shard_index < 0:
            return False
        if procs.count > 1:
            raise ParameterError("synood-inpaint.shard_index/shard_count split separate runs "
                                 "by hand; under accelerate launch / torchrun the launch splits "
                                 "the images: drop both parameters.")
        if not 0 <= self.shard_index < self.shard_count:
            raise ParameterError(f"synood-inpaint.shard_index must be in 0..shard_count-1 and "
                                 f"both be given, got shard_index={self.shard_index}, "
                                 f"shard_count={self.shard_count}.")
        return True

    def _todo(self, env: MethodEnv, folder: Path, mine: list[int]) -> list[int]:
        """The images of ``mine`` to make: not made yet (all of them when the run recomputes
        synthesis), and cached ones that do not open (truncated, emptied), made again."""
        todo = [i for i in mine if not env.reuse("synthesize")
                or not self._out(folder, i).with_suffix(".json").exists()]
        making = set(todo)
        broken = [i for i in mine if i not in making and not image_opens(self._out(folder, i))]
        if broken:
            env.log(f"synood-inpaint: {len(broken)} cached image(s) in {folder} do not open "
                    f"(first: {self._out(folder, broken[0]).name}); making them again")
            making.update(broken)
            todo = [i for i in mine if i in making]
        return todo

    @classmethod
    def _manifest(cls, folder: Path, indices: list[int]) -> dict[int, dict[str, Any]]:
        """The manifest entries of those of ``indices`` whose image has been made."""
        entries = {}
        for i in indices:
            sidecar = cls._out(folder, i).with_suffix(".json")
            if sidecar.exists():
                entries[i] = json.loads(sidecar.read_text())
        return entries

    @staticmethod
    def _out(folder: Path, index: int) -> Path:
        return folder / f"{index:07d}.png"

    def _make(self, env: MethodEnv, train: Any, batches: list[list[int]], todo: set[int],
              folder: Path, inpainter: Any, describer: Any, step: float) -> None:
        """Write the images of ``todo``. Each batch that holds one is made whole, so that an
        image made again (a resumed run) comes out as in an uninterrupted run: the batch's
        images are guided together (the guidance score is their mean)."""
        classifier = make_classifier(self.classifier, env)
        margin = effective_margin(self.margin, classifier.num_classes, self.relative_margin)
        update = env.progress("synthesize (synood)", len(todo)) if env.progress else None
        done = 0
        for batch in [b for b in batches if todo.intersection(b)]:
            sources = [train.open(i) for i in batch]
            classes = [env.suite.classes[int(train.labels[i])] for i in batch]
            answers = describer.context(sources, classes)
            prompts = [self.prompt_template.format(a[: self.answer_chars]) for a in answers]
            pixels = torch.stack([to_tensor(im, inpainter.resolution)
                                  for im in sources]).to(env.device)
            noise = torch.cat([inpainter.noise(1, noise_seed(self.seed, train.keys[i]))
                               for i in batch])
            made, scores = guided_inpaint(inpainter, classifier, pixels, prompts, noise,
                                          self.iterations, margin, step,
                                          self.strength, self.steps, self.guidance)
            for j, i in enumerate(batch):
                if i not in todo:
                    continue
                out = self._out(folder, i)
                image = _to_image(made[j])
                atomic_write(out, lambda tmp, im=image: im.save(tmp, format="PNG"))
                entry = {"path": str(out), "source": train.keys[i], "label": int(train.labels[i]),
                         "class": classes[j], "answer": answers[j], "prompt": prompts[j],
                         "guidance_scores": scores, "seed": self.seed}
                atomic_write_text(out.with_suffix(".json"), json.dumps(entry))
                done += 1
            if update:
                update(done, len(todo))


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
