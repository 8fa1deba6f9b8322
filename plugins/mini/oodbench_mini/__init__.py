"""The offline mini world: a small real vision-language backbone and its data."""
