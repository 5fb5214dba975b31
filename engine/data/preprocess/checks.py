"""Dataset checks: what in a video will limit the avatar trained from it, each measured, with why and the fix.

Preprocess runs them last, prints the findings and keeps them in meta.json (`checks`); the preview shows them.
They warn and never stop: a dataset with findings still trains. The synthetic presenter passes them all.
"""
from __future__ import annotations

import numpy as np

from engine.audio import activity
from engine.data.preprocess.track import RawTracks

SHORT_S = 120.0
"""Less talking than this is short: the paper's and its peers' subjects speak for 3-5 minutes."""
SPEECH_RANGE = (0.3, 0.95)
"""Share of frames with speech outside this range: too little to learn lips from, or no resting mouth."""
NOISY_DB = 20.0
"""Loud level (95th-percentile frame level) less than this above the noise floor (5th) is noisy audio."""
CLIPPED_SHARE = 0.001
"""More than this share of samples at full scale (|x| >= CLIP_LEVEL) is clipped audio."""
CLIP_LEVEL = 0.99
UPSCALE = 1.25
"""A dataset size this many times the crop's side (in the video's pixels) or more trains on enlarged, soft frames."""
UNTRACKED_SHARE = 0.1
"""More than this share of frames without a tracked face (filled in from the neighbours) is a finding."""
CUT_SHARE = 0.05
"""More than this share of frames with the head cut off by the picture's edge is a finding."""
EDGE_SHARE = 0.02
"""A head mask covering more than this share of the top, left or right edge of a frame is cut off there."""
NARROWBAND_HZ = 5000.0
"""Speech with BANDWIDTH_SHARE of its energy below this is narrowband: an 8 kHz (telephone, call) recording holds
nothing above 4 kHz, even once upsampled (measured 3.9-4.05 kHz for espeak and Piper voices through 8 kHz, as wav and
as 44.1 kHz AAC); full-band voices measure 7.3-7.9 kHz, 24 kbit/s Opus 7.3."""
BANDWIDTH_SHARE = 0.9999
"""Share of the speech's energy below its measured bandwidth. Not 0.99: speech carries only about 0.3% of its
energy above 4.5 kHz (long-term average speech spectrum), so the 99% point of full-band speech falls near 3-5 kHz,
as low as narrowband speech; the last 0.01% lies below 4 kHz only when nothing was recorded above it."""
MIN_SPEECH_S = 1.0
"""Less speech than this is too little to measure its bandwidth."""
HANDS_SHARE = 0.02
"""A hand in the picture in more than this share of the frames is a finding."""
BACKGROUND_RESIDUAL = 12.0
"""Background pixels straying from the plate by more than this many grey levels on average (0-255) is a finding;
a still synthetic scene gives 0.3, strong film grain 5."""


