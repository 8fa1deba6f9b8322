"""Does mini-diffusion draw what it is asked? Zero-shot accuracy of the mini backbone on its images.

    python benchmarks/diffusion_prompt_following.py [--per-class 20] [--steps 50] [--guidance 3]

For every offline suite (oodbench/suites/offline-*.yaml), ``--per-class`` images per ID class
are generated from "a photo of a {class}." (seeds 0..n-1) and classified zero-shot by the mini
backbone against the suite's classes and prompt templates, exactly as real test images are.
Goal: accuracy >= 0.50 per suite (chance = 1/K). The real test images' accuracy is printed
beside it for scale.

In-painting sanity check, on the suite's real ID test images (``--inpaint-per-class`` per
class): the centre box (half the side) is repainted (a) with the image's own class prompt and
(b) with another class's prompt; reported are the mean absolute error of the *kept* pixels
when the model's own output is used (no pasting back), the accuracy for own-class prompts, and
how often a swapped prompt turns the prediction into the prompted class (vs 1/K by chance).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from oodbench.data.offline import load_offline_source
from oodbench.data.suite import load_suite
from oodbench_mini.diffusion import SAMPLER, MiniDiffusion
from oodbench_mini.model import MiniBackbone, file_sha256

SUITES_DIR = Path(__file__).resolve().parents[1] / "oodbench" / "suites"
PROMPT = "a photo of a {}."


def class_table(backbone: MiniBackbone, classes: list[str], prompts: list[str]) -> torch.Tensor:
    """[K, D] prompt-ensembled class embeddings (as the suites' zero-shot evaluation does)."""
    return F.normalize(
        torch.stack(
            [backbone.encode_texts([p.format(c) for p in prompts]).mean(0) for c in classes]
        ),
        dim=-1,
    )


def predict(backbone: MiniBackbone, table: torch.Tensor, images: list[Image.Image]) -> np.ndarray:
    pre = backbone.preprocess()
    preds = []
    for i in range(0, len(images), 256):
        feats = backbone.encode_images(torch.stack([pre(im) for im in images[i : i + 256]]))
        preds.append((feats @ table.T).argmax(-1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=int)


def centre_mask(size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    mask.paste(255, (w // 4, h // 4, w - w // 4, h - h // 4))
    return mask


def run_suite(
    gen: MiniDiffusion,
    backbone: MiniBackbone,
    suite_path: Path,
    per_class: int,
    inpaint_per_class: int,
    save_dir: Path | None,
) -> dict:
    suite = load_suite(suite_path)
    classes, prompts = list(suite.classes), list(suite.prompts)
    table = class_table(backbone, classes, prompts)
    k = len(classes)
    # text-to-image
    texts = [PROMPT.format(c) for c in classes for _ in range(per_class)]
    labels = np.repeat(np.arange(k), per_class)
    seeds = [i for _ in classes for i in range(per_class)]
    start = time.perf_counter()
    images = gen.text_to_image(texts, seeds)
    gen_s = time.perf_counter() - start
    pred = predict(backbone, table, images)
    per_cls = {c: round(float((pred[labels == i] == i).mean()), 3) for i, c in enumerate(classes)}
    result: dict = {
        "classes": classes,
        "chance": round(1 / k, 3),
        "images": len(images),
        "t2i_accuracy": round(float((pred == labels).mean()), 4),
        "t2i_per_class": per_cls,
        "t2i_seconds": round(gen_s, 1),
    }
    if save_dir is not None:
        grid(images, per_class).save(save_dir / f"{suite.name}-t2i.png")
    # real test images, for scale
    paths, keys = load_offline_source(suite.id_test)
    real = [Image.open(p) for p in paths]
    real_labels = np.array([classes.index(key) for key in keys])
    result["real_test_accuracy"] = round(
        float((predict(backbone, table, real) == real_labels).mean()), 4
    )
    if inpaint_per_class <= 0:
        return result
    # in-painting sanity check on a few real ID test images per class
    rng = np.random.default_rng(0)
    picked = [
        int(j)
        for i in range(k)
        for j in rng.permutation(np.flatnonzero(real_labels == i))[:inpaint_per_class]
    ]
    sources = [real[j].convert("RGB") for j in picked]
    own = [int(real_labels[j]) for j in picked]
    other = [(c + 1 + int(rng.integers(k - 1))) % k if k > 1 else c for c in own]
    masks = [centre_mask(im.size) for im in sources]
    keep_flag = gen.keep_unmasked
    gen.keep_unmasked = False  # judge the model's own pixels outside the mask
    try:
        same = gen.inpaint(
            sources,
            [PROMPT.format(classes[c]) for c in own],
            list(range(len(sources))),
            masks=masks,
        )
        swapped = gen.inpaint(
            sources,
            [PROMPT.format(classes[c]) for c in other],
            list(range(len(sources))),
            masks=masks,
        )
    finally:
        gen.keep_unmasked = keep_flag
    size = (gen.size, gen.size)
    keep = np.asarray(centre_mask(size)) == 0
    errs = [
        np.abs(
            np.asarray(o, np.float32)
            - np.asarray(s.resize(size, Image.Resampling.BICUBIC), np.float32)
        )[keep].mean()
        / 255
        for o, s in zip(same, sources, strict=True)
    ]
    result["inpaint"] = {
        "images": len(sources),
        "mask": "centre box, half the side (25% of the area)",
        "kept_pixels_mae": round(float(np.mean(errs)), 4),
        "own_prompt_accuracy": round(
            float((predict(backbone, table, same) == np.array(own)).mean()), 4
        ),
        "swapped_prompt_hits": round(
            float((predict(backbone, table, swapped) == np.array(other)).mean()), 4
        ),
        "source_accuracy": round(
            float((predict(backbone, table, sources) == np.array(own)).mean()), 4
        ),
    }
    if save_dir is not None:
        grid(sources + same + swapped, len(sources)).save(save_dir / f"{suite.name}-inpaint.png")
    return result


def grid(images: list[Image.Image], cols: int) -> Image.Image:
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    out = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        out.paste(im.convert("RGB").resize((w, h)), ((i % cols) * w, (i // cols) * h))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default="", help="mini-diffusion safetensors file")
    parser.add_argument("--backbone-weights", default="", help="mini image-tower file")
    parser.add_argument(
        "--suite",
        action="append",
        default=None,
        help="suite YAML (repeatable; default all offline-*.yaml)",
    )
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--inpaint-per-class", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-dir", type=Path, default=None, help="write image grids here")
    parser.add_argument(
        "--save-eval",
        action="store_true",
        help="write evaluation.json next to the weights (README picks it up)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = MiniDiffusion(
        weights=args.weights, steps=args.steps, guidance=args.guidance, size=args.size
    )
    gen.load("cpu")
    backbone = MiniBackbone(weights=args.backbone_weights)
    backbone.load(torch.device("cpu"))
    if args.save_dir is not None:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    suites = (
        [Path(s) for s in args.suite] if args.suite else sorted(SUITES_DIR.glob("offline-*.yaml"))
    )
    results = {}
    for path in suites:
        r = run_suite(gen, backbone, path, args.per_class, args.inpaint_per_class, args.save_dir)
        results[path.stem] = r
        print(
            f"{path.stem}: text-to-image zero-shot accuracy {r['t2i_accuracy']:.3f} on "
            f"{r['images']} images (chance {r['chance']:.3f}; real test images "
            f"{r['real_test_accuracy']:.3f}) per class {r['t2i_per_class']}",
            flush=True,
        )
        if "inpaint" in r:
            ip = r["inpaint"]
            print(
                f"  in-painting: kept-pixel MAE {ip['kept_pixels_mae']:.3f}, own-prompt "
                f"accuracy {ip['own_prompt_accuracy']:.3f} (sources "
                f"{ip['source_accuracy']:.3f}), swapped prompt hits "
                f"{ip['swapped_prompt_hits']:.3f}",
                flush=True,
            )
    mean = float(np.mean([r["t2i_accuracy"] for r in results.values()]))
    print(f"mean text-to-image accuracy over {len(results)} suites: {mean:.3f}")
    record = {
        "sha256": file_sha256(gen.weights_path),
        "backbone": backbone.fingerprint(),
        "settings": {
            "per_class": args.per_class,
            "steps": args.steps,
            "guidance": args.guidance,
            "scheduler": gen.scheduler,
            "sampler": SAMPLER,
            "size": args.size,
            "prompt": PROMPT,
        },
        "mean_t2i_accuracy": round(mean, 4),
        "suites": results,
    }
    print(json.dumps(record, indent=1))
    if args.save_eval:
        (gen.weights_path.parent / "evaluation.json").write_text(
            json.dumps(record, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
