"""MM-OOD for oodbench: outlier labels from a multimodal LLM, scored as EOE."""