def dataset_checks(audio: np.ndarray, sample_rate: int, fps: float, raw: RawTracks,
                   crop: tuple[int, int, int, int], size: int, head_cut: float | None = None,
                   background_residual: float | None = None, silent: bool = False, audio_name: str = "the speech",
                   source_rate: int | None = None, hands: float | None = None) -> list[dict]:
    """Findings [{"check", "value", "message"}] for a dataset: audio mono float [N] at sample_rate (aligned with the
    frames), the raw tracks, the crop (x, y, side, side) in source pixels, the dataset size, the share of frames
    whose head mask touches the picture's edge (`head_touches_edge`), and how far the background strays from its
    plate (`background.plate_residual`); the last two are measured in preprocess's frames pass (None: a dataset made
    before they were). audio_name is the file the speech came from and source_rate the sample rate it declares
    (None: unknown), both for the messages; `hands` is the share of frames in which preprocess found a hand (None:
    not looked for). A silent recording is one finding, instead of the speech checks."""
    found: list[dict] = []

    def finding(check: str, value: float, message: str) -> None:
        found.append({"check": check, "value": round(float(value), 4), "message": message})

    seconds = len(raw) / fps
    if seconds < SHORT_S:
        finding("short", seconds, f"{seconds:.0f} s of video: 3-5 minutes of the person talking train the best "
                "avatar (more sounds for the lips, more poses for the head)")
    levels = activity.frame_levels_db(audio, sample_rate, fps, len(raw))
    if silent:
        finding("silent", 1.0, "the video has no speech: the avatar's lips learn from the tracked face alone, and "
                "speech reaches them through the universal audio-to-expression model (not this person's own "
                "timing); a take with the person's voice lets `syncanim train` fit the motion to them as well")
    elif np.isfinite(levels).any():
        mask = activity.speech_mask(audio, sample_rate, fps, len(raw))
        speech = float(mask.mean())
        if speech < SPEECH_RANGE[0]:
            finding("little_speech", speech, f"speech in only {speech:.0%} of the frames: the lips learn from speech; "
                    "use a video in which the person talks most of the time")
        elif speech > SPEECH_RANGE[1]:
            finding("no_pauses", speech, f"speech in {speech:.0%} of the frames: with (almost) no pauses the avatar "
                    "never sees a resting, closed mouth; use a take with some pauses between sentences")
        bandwidth = speech_bandwidth_hz(audio, sample_rate, fps, mask)
        if bandwidth is not None and bandwidth < NARROWBAND_HZ:
            if source_rate is None:
                how = "recorded at 8 kHz, as by a telephone, a call or a voice recorder"
            elif source_rate < 2 * NARROWBAND_HZ:
                how = f"it is recorded at {source_rate} Hz"
            else:
                how = (f"the file is sampled at {source_rate} Hz, but its sound was recorded at 8 kHz (a telephone, "
                       "a call or a voice recorder) and upsampled")
            finding("narrowband_audio", bandwidth, f"{audio_name}: {BANDWIDTH_SHARE:.2%} of the speech's energy lies "
                    f"below {bandwidth / 1000:.1f} kHz ({how}): the lips learn from the sound up to 8 kHz, where s, "
                    "f, sh and t differ and which a live microphone gives them; record the speech at 16 kHz or more "
                    "(44.1 or 48 kHz is usual), or pass --audio with a full-band recording of the same take")
        loud, noise = activity.loud_and_noise_db(levels)
        if loud - noise < NOISY_DB:
            finding("noisy_audio", loud - noise, f"the speech is only {loud - noise:.0f} dB above the background "
                    "noise: the lips learn the noise too; record closer to the microphone or in a quieter room, or "
                    "pass --audio with a cleaner recording of the same take")
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if len(audio) else 0.0
    if clipped > CLIPPED_SHARE:
        finding("clipped_audio", clipped, f"{clipped:.1%} of the audio samples are at full scale (clipped): loud "
                "sounds are distorted; record with a lower input gain")
    untracked = 1.0 - float(raw.detected.mean())
    if untracked > UNTRACKED_SHARE:
        finding("untracked", untracked, f"no face was found in {untracked:.0%} of the frames (filled in from their "
                "neighbours, with guessed poses); cut the parts where the face is turned away or covered")
    side = crop[2]
    if size >= UPSCALE * side:
        better = max(64, side // 32 * 32)
        finding("upscaled", size / side, f"the crop is {side} px of the video, enlarged to {size} px: the renderer "
                f"cannot learn detail the video lacks and trains slower; pass --size {better}, or film closer or "
                "at a higher resolution")
    if head_cut is not None and head_cut > CUT_SHARE:
        finding("head_cut", head_cut, f"in {head_cut:.0%} of the frames the head touches the edge of the picture "
                "(cut off): the avatar cannot learn what was never filmed; film with room above and beside the head")
    if hands is not None and hands > HANDS_SHARE:
        finding("hands", hands, f"a hand is in the picture in {hands:.0%} of the frames: the avatar draws no hands, "
                "so it learns less of the face and body where a hand covers them (training leaves those pixels out; "
                "the preview shows them dark), and its renders of those frames lack the hand (the eval reports them "
                "apart); film with the hands down, out of the picture")
    if background_residual is not None and background_residual > BACKGROUND_RESIDUAL:
        finding("background_changes", background_residual, f"the background differs from its still plate by "
                f"{background_residual:.0f} grey levels on average (a moving camera, changing light or motion "
                "behind the person): the avatar is drawn over one still plate; film from a tripod with the "
                "exposure locked, in front of a still background")
    return found


def speech_bandwidth_hz(audio: np.ndarray, sample_rate: int, fps: float, speech: np.ndarray,
                        share: float = BANDWIDTH_SHARE) -> float | None:
    """The frequency below which `share` of the energy of the speech frames lies, Hz (in steps of fps):
    audio mono [N] at sample_rate, speech bool [T] per video frame (activity.speech_mask). None with less than
    MIN_SPEECH_S of speech. Measured on the sound itself, so an 8 kHz recording upsampled to 44.1 kHz is found too."""
    hop = int(round(sample_rate / fps))
    frames = [t for t in np.flatnonzero(speech) if (t + 1) * hop <= len(audio)]
    if len(frames) < MIN_SPEECH_S * fps:
        return None
    chunks = np.stack([audio[t * hop:(t + 1) * hop] for t in frames]).astype(np.float64)
    chunks -= chunks.mean(axis=1, keepdims=True)
    # Hann: its side lobes fall 18 dB per octave, so the strong low harmonics do not leak energy into 4-8 kHz.
    power = (np.abs(np.fft.rfft(chunks * np.hanning(hop), axis=1)) ** 2).sum(axis=0)
    if power.sum() <= 0.0:
        return None
    below = np.cumsum(power) / power.sum()
    return float(np.fft.rfftfreq(hop, 1.0 / sample_rate)[np.searchsorted(below, share)])


def head_touches_edge(head: np.ndarray) -> bool:
    """A frame's head mask [S, S] uint8 (255 inside) reaches the top, left or right edge of the picture (more than
    EDGE_SHARE of that edge's pixels), i.e. the video cuts the head off."""
    edges = (head[0], head[:, 0], head[:, -1])
    return max(float(np.mean(edge > 127)) for edge in edges) > EDGE_SHARE
