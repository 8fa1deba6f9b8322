"""Encode images and texts once per (backbone fingerprint, data) and cache them on disk.

Every method on the same backbone reuses the cached features: a second method on a suite does
not decode or encode a single image. Entries are ``.npy`` arrays with a JSON sidecar, both
written atomically; the sidecar is written last, so an entry without one is incomplete and is
recomputed.

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
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from oodbench import shards
from oodbench.backbones.base import Backbone, TensorPreprocess
from oodbench.cache import (
    ArtifactCache,
    ContentIndex,
    array_sha256,
    atomic_write,
    atomic_write_text,
    content_key,
)
from oodbench.data.sources import ImageList
from oodbench.decode import (
    JpegBytesDataset,
    TensorDecoder,
    collate_raw,
    decode_key_part,
    decode_plan,
    pil_pixels,
)
from oodbench.errors import ResourceError
from oodbench.types import FeatureSet, RunContext

Progress = Callable[[int, int], None]  # (done, total)
_logger = logging.getLogger(__name__)
_MAX_QUEUED = 2  # --decode gpu: batches queued on the device ahead of the one being decoded


class _ImageDataset(Dataset):
    """Decodes and preprocesses images; an unreadable image yields its error instead."""

    def __init__(self, images: ImageList, preprocess: Callable[[Any], torch.Tensor]) -> None:
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        # corrupt file, truncated JPEG, wrong mode...: no pixels, and the reason why
        pixels, error = pil_pixels(self.images, self.preprocess, index)
        return index, pixels, error


def _collate(batch: list[tuple[int, torch.Tensor | None, str]]) -> dict[str, Any]:
    ok = [(i, t) for i, t, _ in batch if t is not None]
    return {
        "index": [i for i, _ in ok],
        "pixels": torch.stack([t for _, t in ok]) if ok else None,
        "errors": [(i, e) for i, t, e in batch if t is None],
    }


@dataclass
class EncodeStats:
    images_encoded: int = 0
    texts_encoded: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # --decode gpu: images decoded + preprocessed as tensors on the device, and images that
    # took the PIL path instead (not plain JPEGs, decoder failures)
    decoded_on_device: int = 0
    decoded_with_pil: int = 0
    # one-line notes for the log / result record (e.g. why --decode gpu fell back to the CPU)
    notes: list[str] = field(default_factory=list)


class FeatureStore:
    """Cached image and text features for one cache directory.

    ``log`` receives one-line notes (also kept in ``stats.notes``); without it they go to the
    ``oodbench.features`` logger as warnings. ``shard`` = (rank, world size) splits image
    encoding across processes (None: RANK / WORLD_SIZE from the environment, see
    :mod:`oodbench.shards`); a world size of 1 is the plain single-process path.
    """

    poll_s = shards.POLL_S  # while waiting for other shards' parts
    stale_after_s = shards.STALE_AFTER_S

    def __init__(self, cache: ArtifactCache, log: Callable[[str], None] | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        self.cache = cache
        self.stats = EncodeStats()
        self.log = log
        self.shard = shard
        self.index = ContentIndex(cache.root)  # image files' content digests, memoised
        # backbone fingerprint -> text -> (features tensor, row): texts seen by this store
        self._memo: dict[str, dict[str, tuple[torch.Tensor, int]]] = {}

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
        cached = self._load(key, dim=backbone.embed_dim, what=images.name)
        rows = _rows_of(images.keys, cached.paths) if cached is not None else None
        if cached is not None and rows is None:
            self._say(f"features {images.name}: cache entry invalid (its paths are not "
                      f"images of the set); recomputing")
        elif cached is not None and rows is not None:
            self.stats.cache_hits += 1
            return self._retry_skipped(backbone, images, ctx, spec, key, cached, rows)
        if why_not:
            self.note(why_not)
        rank, world = self.shard or shards.world()
        if world > 1 and len(images) > 0:
            result = self._sharded(backbone, images, ctx, spec, key, rank, world, progress)
        else:
            result = self._encode(backbone, images, ctx, spec, progress)
        self._save(key, result, images.name)
        return result

    def _retry_skipped(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                       spec: TensorPreprocess | None, key: str, cached: FeatureSet,
                       rows: list[int]) -> FeatureSet:
        """A cached entry plus the images it has no row for (unreadable when it was written),
        read again: a read failure is never cached as permanent. The entry is rewritten when
        any of them is encoded now."""
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
        self._save(key, merged, images.name)
        return merged

    def _encode(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                spec: TensorPreprocess | None, progress: Progress | None,
                rows: Sequence[int] | None = None) -> FeatureSet:
        """Encode ``images`` (only ``rows`` of it when given; None = all, the unsharded path)."""
        start = time.perf_counter()
        if spec is None:
            feats, kept, skipped = self._encode_images(backbone, images, ctx, progress, rows)
        else:
            if ctx.device.type != "cuda":
                self.note("decode gpu on a CPU device: JPEGs are decoded in the main process "
                          "(libjpeg-turbo), which is slower than --decode cpu; meant for tests")
            feats, kept, skipped = self._encode_images_gpu(backbone, images, ctx, spec,
                                                           progress, rows)
        self.stats.seconds += time.perf_counter() - start
        return FeatureSet(
            features=feats,
            labels=images.labels[kept] if len(kept) else np.zeros(0, dtype=np.int64),
            paths=[images.keys[i] for i in kept],
            skipped=[(images.keys[i], why) for i, why in skipped],
        )

    def _sharded(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                 spec: TensorPreprocess | None, key: str, rank: int, world: int,
                 progress: Progress | None) -> FeatureSet:
        """This rank's part, then every other part (waiting for, or taking over, each: see
        :mod:`oodbench.shards`), joined in the list's order."""
        parts = shards.part_rows(len(images), world, ctx.batch_size)  # part i is rank i's
        done: dict[int, FeatureSet] = {}
        said = False
        while True:
            waiting = []
            for rows in parts[rank:] + parts[:rank]:  # own part first, then the next ones
                if not rows or rows.start in done:
                    continue
                part_key = content_key(key, "rows", rows.start, rows.stop)
                got = self._load(part_key, "feature-parts", backbone.embed_dim, images.name)
                if got is None:
                    lock = shards.PartLock(self.cache.path("feature-parts", part_key, ".lock"),
                                           rank, self.stale_after_s)
                    got = self._encode_part(backbone, images, ctx, spec, progress, rows,
                                            part_key, lock)
                    if got is None:
                        waiting.append(f"{rows.start}-{rows.stop} (held by {lock.holder()})")
                        continue
                done[rows.start] = got
            if not waiting:
                return shards.join([done[r.start] for r in parts if r])
            if not said:
                said = True
                self._say(f"features {images.name}: shard {rank} of {world} waits for rows "
                          f"{', '.join(waiting)} of {len(images)}; polling every "
                          f"{self.poll_s:g} s; a part whose holder dies or is silent for "
                          f"{self.stale_after_s:g} s is encoded here")
            time.sleep(self.poll_s)

    def _encode_part(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                     spec: TensorPreprocess | None, progress: Progress | None, rows: range,
                     part_key: str, lock: shards.PartLock) -> FeatureSet | None:
        """Claim, encode and write one part; None when another live process holds it."""
        if not lock.claim():
            return None
        try:
            got = self._load(part_key, "feature-parts", backbone.embed_dim,
                              images.name)  # finished between look and claim
            if got is None:
                def beat(done: int, total: int) -> None:
                    lock.beat()
                    if progress:
                        progress(done, total)

                got = self._encode(backbone, images, ctx, spec, beat, rows)
                self._save(part_key, got, images.name, "feature-parts")
            return got
        finally:
            lock.release()

    def _say(self, message: str) -> None:
        """A progress line for the run's log (not a note: records stay as unsharded ones)."""
        if self.log is not None:
            self.log(message)
        else:
            _logger.info(message)

    def _encode_images(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                       progress: Progress | None, rows: range | None = None
                       ) -> tuple[torch.Tensor, list[int], list]:
        dataset: Dataset = _ImageDataset(images, backbone.preprocess())
        if rows is not None:
            dataset = Subset(dataset, rows)  # items keep their index in ``images``
        loader = DataLoader(
            dataset,
            batch_size=ctx.batch_size,
            num_workers=ctx.num_workers,
            collate_fn=_collate,
            pin_memory=ctx.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if ctx.num_workers > 0 else None,
        )
        chunks: list[torch.Tensor] = []
        kept: list[int] = []
        skipped: list[tuple[int, str]] = []
        done = 0
        chunk_size = ctx.batch_size
        for batch in loader:
            skipped += batch["errors"]
            if batch["pixels"] is not None:
                out, chunk_size = _encode_with_fallback(backbone, batch["pixels"], ctx, chunk_size)
                chunks.append(out)
                kept += batch["index"]
                self.stats.images_encoded += len(batch["index"])
            done += len(batch["index"]) + len(batch["errors"])
            if progress:
                progress(done, len(dataset))
        self.stats.skipped += len(skipped)
        dim = backbone.embed_dim
        feats = torch.cat(chunks) if chunks else torch.zeros(0, dim)
        return feats, kept, skipped

    def _encode_images_gpu(self, backbone: Backbone, images: ImageList, ctx: RunContext,
                           spec: TensorPreprocess, progress: Progress | None,
                           rows: range | None = None) -> tuple[torch.Tensor, list[int], list]:
        """The ``--decode gpu`` loop: workers read bytes, the device decodes and resizes."""
        preprocess = backbone.preprocess()  # the per-image PIL fallback
        dataset: Dataset = JpegBytesDataset(images, preprocess)
        if rows is not None:
            dataset = Subset(dataset, rows)  # items keep their index in ``images``
        loader = DataLoader(
            dataset,
            batch_size=ctx.batch_size,
            num_workers=ctx.num_workers,
            collate_fn=collate_raw,
            persistent_workers=False,
            prefetch_factor=4 if ctx.num_workers > 0 else None,
        )
        decoder = TensorDecoder(spec, ctx.device, images, preprocess)
        chunks: list[torch.Tensor] = []
        kept: list[int] = []
        skipped: list[tuple[int, str]] = []
        done = 0
        chunk_size = ctx.batch_size
        # the host does not wait for the model (decoding overlaps it); bound the batches queued
        # on the device so their pixels do not pile up in GPU memory
        queued: deque[torch.cuda.Event] = deque()
        for raw in loader:
            if len(queued) >= _MAX_QUEUED:
                queued.popleft().synchronize()
            batch = decoder(raw)
            skipped += batch.errors
            self.stats.decoded_on_device += batch.on_device
            self.stats.decoded_with_pil += batch.with_pil
            if batch.pixels is not None:
                out, chunk_size = _encode_with_fallback(backbone, batch.pixels, ctx, chunk_size,
                                                        to_cpu=False)
                chunks.append(out)
                if ctx.device.type == "cuda":
                    queued.append(torch.cuda.Event())
                    queued[-1].record()
                kept += batch.index
                self.stats.images_encoded += len(batch.index)
            done += raw.size
            if progress:
                progress(done, len(dataset))
        self.stats.skipped += len(skipped)
        feats = torch.cat(chunks).cpu() if chunks else torch.zeros(0, backbone.embed_dim)
        return feats, kept, skipped

    def _save(self, key: str, fs: FeatureSet, name: str, kind: str = "features") -> None:
        meta = {"name": name, "rows": len(fs), "labels": fs.labels.tolist(), "paths": fs.paths,
                "skipped": fs.skipped}
        _save_entry(self.cache.path(kind, key, ".npy"), fs.features.numpy(), meta)

    def _load(self, key: str, kind: str = "features", dim: int | None = None,
              what: str = "") -> FeatureSet | None:
        """The entry under ``key`` if it is whole and valid; an invalid one is logged (one
        line) and None is returned, so that it is recomputed and overwritten."""
        array_path = self.cache.path(kind, key, ".npy")
        if not self.cache.path(kind, key, ".json").exists():
            return None  # nothing there, or killed before the sidecar: incomplete
        got = _load_entry(array_path, dim)
        if isinstance(got, str):
            self._say(f"features {what or key[:12]}: cache entry invalid ({got}); recomputing")
            return None
        array, meta = got
        return FeatureSet(torch.from_numpy(array), np.asarray(meta["labels"], dtype=np.int64),
                          meta["paths"], [(str(p), str(r)) for p, r in meta["skipped"]])

    # -- texts -------------------------------------------------------------------------------
    def texts(self, backbone: Backbone, texts: Sequence[str], ctx: RunContext) -> torch.Tensor:
        """[len(texts), D] normalised embeddings, cached by backbone and the exact texts."""
        texts = list(texts)
        # text_fingerprint: the image preprocessing (interpolation) does not change texts
        fingerprint = backbone.text_fingerprint()
        # /2: batch-invariant text embeddings (mini text tower: equal-length batches)
        key = content_key("text-features/2", fingerprint, texts)
        path = self.cache.path("texts", key, ".npy")
        if path.with_suffix(".json").exists():  # an array without one: incomplete (or old)
            got = _load_entry(path, backbone.embed_dim, len(texts))
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
            _save_entry(path, feats.numpy(), {"rows": len(texts)})
            return feats
        out = []
        step = max(1, ctx.batch_size)
        for i in range(0, len(texts), step):
            with torch.no_grad():
                out.append(backbone.encode_texts(texts[i : i + step]).float().cpu())
        feats = torch.cat(out) if out else torch.zeros(0, backbone.embed_dim)
        self.stats.texts_encoded += len(texts)
        _save_entry(path, feats.numpy(), {"rows": len(texts)})
        self._remember(fingerprint, texts, feats)
        return feats

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


