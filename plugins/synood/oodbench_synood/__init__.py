"""SynOOD for oodbench: synthesize near-boundary OOD images, then fine-tune CLIP's views."""
