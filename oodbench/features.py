"""Encode images and texts once per (backbone fingerprint, data) and cache them on disk.

Every method on the same backbone reuses the cached features: a second method on a suite does
not decode or encode a single image. Entries are ``.npy`` arrays with a JSON sidecar, both
written atomically (:mod:`oodbench.feature_files`); the sidecar is written last, so an entry
without one is incomplete and is recomputed. The encoding loops are :mod:`oodbench.encoding`.

The cache never lies:

* Image keys. An image folder is keyed by the SHA-256 of every file's *content* (with its
  listing: relative paths, sizes, labels; see ``ImageList.fingerprint``), not by path + size:
  an image rewritten in place with the same size gets new features. Full content hashes, not
  size + mtime + a partial hash, because they also let the runner find an OOD set that shares
  images with the ID set, and a copied or ``touch``-ed folder keeps its features. The cost is
  one read of every file on the first run (the encoding reads them anyway); the digests are
  memoised per (path, size, mtime_ns, ctime_ns, inode) in ``<cache>/content-index``
  (:class:`oodbench.cache.ContentIndex`), so a re-run costs one ``stat`` per file. Offline and
  Hugging Face sets keep their own keys (pinned packages; dataset revision + rows).
* Read failures are not permanent. Only encoded rows are features; images that could not be
  read are listed in the sidecar, and a run that finds such an entry tries those images again
  (a file deleted mid-run and restored is encoded then, and the entry rewritten).
* Entries are checked when read: the sidecar's fields, the array's shape (rows x the backbone's
  width), dtype (float32), finite values, and its SHA-256, stored in the sidecar when written
  (text embeddings have a sidecar too). An entry that fails is recomputed, with one log line
  ``features X: cache entry invalid (reason); recomputing``; one written before checksums
  existed is recomputed once the same way.

Under a launcher (``accelerate launch`` / ``torchrun``, see :mod:`oodbench.shards`) an image
list that is not cached everywhere is encoded in parts: each process encodes its share of whole
batches, writes it under ``feature-parts/`` (keyed by the list's key + its rows), and the parts
are gathered, so that every process has every feature; the main process writes the whole list
under the single-process key. A restarted launch reuses every part already written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from oodbench import shards
from oodbench.backbones.base import Backbone, TensorPreprocess
from oodbench.cache import ArtifactCache, ContentIndex, content_key
from oodbench.data.sources import ImageList
from oodbench.decode import decode_key_part, decode_plan
from oodbench.encoding import (
    EncodeStats,
    Progress,
    compute_key_part,
    encode_images,
    encode_images_gpu,
)
from oodbench.feature_files import load_entry, rows_of, save_entry
from oodbench.types import FeatureSet, RunContext

__all__ = ["EncodeStats", "FeatureStore", "Progress"]
_logger = logging.getLogger(__name__)


class FeatureStore:
    """Cached image and text features for one cache directory.

    ``log`` receives one-line notes (also kept in ``stats.notes``); without it they go to the
    ``oodbench.features`` logger as warnings. ``processes``: the processes image encoding is
    split across (None: the launch's, :func:`oodbench.shards.processes`; one process without
    a launcher).
    """

    def __init__(self, cache: ArtifactCache, log: Callable[[str], None] | None = None,
                 processes: shards.Processes | None = None) -> None:
        self.cache = cache
        self.stats = EncodeStats()
        self.log = log
        self.processes = processes
        self.index = ContentIndex(cache.root)  # image files' content digests, memoised
        # backbone fingerprint -> text -> (features tensor, row): texts seen by this store
        self._memo: dict[str, dict[str, tuple[torch.Tensor, int]]] = {}

    def _processes(self, ctx: RunContext) -> shards.Processes:
        return self.processes if self.processes is not None else shards.processes(ctx.device)

    # -- images ------------------------------------------------------------------------------
    def image_key(self, backbone: Backbone, images: ImageList,
                  ctx: RunContext | None = None) -> str:
        """The cache key; ``ctx`` matters when ``images`` take the GPU decode path and when it
        computes in another dtype than float32 (None: a float32 run on the CPU path)."""
        spec = decode_plan(backbone, images, ctx)[0] if ctx is not None else None
        images.use_index(self.index)
        if ctx is None:
            return self._key(backbone, images, spec, torch.device("cpu"))
        return self._key(backbone, images, spec, ctx.device, ctx.dtype)

    @staticmethod
    def _key(backbone: Backbone, images: ImageList, spec: TensorPreprocess | None,
             device: torch.device, dtype: torch.dtype = torch.float32) -> str:
        # float32 on the CPU decode path: the key existing caches were written under
        parts: list[Any] = [] if spec is None else [decode_key_part(spec, device)]
        compute = compute_key_part(device, dtype)
        if compute is not None:
            parts.append(compute)
        return content_key("image-features/1", backbone.fingerprint(), images.fingerprint,
                           *parts)

    def note(self, message: str) -> None:
        """Log ``message`` once per store and keep it in ``stats.notes``."""
        if message in self.stats.notes:
            return
        self.stats.notes.append(message)
        if self.log is not None:
            self.log(message)
        else:
            _logger.warning(message)

    def images(self, backbone: Backbone, images: ImageList, ctx: RunContext,
               progress: Progress | None = None) -> FeatureSet:
        spec, why_not = decode_plan(backbone, images, ctx)
        images.use_index(self.index)
        key = self._key(backbone, images, spec, ctx.device, ctx.dtype)
        cached, rows = self._cached(key, backbone, images)
        procs = self._processes(ctx)
        split = procs.count > 1 and len(images) > 0
        # under a launcher all processes take the same path, whatever one of them finds
        if split and not procs.agree(f"encode {images.name} {key[:12]}", cached is not None):
            cached = None
        if cached is not None and rows is not None:
            self.stats.cache_hits += 1
            return self._retry_skipped(backbone, images, ctx, spec, key, cached, rows,
                                       procs.is_main)
        if why_not:
            self.note(why_not)
        if split:
            result = self._sharded(backbone, images, ctx, spec, key, procs, progress)
        else:
            result = self._encode(backbone, images, ctx, spec, progress)
        if procs.is_main:
            self._save(key, result, images.name)
        return result

    def _cached(self, key: str, backbone: Backbone,
                images: ImageList) -> tuple[FeatureSet | None, list[int] | None]:
        """The valid cached entry of ``images`` and the index of each of its rows in the list
        (None, None: none, or one to recompute)."""
        cached = self._load(key, dim=backbone.embed_dim, what=images.name)
        if cached is None:
            return None, None
        rows = rows_of(images.keys, cached.paths)
        if rows is None:
            self._say(f"features {images.name}: cache entry invalid (its paths are not "
                      f"images of the set); recomputing")
            return None, None
        return cached, rows

    def _retry_skipped(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                       spec: TensorPreprocess | None, key: str, cached: FeatureSet,
                       rows: list[int], write: bool = True) -> FeatureSet:
        """A cached entry plus the images it has no row for (unreadable when it was written),
        read again: a read failure is never cached as permanent. The entry is rewritten (when
        ``write``) when any of them is encoded now."""
        have = set(rows)
        missing = [i for i in range(len(images)) if i not in have]
        if not missing:
            return cached
        self._say(f"features {images.name}: trying again {len(missing)} image(s) that could "
                  f"not be read when the cache entry was written")
        fresh = self._encode(backbone, images, ctx, spec, None, missing)
        if len(fresh) == 0:
            return FeatureSet(cached.features, cached.labels, cached.paths, fresh.skipped)
        where = {images.keys[i]: i for i in missing}
        at = rows + [where[p] for p in fresh.paths]  # each row's index in ``images``
        order = sorted(range(len(at)), key=at.__getitem__)
        both = torch.cat([cached.features, fresh.features])
        labels = np.concatenate([cached.labels, fresh.labels])
        paths = cached.paths + fresh.paths
        merged = FeatureSet(both[order], labels[order], [paths[j] for j in order],
                            fresh.skipped)
        if write:
            self._save(key, merged, images.name)
        return merged

    def _encode(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                spec: TensorPreprocess | None, progress: Progress | None,
                rows: Sequence[int] | None = None) -> FeatureSet:
        """Encode ``images`` (only ``rows`` of it when given; None = all)."""
        start = time.perf_counter()
        if spec is None:
            feats, kept, skipped = encode_images(backbone, images, ctx, self.stats, progress,
                                                 rows)
        else:
            if ctx.device.type != "cuda":
                self.note("decode gpu on a CPU device: JPEGs are decoded in the main process "
                          "(libjpeg-turbo), which is slower than --decode cpu; meant for tests")
            feats, kept, skipped = encode_images_gpu(backbone, images, ctx, self.stats, spec,
                                                     progress, rows)
        self.stats.seconds += time.perf_counter() - start
        return FeatureSet(
            features=feats,
            labels=images.labels[kept] if len(kept) else np.zeros(0, dtype=np.int64),
            paths=[images.keys[i] for i in kept],
            skipped=[(images.keys[i], why) for i, why in skipped],
        )

    def _sharded(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                 spec: TensorPreprocess | None, key: str, procs: shards.Processes,
                 progress: Progress | None) -> FeatureSet:
        """This process's share of ``images`` (its part entry, or encoded and written as one),
        then every process's part, gathered and joined in the list's order."""
        rows = procs.share(len(images), ctx.batch_size)
        part: FeatureSet | None = None
        if rows:
            part_key = content_key(key, "rows", rows.start, rows.stop)
            part = self._load(part_key, "feature-parts", backbone.embed_dim, images.name)
            if part is None:
                part = self._encode(backbone, images, ctx, spec, progress, rows)
                self._save(part_key, part, images.name, "feature-parts")
        parts = [p for p in procs.gather(part) if p is not None]
        if progress:
            progress(len(images), len(images))
        return FeatureSet(torch.cat([p.features for p in parts]),
                          np.concatenate([p.labels for p in parts]).astype(np.int64),
                          [path for p in parts for path in p.paths],
                          [skip for p in parts for skip in p.skipped])

    def _say(self, message: str) -> None:
        """A progress line for the run's log (not a note: records stay as unsharded ones)."""
        if self.log is not None:
            self.log(message)
        else:
            _logger.info(message)

    def _save(self, key: str, fs: FeatureSet, name: str, kind: str = "features") -> None:
        meta = {"name": name, "rows": len(fs), "labels": fs.labels.tolist(), "paths": fs.paths,
                "skipped": fs.skipped}
        save_entry(self.cache.path(kind, key, ".npy"), fs.features.numpy(), meta)

    def _load(self, key: str, kind: str = "features", dim: int | None = None,
              what: str = "") -> FeatureSet | None:
        """The entry under ``key`` if it is whole and valid; an invalid one is logged (one
        line) and None is returned, so that it is recomputed and overwritten."""
        array_path = self.cache.path(kind, key, ".npy")
        if not self.cache.path(kind, key, ".json").exists():
            return None  # nothing there, or killed before the sidecar: incomplete
        got = load_entry(array_path, dim)
        if isinstance(got, str):
            self._say(f"features {what or key[:12]}: cache entry invalid ({got}); recomputing")
            return None
        array, meta = got
        return FeatureSet(torch.from_numpy(array), np.asarray(meta["labels"], dtype=np.int64),
                          meta["paths"], [(str(p), str(r)) for p, r in meta["skipped"]])

    # -- texts -------------------------------------------------------------------------------
    def texts(self, backbone: Backbone, texts: Sequence[str], ctx: RunContext) -> torch.Tensor:
        """[len(texts), D] normalised embeddings, cached by backbone and the exact texts.
        Under a launcher every process encodes them in full; the main process writes them."""
        texts = list(texts)
        # text_fingerprint: the image preprocessing (interpolation) does not change texts
        fingerprint = backbone.text_fingerprint()
        # /2: batch-invariant text embeddings (mini text tower: equal-length batches)
        key = content_key("text-features/2", fingerprint, texts)
        path = self.cache.path("texts", key, ".npy")
        write = self._processes(ctx).is_main
        if path.with_suffix(".json").exists():  # an array without one: incomplete (or old)
            got = load_entry(path, backbone.embed_dim, len(texts))
            if isinstance(got, str):
                first = repr(texts[0][:40]) + ", ..." if texts else "none"
                self._say(f"features texts ({len(texts)}: {first}): cache entry invalid "
                          f"({got}); recomputing")
            else:
                feats = torch.from_numpy(got[0])
                self._remember(fingerprint, texts, feats)
                return feats
        memo = self._memo.get(fingerprint, {})
        if texts and all(t in memo for t in texts):
            # every text was embedded earlier in this process as part of another list (e.g.
            # a mined bank's labels after the whole WordNet pool): no encoding needed
            feats = torch.stack([memo[t][0][memo[t][1]] for t in texts])
            if write:
                save_entry(path, feats.numpy(), {"rows": len(texts)})
            return feats
        feats = self._encode_texts(backbone, texts, ctx)
        if write:
            save_entry(path, feats.numpy(), {"rows": len(texts)})
        self._remember(fingerprint, texts, feats)
        return feats

    def _encode_texts(self, backbone: Backbone, texts: list[str],
                      ctx: RunContext) -> torch.Tensor:
        out = []
        step = max(1, ctx.batch_size)
        for i in range(0, len(texts), step):
            with torch.no_grad():
                out.append(backbone.encode_texts(texts[i : i + step]).float().cpu())
        self.stats.texts_encoded += len(texts)
        return torch.cat(out) if out else torch.zeros(0, backbone.embed_dim)

    def _remember(self, fingerprint: str, texts: list[str], feats: torch.Tensor) -> None:
        """Index texts -> (tensor, row) without copying, so sub-lists are free to look up."""
        memo = self._memo.setdefault(fingerprint, {})
        for row, text in enumerate(texts):
            memo.setdefault(text, (feats, row))

    def label_embeddings(self, backbone: Backbone, labels: Sequence[str],
                         templates: Sequence[str], ctx: RunContext) -> torch.Tensor:
        """Prompt-ensemble embeddings: mean over templates of normalised embeddings, renormed."""
        if not labels:
            return torch.zeros(0, backbone.embed_dim)
        total = None
        for template in templates:
            feats = self.texts(backbone, [template.format(label) for label in labels], ctx)
            total = feats if total is None else total + feats
        assert total is not None
        return torch.nn.functional.normalize(total, dim=-1)
