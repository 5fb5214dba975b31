"""Streaming feature extraction: samples in, one [W, D] feature window per video frame out; and its offline twin.

Video frame k (at k / fps) owns feature frames P*k .. P*k+P-1 (P = 50 / fps = 2 at 25 fps). Its window is the W
frames ending `lookahead` frames after those: frames [P*k + P + A - W, P*k + P + A). With W = 16, A = 2 that is
0.24 s before the frame, the frame's own 40 ms and 40 ms after it, i.e. 8 video frames x 2 features, the shape the
paper's audio attention net reads. Frames before the start of the audio are computed from silence.

The extractor runs on blocks of `block_frames` frames aligned to multiples of the block size, so a block is computed
from the same samples whether the audio arrives in 7-sample pieces or as a whole file: streaming equals offline.
"""
from __future__ import annotations

import numpy as np

from engine.audio.features import FEATURE_HZ, HOP, WIN, FeatureExtractor
from engine.audio.gate import make_gate
from engine.audio.settings import GateParams


def _frames_per_video_frame(fps: float) -> int:
    per = FEATURE_HZ / fps
    if abs(per - round(per)) > 1e-9 or round(per) < 1:
        raise ValueError(f"video fps {fps} must divide the {FEATURE_HZ} Hz feature rate (25 or 50)")
    return int(round(per))


class FeatureStream:
    """One voice's streaming extractor. `push` audio as it is heard, then `pull` the windows that became ready.

    State kept: the audio from the context of the next block on, and the features the next window still needs.
    """

    def __init__(self, extractor: FeatureExtractor, window_frames: int = 16, lookahead_frames: int = 4,
                 fps: float = 25.0, origin_s: float = 0.0, gate: GateParams | None = None) -> None:
        if window_frames < 1 or lookahead_frames < 0:
            raise ValueError(
                f"window_frames must be >= 1 and lookahead_frames >= 0, got {window_frames} and {lookahead_frames}")
        self.extractor = extractor
        self.window_frames = window_frames
        self.lookahead_frames = lookahead_frames
        self.fps = fps
        self.origin_s = origin_s
        """Time stamped on video frame 0: when its sound plays on the engine clock."""
        self.per_video = _frames_per_video_frame(fps)
        m = extractor.block_frames
        first_frame = min(0, self.per_video + lookahead_frames - window_frames)
        self._next_block = first_frame // m  # floor: block boundaries are global multiples of m
        self._audio_start = self._block_audio_start(self._next_block)  # absolute index of _audio[0]
        self._audio = np.zeros(-self._audio_start if self._audio_start < 0 else 0, np.float32)
        self._heard = 0  # samples pushed so far (absolute index of the end of the audio)
        self._features_start = self._next_block * m  # absolute frame index of _features[0]
        self._features = np.zeros((0, extractor.dim), np.float32)
        self.next_video_frame = 0
        self.blocks_computed = 0
        self.gate = make_gate(gate)
        """The noise gate the samples pass before the extractor (None: none)."""

    def _block_audio_start(self, block: int) -> int:
        return (block * self.extractor.block_frames - self.extractor.context_frames) * HOP

    def _block_audio_end(self, block: int) -> int:
        e = self.extractor
        return ((block + 1) * e.block_frames + e.right_frames - 1) * HOP + WIN

    def push(self, samples: np.ndarray) -> None:
        """Append heard samples [n] (mono float32 at 16 kHz)."""
        if self.gate is not None:
            samples = self.gate.process(samples)
        if len(samples):
            self._audio = np.concatenate([self._audio, np.asarray(samples, np.float32)])
            self._heard += len(samples)

    def pull(self) -> list[tuple[int, float, np.ndarray]]:
        """Run the extractor on every block the audio now covers; return (k, time, window [W, D]) per new frame."""
        self._compute_ready_blocks()
        ready = []
        computed_end = self._features_start + len(self._features)
        while self._window_end(self.next_video_frame) <= computed_end:
            k = self.next_video_frame
            end = self._window_end(k) - self._features_start
            ready.append((k, self.origin_s + k / self.fps, self._features[end - self.window_frames:end].copy()))
            self.next_video_frame += 1
        self._trim_features()
        return ready

    def _window_end(self, k: int) -> int:
        return self.per_video * k + self.per_video + self.lookahead_frames

    def _compute_ready_blocks(self, batch: int = 32) -> None:
        last = self._next_block
        while self._block_audio_end(last) <= self._heard:
            last += 1
        # In batches, so catching up after a stall never builds one huge input.
        while self._next_block < last:
            blocks = range(self._next_block, min(last, self._next_block + batch))
            length = self.extractor.window_samples
            starts = [self._block_audio_start(b) - self._audio_start for b in blocks]
            windows = np.stack([self._audio[s:s + length] for s in starts])  # [B, window_samples]
            features = self.extractor.compute(windows)  # [B, block, D]
            self._features = np.concatenate([self._features, features.reshape(-1, self.extractor.dim)])
            self._next_block = blocks.stop
            self.blocks_computed += len(blocks)
            drop = self._block_audio_start(self._next_block) - self._audio_start
            self._audio = self._audio[drop:]
            self._audio_start += drop

    def _trim_features(self) -> None:
        keep_from = self._window_end(self.next_video_frame) - self.window_frames
        drop = keep_from - self._features_start
        if drop > 0:
            self._features = self._features[drop:]
            self._features_start += drop


