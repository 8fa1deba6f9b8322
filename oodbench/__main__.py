"""``python -m oodbench`` (and ``accelerate launch -m oodbench run ...``)."""

from oodbench.cli import main

main()
