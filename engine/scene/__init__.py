"""Scenes: Python scripts that choreograph avatars, audio, modes and framing."""
