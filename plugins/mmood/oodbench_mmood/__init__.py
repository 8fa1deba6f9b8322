"""EOE and MM-OOD for oodbench."""
