"""EOE (Cao et al., ICML'24) for oodbench: envisioned outlier labels and EOE's score."""
