"""SyncAnimation Engine: a real-time, audio-driven NeRF talking-avatar engine."""
import os

# torch's OpenMP workers spin while idle and steal the cores Taichi's kernels run on (measured 1.7x-7x slower on a
# 2-core CPU). OpenMP reads this once, when torch loads, so it is set here, before any engine module imports torch.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
