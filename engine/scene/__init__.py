"""Scenes: Python scripts that choreograph avatars, audio, modes and framing."""
from pathlib import Path

SCENES_DIR = Path(__file__).resolve().parents[2] / "scenes"
"""The bundled scene scripts (scenes/ at the top of the repository)."""
