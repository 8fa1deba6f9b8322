"""Zero-shot ID accuracy and MCM AUROC of the mini backbone on every offline suite.

    python benchmarks/mini_zero_shot.py [--weights PATH] [--data-dir DIR]

MCM score = max softmax over the ID classes of cos / T with T = 1; AUROC with ID positive.
Goals: ID accuracy >= 0.80 per suite, far-OOD AUROC >= 0.85, near-OOD clearly lower.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from oodbench_mini.evaluate import SUITES_DIR, evaluate_suite
from oodbench_mini.model import MiniBackbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default="", help="image-tower safetensors file")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    import yaml

    torch.set_num_threads(2)
    start = time.perf_counter()
    backbone = MiniBackbone(weights=args.weights)
    backbone.load(torch.device("cpu"))
    load_s = time.perf_counter() - start
    results = {}
    for f in sorted(SUITES_DIR.glob("offline-*.yaml")):
        results[f.stem] = evaluate_suite(backbone, yaml.safe_load(f.read_text()), args.data_dir)
    if args.json:
        print(json.dumps({"load_s": round(load_s, 2), "suites": results}, indent=1))
        return
    print(f"mini backbone loaded in {load_s:.2f} s ({backbone.fingerprint()})")
    for suite, r in results.items():
        print(f"\n{suite}: ID accuracy {r['id_acc']:.4f} on {r['id_images']} images")
        for name, o in r["ood"].items():
            print(
                f"  {o['group']:4s} {name:16s} {o['images']:5d} images  "
                f"MCM AUROC {o['mcm_auroc']:.4f}"
            )
        for group in ("near", "far"):
            if f"{group}_auroc" in r:
                print(f"  mean {group} AUROC {r[f'{group}_auroc']:.4f}")


if __name__ == "__main__":
    main()
