"""Data: synthetic subjects with known truth (synth/), video preprocessing, the dataset format, face model files."""
