"""File formats, checkpoints and input validation."""
