"""Phonemes to mouth blendshapes: an espeak-mnemonic viseme table and coarticulated per-frame tracks."""
from __future__ import annotations

import numpy as np

from engine.data.synth.rig import BS, BLENDSHAPE_NAMES
from engine.data.synth.speech import Phoneme

# Viseme targets (blendshape -> value). Values are the rig's: jawOpen 1 = 18 degrees of jaw rotation.
_V = {
    "sil": {},
    "PP": {"jawOpen": 0.06, "mouthClose": 1.0, "mouthPucker": 0.15},  # mouthClose here = "lips sealed"
    "FF": {"jawOpen": 0.1, "mouthRollLower": 0.7, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "TH": {"jawOpen": 0.18, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "DD": {"jawOpen": 0.2, "mouthStretchLeft": 0.18, "mouthStretchRight": 0.18},
    "SS": {"jawOpen": 0.12, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3, "mouthSmileLeft": 0.15, "mouthSmileRight": 0.15},
    "CH": {"jawOpen": 0.2, "mouthFunnel": 0.55, "mouthPucker": 0.35},
    "KK": {"jawOpen": 0.3, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "RR": {"jawOpen": 0.2, "mouthFunnel": 0.3, "mouthPucker": 0.4},
    "WW": {"jawOpen": 0.12, "mouthPucker": 0.85, "mouthFunnel": 0.3},
    "LL": {"jawOpen": 0.28, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "AA": {"jawOpen": 0.6, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "AE": {"jawOpen": 0.5, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3, "mouthSmileLeft": 0.15, "mouthSmileRight": 0.15},
    "AH": {"jawOpen": 0.45},
    "EH": {"jawOpen": 0.4, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35, "mouthSmileLeft": 0.1, "mouthSmileRight": 0.1},
    "ER": {"jawOpen": 0.3, "mouthFunnel": 0.35, "mouthPucker": 0.2},
    "IH": {"jawOpen": 0.22, "mouthSmileLeft": 0.35, "mouthSmileRight": 0.35, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35},
    "OH": {"jawOpen": 0.5, "mouthFunnel": 0.6, "mouthPucker": 0.25},
    "UW": {"jawOpen": 0.18, "mouthPucker": 0.8, "mouthFunnel": 0.45},
}

# espeak-ng English mnemonics -> viseme (first characters decide for diphthongs and marked variants).
_CONSONANTS = {
    "p": "PP", "b": "PP", "m": "PP", "f": "FF", "v": "FF", "T": "TH", "D": "TH",
    "t": "DD", "d": "DD", "n": "DD", "t#": "DD", "d#": "DD", "s": "SS", "z": "SS",
    "S": "CH", "Z": "CH", "tS": "CH", "dZ": "CH", "k": "KK", "g": "KK", "N": "KK", "h": "KK", "x": "KK",
    "r": "RR", "r-": "RR", "w": "WW", "W": "WW", "l": "LL", "j": "IH", "?": "sil",
}
_VOWELS = (
    ("aI", "AA"), ("aU", "AA"), ("a#", "AH"), ("A:", "AA"), ("A@", "AA"), ("a", "AE"), ("A", "AA"),
    ("eI", "EH"), ("e@", "EH"), ("E", "EH"), ("e", "EH"), ("3", "ER"), ("@", "AH"), ("V", "AH"),
    ("i@", "IH"), ("i", "IH"), ("I", "IH"), ("oU", "OH"), ("OI", "OH"), ("O", "OH"), ("0", "OH"), ("o", "OH"),
    ("U@", "UW"), ("u", "UW"), ("U", "UW"),
)
_CONTROL_RATE = 200.0  # Hz of the internal track before sampling at the video rate


def viseme_of(symbol: str) -> str:
    """The viseme class of an espeak mnemonic; unknown symbols fall back on their first letter, then to 'AH'."""
    for key in (symbol, symbol.rstrip("2:;#!-"), symbol[:2], symbol[:1]):
        if key in _CONSONANTS:
            return _CONSONANTS[key]
    for prefix, viseme in _VOWELS:
        if symbol.startswith(prefix):
            return viseme
    return "AH"


def _target_vector(viseme: str) -> np.ndarray:
    vector = np.zeros(len(BLENDSHAPE_NAMES))
    for name, value in _V[viseme].items():
        vector[BS[name]] = value
    return vector


def mouth_tracks(
    phonemes: tuple[Phoneme, ...], frames: int, fps: float, articulation: float = 1.0, lead_s: float = 0.02,
) -> np.ndarray:
    """Per-frame mouth blendshapes [frames, K] from timed phonemes.

    Each phoneme holds its viseme target over its interval on a 200 Hz grid; a Gaussian (about 28 ms)
    blends neighbours (coarticulation) and the lips move `lead_s` ahead of the sound, as they do in
    people. `mouthClose` is derived last so it never exceeds jawOpen: sealed lips on top of an open jaw.
    """
    from scipy.ndimage import gaussian_filter1d

    duration = frames / fps
    grid = int(np.ceil(duration * _CONTROL_RATE)) + 1
    track = np.zeros((grid, len(BLENDSHAPE_NAMES)))
    seal = np.zeros(grid)
    for phoneme in phonemes:
        a = int(round((phoneme.start - lead_s) * _CONTROL_RATE))
        b = max(int(round((phoneme.end - lead_s) * _CONTROL_RATE)), a + 1)
        a, b = max(a, 0), min(b, grid)
        if a >= b:
            continue
        viseme = viseme_of(phoneme.symbol)
        target = _target_vector(viseme) * articulation
        if phoneme.stressed:
            target[BS["jawOpen"]] *= 1.12
        target[BS["mouthClose"]] = 0.0
        track[a:b] = target
        if viseme == "PP":
            # The seal sits in the middle of the closure so the release is visible before the next vowel.
            seal[a:b] = 1.0
    track = gaussian_filter1d(track, sigma=0.028 * _CONTROL_RATE, axis=0, mode="nearest")
    seal = gaussian_filter1d(seal, sigma=0.012 * _CONTROL_RATE, mode="nearest")
    track[:, BS["mouthClose"]] = np.clip(seal, 0, 1) * track[:, BS["jawOpen"]]
    times = (np.arange(frames) + 0.5) / fps
    index = np.clip(np.round(times * _CONTROL_RATE).astype(int), 0, grid - 1)
    return np.clip(track[index], 0.0, 1.0)