def _save_npy(path: Any, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array, dtype=np.float32))


def _save_entry(array_path: Any, array: np.ndarray, meta: dict[str, Any]) -> None:
    """The array, then its sidecar (``.json`` beside it) with the array's width and SHA-256."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    atomic_write(array_path, lambda tmp: _save_npy(tmp, array))
    meta = {**meta, "dim": int(array.shape[1]) if array.ndim == 2 else None,
            "sha256": array_sha256(array)}
    atomic_write_text(array_path.with_suffix(".json"), json.dumps(meta))


def _load_entry(array_path: Any, dim: int | None,
                rows: int | None = None) -> tuple[np.ndarray, dict[str, Any]] | str:
    """(array, sidecar) of a cache entry, or why it cannot be trusted (a short reason)."""
    try:
        meta = json.loads(array_path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"sidecar unreadable: {type(exc).__name__}"
    if not isinstance(meta, dict):
        return f"sidecar holds a {type(meta).__name__}, not an object"
    n = meta.get("rows")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return "sidecar has no row count"
    if rows is not None and n != rows:
        return f"sidecar has {n} rows, expected {rows}"
    if "labels" in meta or "paths" in meta or "skipped" in meta:  # an image-feature entry
        labels, paths, skipped = meta.get("labels"), meta.get("paths"), meta.get("skipped")
        if not (isinstance(labels, list) and len(labels) == n
                and all(isinstance(v, int) for v in labels)):
            return "sidecar labels do not match its rows"
        if not (isinstance(paths, list) and len(paths) == n
                and all(isinstance(p, str) for p in paths)):
            return "sidecar paths do not match its rows"
        if not (isinstance(skipped, list)
                and all(isinstance(x, list) and len(x) == 2 for x in skipped)):
            return "sidecar skipped list is malformed"
    if not isinstance(meta.get("sha256"), str):
        return "sidecar has no checksum (written by an earlier version)"
    try:
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return f"array unreadable: {' '.join(str(exc).split())[:80]}"
    if array.dtype != np.float32:
        return f"array dtype {array.dtype}, expected float32"
    width = dim if dim is not None else meta.get("dim")
    if array.ndim != 2 or array.shape[0] != n or (width is not None and array.shape[1] != width):
        return f"array shape {tuple(array.shape)}, expected ({n}, {width})"
    if array_sha256(array) != meta["sha256"]:
        return "array checksum mismatch"
    if not np.isfinite(array).all():
        return "array has non-finite values"
    return array, meta


def _rows_of(keys: Sequence[str], paths: Sequence[str]) -> list[int] | None:
    """The index in ``keys`` of each of ``paths`` (a subsequence of ``keys``: cached rows keep
    the list's order); None when ``paths`` is not one."""
    rows: list[int] = []
    it = iter(enumerate(keys))
    for path in paths:
        for i, key in it:
            if key == path:
                rows.append(i)
                break
        else:
            return None
    return rows


def _encode_with_fallback(backbone: Backbone, pixels: torch.Tensor, ctx: RunContext,
                          chunk: int, to_cpu: bool = True) -> tuple[torch.Tensor, int]:
    """Encode in chunks; on CUDA out-of-memory halve the chunk and retry, down to 1."""
    outputs = []
    start = 0
    while start < pixels.shape[0]:
        part = pixels[start : start + chunk]
        try:
            outputs.append(_encode_batch(backbone, part, ctx, to_cpu))
            start += part.shape[0]
        except torch.cuda.OutOfMemoryError:
            if chunk == 1:
                raise ResourceError(
                    "Out of GPU memory encoding a single image; use a smaller backbone, "
                    "--dtype float16, or --device cpu."
                ) from None
            torch.cuda.empty_cache()
            chunk = max(1, chunk // 2)
    return torch.cat(outputs), chunk


def autocast_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The dtype images are encoded under ``torch.autocast`` in (None: no autocast)."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        return dtype
    return None


def compute_key_part(device: torch.device, dtype: torch.dtype) -> dict[str, str] | None:
    """What the image-feature key adds for a run's numerics: the run dtype (a backbone may load
    its weights in it, as the mini one does) and the autocast mode of :func:`_encode_batch`.
    None for float32, so float32 caches keep their keys; features computed in float16 or
    bfloat16 are never reused for another dtype, nor float32 ones for them."""
    if dtype == torch.float32:
        return None
    autocast = autocast_dtype(device, dtype)
    return {"dtype": str(dtype).replace("torch.", ""),
            "autocast": str(autocast).replace("torch.", "") if autocast else "none"}


def _encode_batch(backbone: Backbone, pixels: torch.Tensor, ctx: RunContext,
                  to_cpu: bool = True) -> torch.Tensor:
    pixels = pixels.to(ctx.device, non_blocking=True)
    with torch.no_grad():
        autocast = autocast_dtype(ctx.device, ctx.dtype)
        if autocast is not None:
            with torch.autocast("cuda", dtype=autocast):
                feats = backbone.encode_images(pixels)
        else:
            feats = backbone.encode_images(pixels)
    feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    # the GPU decode loop keeps features on the device: .cpu() would wait for the model and
    # keep the next batch's decoding from overlapping it
    return feats.cpu() if to_cpu else feats
