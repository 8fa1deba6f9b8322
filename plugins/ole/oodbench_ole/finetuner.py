"""``ole-prototypes``: replaces the head's extra label embeddings by OLE's outlier set.

It acts only on text embeddings (no images, no gradient), so any method with a label
generator can reuse it. The clustering of the outlier labels is the expensive step (sklearn
needs tens of minutes for 10k labels with full covariance on a CPU; our low-rank EM in
``oodbench_ole.gmm`` gives the same mixture in ~20 s), so its prototypes are also cached on disk,
keyed by the backbone, the ID classes, the clustering parameters and a hash of the label
embeddings.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from oodbench.cache import atomic_write
from oodbench.errors import OODBenchError
from oodbench.interfaces import FineTuner
from oodbench.types import SampleSet, TextHead
from oodbench_ole.prototypes import (
    Covariance,
    GMMSolver,
    HOPGConfig,
    assemble,
    cluster,
    normalize_rows,
)
from oodbench_ole.templates import resolve_templates

if TYPE_CHECKING:
    from oodbench.env import MethodEnv


def embedding_hash(x: np.ndarray) -> str:
    """Hash of the exact embeddings (float32 bytes and shape): new labels, new prototypes."""
    data = np.ascontiguousarray(x, dtype=np.float32)
    return hashlib.sha256(repr(data.shape).encode() + data.tobytes()).hexdigest()


@dataclasses.dataclass
class OLEPrototypes(FineTuner):
    """Outlier prototype learning + refinement + in-between prototypes (OLE, IJCNN'24)."""

    name = "ole-prototypes"
    description = ("OLE outlier prototypes: mixture means of the outlier label embeddings, "
                   "refined against ID, plus generated in-between prototypes.")
    n_prototypes: int = 500  # K, clamped to the number of distinct labels
    covariance: Covariance = "full"  # "kmeans": the mixture's k-means start, fast
    quantile: float = 0.1  # theta = this quantile of the prototypes' max ID cosine
    min_keep: int = 1  # prototypes kept even if none is strictly below theta
    generate: bool = True  # hard outlier prototype generation (in-between prototypes)
    id_components: int = 5  # ID mixture components, clamped to the number of classes
    boundary_per_component: int = 30  # clamped to the component size
    id_covariance: Covariance = "full"
    lambda_min: float = 0.0  # weight of the ID vector in g ~ U(lambda_min, lambda_max)
    lambda_max: float = 0.5
    seed: int = 42  # random_state of both mixtures and the seed of the lambda draws
    reg_covar: float = 1e-6
    max_iter: int = 100
    tol: float = 1e-3  # EM stops when the mean log-likelihood changes less (sklearn default)
    # full covariance: "woodbury" = our exact low-rank EM (seconds), "sklearn" = GaussianMixture
    gmm_solver: GMMSolver = "woodbury"
    # ID embeddings for refinement and scoring: a template set (auto, ole128 = the paper's
    # prompt kinds, clip64, with64, suite) or '|'-separated templates; "head" keeps the head's
    id_templates: str = "auto"

    def __post_init__(self) -> None:
        if self.n_prototypes < 1 or self.id_components < 1 or self.boundary_per_component < 1:
            raise ValueError("n_prototypes, id_components and boundary_per_component must be >= 1")
        if not 0.0 <= self.quantile <= 1.0:
            raise ValueError("quantile must lie in [0, 1]")
        if not 0.0 <= self.lambda_min <= self.lambda_max <= 1.0:
            raise ValueError("need 0 <= lambda_min <= lambda_max <= 1")
        if self.min_keep < 0:
            raise ValueError("min_keep must be >= 0")
        if self.reg_covar <= 0 or self.tol < 0 or self.max_iter < 1:
            raise ValueError("need reg_covar > 0, tol >= 0 and max_iter >= 1")

    def finetune(self, env: MethodEnv, head: TextHead, samples: SampleSet | None) -> TextHead:
        if head.extra_features is None or head.extra_features.shape[0] == 0:
            raise OODBenchError(f"{self.name} needs outlier label embeddings: give the method "
                                f"a label generator (e.g. ole-outliers).")
        if self.id_templates != "head":
            templates = resolve_templates(self.id_templates, env.suite.prompts,
                                          env.backbone_name)
            head = head.replace(id_features=env.id_text_features(templates))
        id_emb = normalize_rows(head.id_features.double().numpy())
        prototypes = self.prototypes(env, normalize_rows(head.extra_features.double().numpy()))
        hopg = HOPGConfig(self.generate, self.id_components, self.boundary_per_component,
                          self.id_covariance, self.seed, self.lambda_min, self.lambda_max,
                          self.reg_covar, self.max_iter, self.tol, self.gmm_solver)
        out = assemble(prototypes, id_emb, self.quantile, hopg, self.min_keep)
        env.notes[self.name] = {"labels": int(head.extra_features.shape[0]), **out.summary}
        env.log(f"{self.name}: {out.summary['kept_prototypes']}/{len(prototypes)} prototypes "
                f"below theta={out.summary['theta']:.4f}, {out.summary['kept_between']}/"
                f"{out.summary['boundary']} in-between kept, |O|={len(out.vectors)}")
        features = torch.from_numpy(out.vectors).to(head.id_features.dtype)
        return head.replace(extra_features=features, extra_labels=out.labels)

    def prototypes(self, env: MethodEnv, labels: np.ndarray) -> np.ndarray:
        """Normalised cluster means of the label embeddings, from the cache when possible."""
        clustering = {"k": self.n_prototypes, "covariance": self.covariance, "seed": self.seed,
                      "reg_covar": self.reg_covar, "max_iter": self.max_iter, "tol": self.tol,
                      "solver": self.gmm_solver if self.covariance == "full" else ""}
        key = env.key("ole-prototypes/2", clustering, embedding_hash(labels))
        path = env.cache.path("ole", key, ".npy")
        if env.reuse("finetune") and path.exists():
            try:
                cached = np.load(path)
                if cached.ndim == 2 and cached.shape[1] == labels.shape[1]:
                    env.log(f"{self.name}: {len(cached)} prototypes from cache")
                    return cached
            except (OSError, ValueError):
                pass  # a corrupt entry is recomputed
        env.log(f"{self.name}: clustering {len(labels)} label embeddings into "
                f"{min(self.n_prototypes, len(labels))} prototypes ({self.covariance})")
        means, _ = cluster(labels, self.n_prototypes, self.covariance, self.seed,
                           self.reg_covar, self.max_iter, self.tol, self.gmm_solver)
        result = np.ascontiguousarray(normalize_rows(means), dtype=np.float64)

        def write(tmp: object) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.save on a path appends ".npy"
                np.save(handle, result)

        atomic_write(path, write)
        return result
