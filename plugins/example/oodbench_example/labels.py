"""A label generator: negative labels drawn at random from a small vocabulary."""

from __future__ import annotations

import dataclasses

from oodbench import LabelBank, LabelGenerator, MethodEnv

WORDS = ("anchor", "balloon", "bicycle", "bridge", "candle", "castle", "cloud", "compass",
         "drum", "feather", "fountain", "glacier", "hammer", "kite", "ladder", "lantern",
         "mountain", "needle", "piano", "rocket", "saddle", "tractor", "umbrella", "volcano")


@dataclasses.dataclass
class RandomWords(LabelGenerator):
    """``count`` words of WORDS that are not ID classes, drawn with the run's seed."""

    name = "random-words"
    description = "Random negative labels from a 24-word vocabulary (seeded by the run)."
    count: int = 16

    def __post_init__(self) -> None:
        self.check_positive("count")  # a bad value is a one-line usage error

    def generate(self, env: MethodEnv) -> LabelBank:
        id_names = {c.lower() for c in env.suite.classes}
        pool = [w for w in WORDS if w not in id_names]
        rng = env.rng(self.name, self.count)  # same seed, same draw
        picked = rng.choice(len(pool), size=min(self.count, len(pool)), replace=False)
        return LabelBank(labels=[pool[i] for i in picked], generator=self.name,
                         params=self.params(), source="oodbench_example.labels.WORDS")
