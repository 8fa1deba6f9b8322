"""Does the energy guidance move the guidance classifier the way SynOOD intends? A check on ID
*train* images only (no evaluation image is read), used to pick the step r for a new in-painter.

    python -m oodbench_synood.probe --suite offline-far --per-class 3 --steps 0,0.03,0.1,0.3,10

For the first ``per-class`` selected train images of every class it runs the guided in-painting
with each step r and prints, per iteration k, the mean guidance score s (its maximum is −log C,
a flat posterior), the classifier's max softmax and its accuracy on the source class. The
intended behaviour: s rises towards the margin and the confidence falls with k (images move
towards the ID/OOD boundary); r = 0 is plain in-painting.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from oodbench.cache import ArtifactCache
from oodbench.env import MethodEnv
from oodbench.features import FeatureStore
from oodbench.paths import cache_dir
from oodbench.plugins import get_registry
from oodbench.runner import resolve_suite
from oodbench.types import RunContext
from oodbench_synood.classifiers import make_classifier
from oodbench_synood.guidance import effective_margin, energy_guidance_score, noise_gradient
from oodbench_synood.select import select_images
from oodbench_synood.synthesizer import SynOODSynthesizer, noise_seed, to_tensor


@dataclass
class Step:
    """One guided iteration, averaged over the probed images."""

    score: float  # s = mean(g) − logsumexp(g)
    confidence: float  # max softmax of the classifier
    accuracy: float  # argmax == the source image's class
    moved: float  # ‖r·∂L/∂ẑ₀‖ / ‖ε‖: how far the update moves the noise


def make_env(suite_name: str, device: str = "cpu") -> MethodEnv:
    registry = get_registry()
    suite = resolve_suite(registry, suite_name)
    name = suite.backbone or "mini"
    backbone = registry.create("backbone", name, {})
    ctx = RunContext(device=torch.device(device), cache_dir=cache_dir())
    backbone.load(ctx.device, ctx.dtype)
    return MethodEnv(ctx, backbone, name, suite, FeatureStore(ArtifactCache(ctx.cache_dir)),
                     registry)


def probe(env: MethodEnv, synth: SynOODSynthesizer, per_class: int,
          steps: Sequence[float]) -> dict[float, list[Step]]:
    """{r: one Step per iteration}, on the first ``per_class`` selected train images per class."""
    train = env.id_train_images()
    chosen = select_images(train, per_class, synth.selector, env.rng("synood", synth.seed))
    inpainter = env.registry.create("image_generator", synth.inpainter)
    describer = env.registry.create("image_describer", synth.describer)
    describer.bind(env)
    inpainter.load(env.device)
    classifier = make_classifier(synth.classifier, env)
    margin = effective_margin(synth.margin, classifier.num_classes, synth.relative_margin)
    sources = [train.open(i) for i in chosen]
    labels = torch.as_tensor(train.labels[chosen])
    answers = describer.context(sources, [env.suite.classes[int(y)] for y in labels])
    prompts = [synth.prompt_template.format(a[: synth.answer_chars]) for a in answers]
    pixels = torch.stack([to_tensor(im, inpainter.resolution) for im in sources]).to(env.device)
    noise = torch.cat([inpainter.noise(1, noise_seed(synth.seed, train.keys[i]))
                       for i in chosen])
    latents = inpainter.encode(pixels)
    out: dict[float, list[Step]] = {}
    for r in steps:
        eps, rows = noise.clone(), []
        for _ in range(synth.iterations):
            with torch.no_grad():
                denoised = inpainter.denoise(latents, eps, prompts, synth.strength, synth.steps,
                                             synth.guidance)
            with torch.enable_grad():
                grad, images = noise_gradient(inpainter.decode, classifier, denoised, margin,
                                              inpainter.guidance_latent_scale)
            with torch.no_grad():
                logits = classifier(images).float().cpu()
            rows.append(Step(float(energy_guidance_score(logits).mean()),
                             float(torch.softmax(logits, 1).max(1).values.mean()),
                             float((logits.argmax(1) == labels).float().mean()),
                             float((r * grad).flatten(1).norm(dim=1).mean()
                                   / eps.flatten(1).norm(dim=1).mean())))
            eps = eps - r * grad.to(eps.dtype)
        out[r] = rows
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="offline-far")
    parser.add_argument("--per-class", type=int, default=3)
    parser.add_argument("--steps", default="0,0.03,0.1,0.3,1,10")
    parser.add_argument("-p", "--param", action="append", default=[],
                        help="synood-inpaint parameter, key=value (e.g. iterations=3)")
    args = parser.parse_args(argv)
    env = make_env(args.suite)
    synth = SynOODSynthesizer.from_params(dict(p.split("=", 1) for p in args.param))
    results = probe(env, synth, args.per_class, [float(s) for s in args.steps.split(",")])
    classes = len(env.suite.classes)
    print(f"{args.suite}: {args.per_class} train images per class, C = {classes}, "
          f"max s = {-math.log(classes):.2f}")
    for r, rows in results.items():
        cells = " | ".join(f"k{k}: s {x.score:6.2f} conf {x.confidence:.2f} acc {x.accuracy:.2f}"
                           f" moved {x.moved:.2f}" for k, x in enumerate(rows))
        print(f"r = {r:<6g} {cells}")


if __name__ == "__main__":
    main()