def gated(audio: np.ndarray, gate: GateParams | None) -> np.ndarray:
    """A whole recording through a fresh noise gate, as a stream would hear it (None or disabled: unchanged)."""
    audio = np.asarray(audio, np.float32)
    noise_gate = make_gate(gate)
    return audio if noise_gate is None else noise_gate.process(audio)


def offline_frames(extractor: FeatureExtractor, audio: np.ndarray, batch: int = 32,
                   gate: GateParams | None = None) -> np.ndarray:
    """Feature frames 0..J-1 of a whole recording [N] -> [J, D], computed by the same calls streaming makes.

    J covers every block whose audio lies inside the recording (frames of the last partial block are left out).
    """
    m = extractor.block_frames
    audio = gated(audio, gate)
    left = extractor.context_frames * HOP
    padded = np.concatenate([np.zeros(left, np.float32), audio])
    blocks = 0
    while ((blocks + 1) * m + extractor.right_frames - 1) * HOP + WIN <= len(audio):
        blocks += 1
    return _run_blocks(extractor, padded, range(blocks), offset=left, batch=batch)


def _run_blocks(extractor: FeatureExtractor, padded: np.ndarray, blocks: range, offset: int, batch: int) -> np.ndarray:
    length = extractor.window_samples
    out = []
    for i in range(0, len(blocks), batch):
        chunk = blocks[i:i + batch]
        starts = [(b * extractor.block_frames - extractor.context_frames) * HOP + offset for b in chunk]
        out.append(extractor.compute(np.stack([padded[s:s + length] for s in starts])).reshape(-1, extractor.dim))
    return np.concatenate(out) if out else np.zeros((0, extractor.dim), np.float32)


def offline_windows(extractor: FeatureExtractor, audio: np.ndarray, window_frames: int = 16,
                    lookahead_frames: int = 4, fps: float = 25.0, batch: int = 32,
                    gate: GateParams | None = None) -> np.ndarray:
    """The windows FeatureStream would emit for a whole recording [N] -> [K, W, D] (for datasets and tests)."""
    audio = gated(audio, gate)
    per_video = _frames_per_video_frame(fps)
    m = extractor.block_frames
    first_block = min(0, per_video + lookahead_frames - window_frames) // m
    lead = -first_block * m * HOP + extractor.context_frames * HOP  # silence before sample 0 the first call needs
    padded = np.concatenate([np.zeros(lead, np.float32), np.asarray(audio, np.float32)])
    last = first_block
    while ((last + 1) * m + extractor.right_frames - 1) * HOP + WIN <= len(audio):
        last += 1
    features = _run_blocks(extractor, padded, range(first_block, last), offset=lead, batch=batch)
    first_frame = first_block * m
    computed_end = last * m
    windows = []
    k = 0
    while per_video * k + per_video + lookahead_frames <= computed_end:
        end = per_video * k + per_video + lookahead_frames - first_frame
        windows.append(features[end - window_frames:end])
        k += 1
    if not windows:
        return np.zeros((0, window_frames, extractor.dim), np.float32)
    return np.stack(windows)
