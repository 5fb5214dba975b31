"""audio_plugin and the audio systems: open streams at startup, advance playback, drain rings, extract features.

Frame order (all after `tick_time`, which reads the master clock):

    STARTUP      open_audio                      extractor, FeatureRings, device streams, clock slaving
    FIRST        advance_playback (after tick_time; virtual output only: render up to the end of this frame)
    PRE_UPDATE   drain_audio -> extract_features (rings -> AudioTap, AudioLevel, FeatureStreams -> FeatureRings)

so the motion controllers in FIXED_UPDATE read feature windows that include everything heard up to this frame.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.audio.devices import AudioDeviceError, list_devices, open_pyaudio
from engine.audio.features import FEATURE_HZ, HOP, WIN, FeatureSpec, feature_spec, make_extractor
from engine.audio.narrator import Narrator
from engine.audio.playback import AudioPlayback, DeviceOutput, Mixer
from engine.audio.ring import FeatureRing, SampleRing
from engine.audio.settings import AudioSettings
from engine.audio.sources import MicSource, PushSource
from engine.audio.streaming import FeatureStream
from engine.audio.tap import AudioTap
from engine.ecs import Stage, World
from engine.time import MasterClock, Time

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger(__name__)


@dataclass
class Voice:
    """Component: the voice an avatar speaks with (its name in AudioSettings.voices); its features are
    `world.resource(AudioVoices).features[name]`."""

    name: str = "main"


@dataclass
class AudioLevel:
    """Resource: loudness of what the speakers played during the current frame."""

    rms: float = 0.0
    dbfs: float = -120.0
    """20 log10(rms), floored at -120 dBFS for silence."""
    peak: float = 0.0
    samples: int = 0
    """Samples the frame covered."""
    played: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """The samples themselves (the listener's echo gate compares the microphone with them)."""


@dataclass
class AudioVoices:
    """Resource: per voice, the SampleRing of what it hears, its streaming extractor and its FeatureRing."""

    samples: dict[str, SampleRing] = field(default_factory=dict)
    streams: dict[str, FeatureStream] = field(default_factory=dict)
    features: dict[str, FeatureRing] = field(default_factory=dict)


def voice_features(world: World, entity, named: str | None = None) -> FeatureRing | None:
    """The FeatureRing an avatar hears, by the one rule every reader follows: the voice `named` (its motion
    controller's choice), else its Voice component's, else the first voice; None before any voice exists."""
    voices = world.get_resource(AudioVoices)
    if voices is None or not voices.features:
        return None
    if named is None:
        voice = world.get(entity, Voice)
        named = voice.name if voice is not None else next(iter(voices.features))
    return voices.features.get(named)


@dataclass
class AudioDevices:
    """Resource: the open pyaudio handles (closed by the shutdown hook)."""

    pa: object | None = None
    output: DeviceOutput | None = None
    mic: MicSource | None = None
    mic_fed: int = 0
    """Samples taken from the microphone so far."""


def output_delay_samples(settings: AudioSettings, block_frames: int, right_frames: int) -> int:
    """How far playback is delayed so a frame's sound is heard no earlier than its lips can move (whole video frames).

    Video frame k's window needs audio up to the end of the block holding frame P*k + P + A - 1 plus right context;
    the virtual output has already rendered one frame ahead of the clock, so that frame is subtracted.
    """
    if not settings.align_output:
        return 0
    per_video = round(FEATURE_HZ / settings.video_fps)
    frame_samples = per_video * HOP
    worst = 0
    for k in range(block_frames):
        last = per_video * k + per_video + settings.lookahead_frames - 1
        block_end = (last // block_frames + 1) * block_frames - 1
        worst = max(worst, (block_end + right_frames) * HOP + WIN - per_video * k * HOP)
    return max(0, math.ceil((worst - frame_samples) / frame_samples)) * frame_samples


def audio_plugin(app: App) -> None:
    """Insert AudioSettings (defaults unless inserted before), AudioTap and AudioDevices; schedule the systems.

    Everything that depends on the settings (voices, rings, mixer, playback, feature streams) is built once, in
    STARTUP, from the settings as they stand then: a scene declares its voices (`Scene.voices`) and hears as its
    avatars were trained (`hear_as_trained`) before that.
    """
    world = app.world
    settings = world.get_resource(AudioSettings) or AudioSettings()
    world.insert_resource(settings)
    if not world.has_resource(AudioTap):
        world.insert_resource(AudioTap(settings.sample_rate))
    world.insert_resource(AudioDevices())
    app.add_system(open_audio, Stage.STARTUP)
    app.add_system(advance_playback, Stage.FIRST, after=["engine.app.tick_time"], run_if=_virtual_output)
    app.add_system(drain_audio, Stage.PRE_UPDATE, before=[extract_features])
    app.add_system(extract_features, Stage.PRE_UPDATE, after=[drain_audio])
    app.on_shutdown(lambda: close_audio(world))


def build_voices(world: World, settings: AudioSettings, extractor) -> AudioVoices:
    """The voices' sample rings, the mixer that plays them (its delay from the extractor's block), AudioPlayback,
    AudioLevel and the main voice's SampleRing, inserted into `world`."""
    if not settings.voices:
        raise ValueError("AudioSettings.voices is empty; name at least one voice, e.g. ('main',)")
    rate = settings.sample_rate
    capacity = int(settings.ring_seconds * rate)
    voices = AudioVoices(samples={name: SampleRing(capacity, rate) for name in settings.voices})
    heard = dict(voices.samples)
    if settings.input == "mic":
        heard.pop(settings.voices[0])  # the main voice hears the microphone instead
    delay = output_delay_samples(settings, extractor.block_frames, extractor.right_frames)
    mixer = Mixer({name: PushSource(rate) for name in settings.voices}, heard, SampleRing(capacity, rate), delay=delay)
    for resource in (AudioLevel(), AudioPlayback(mixer, rate), voices, voices.samples[settings.voices[0]]):
        world.insert_resource(resource)
    return voices


def _virtual_output(world: World) -> bool:
    return world.resource(AudioPlayback).mode == "virtual"


def _wants_device(settings: AudioSettings, clock: MasterClock, devices: AudioDevices) -> bool:
    if settings.output == "virtual" or (settings.output == "auto" and clock.source == "stepped"):
        return False

    try:
        devices.pa = devices.pa or open_pyaudio()
    except AudioDeviceError:
        if settings.output == "device":
            raise
        return False
    return settings.output == "device" or bool(list_devices(devices.pa, "output"))


def open_audio(world: World) -> None:
    """Startup: build the extractor, the voices and their FeatureRings, open the output device and microphone, slave
    the clock."""
    settings = world.resource(AudioSettings)
    extractor = make_extractor(settings)
    world.insert_resource(feature_spec(settings, extractor))
    voices = build_voices(world, settings, extractor)
    playback = world.resource(AudioPlayback)
    devices = world.resource(AudioDevices)
    main = settings.voices[0]
    for name in settings.voices:
        # Played voices are heard `delay` before the speakers play them, so their frames carry the later time.
        hears_mic = name == main and settings.input == "mic"
        origin = 0.0 if hears_mic else playback.mixer.delay.samples / settings.sample_rate
        voices.streams[name] = FeatureStream(
            extractor, settings.window_frames, settings.lookahead_frames, settings.video_fps, origin_s=origin,
            gate=settings.gate)
        voices.features[name] = FeatureRing(settings.feature_ring_frames, settings.window_frames, extractor.dim,
                                            settings.video_fps)
    world.insert_resource(voices.features[main])
    clock = world.resource(MasterClock)
    if _wants_device(settings, clock, devices):
        devices.output = DeviceOutput(devices.pa, playback.mixer, settings.output_device, settings.sample_rate,
                                      settings.block_frames)
        playback.mode, playback.device, playback.device_name = "device", devices.output, devices.output.name
        devices.output.start()
        clock.slave_to(lambda: playback.position_s, "audio device")
        log.info("audio: playing on %r; the clock follows it", devices.output.name)
    else:
        playback.mode = "virtual"
    if settings.input == "mic":
        block_s = settings.block_frames / settings.sample_rate
        devices.mic = MicSource(settings.input_device, settings.sample_rate, block_s, settings.ring_seconds).open()
        log.info("audio: listening on %r at %d Hz", devices.mic.device_name, devices.mic.device_rate)


def close_audio(world: World) -> None:
    """Shutdown hook: stop the engine's voice and the streams, and release PortAudio."""
    narrator = world.get_resource(Narrator)
    if narrator is not None:
        narrator.close()
    devices = world.get_resource(AudioDevices)
    if devices is None:
        return
    if devices.output is not None:
        devices.output.close()
        devices.output = None
    if devices.mic is not None:
        devices.mic.close()
        devices.mic = None
    if devices.pa is not None:
        devices.pa.terminate()
        devices.pa = None


def advance_playback(world: World) -> None:
    """Virtual output: play the samples from the last frame's end to the end of this one (clock time + one frame).

    A stepped clock at 25 fps therefore plays exactly 640 samples a frame, and N frames leave N/25 s in the AudioTap.
    """
    playback = world.resource(AudioPlayback)
    clock = world.resource(MasterClock)
    end = round((world.resource(Time).elapsed + 1.0 / clock.fps) * playback.sample_rate)
    due = end - playback.mixer.rendered
    if due > 0:
        playback.mixer.render(due)


def drain_audio(world: World) -> None:
    """Move this frame's audio on: output ring -> AudioTap and AudioLevel; microphone -> main voice's ring;
    every voice's ring -> its FeatureStream."""
    playback = world.resource(AudioPlayback)
    # Continuous: after a stall longer than a ring holds, silence replaces what was lost, so the tap (a recording's
    # audio) and the feature streams keep one sample per sample played and stay on the clock.
    played = playback.mixer.output.read_continuous()
    world.resource(AudioTap).write(played)
    _measure_level(world.resource(AudioLevel), played)
    settings = world.resource(AudioSettings)
    devices = world.resource(AudioDevices)
    voices = world.resource(AudioVoices)
    if devices.mic is not None:
        # Keep the heard stream on the clock, one input block behind it so block jitter is not an underrun.
        due = round((world.resource(Time).elapsed - devices.mic.block_s) * settings.sample_rate) - devices.mic_fed
        if due > 0:
            voices.samples[settings.voices[0]].write(devices.mic.read(due))
            devices.mic_fed += due
    for name, ring in voices.samples.items():
        stream = voices.streams.get(name)
        if stream is not None:
            stream.push(ring.read_continuous())


def _measure_level(level: AudioLevel, block: np.ndarray) -> None:
    level.samples, level.played = len(block), block
    if len(block) == 0:
        level.rms, level.peak, level.dbfs = 0.0, 0.0, -120.0
        return
    level.rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    level.peak = float(np.max(np.abs(block)))
    level.dbfs = max(-120.0, 20.0 * math.log10(level.rms)) if level.rms > 0 else -120.0


def extract_features(world: World) -> None:
    """Run each voice's streaming extractor; push every finished window into its FeatureRing."""
    voices = world.resource(AudioVoices)
    for name, stream in voices.streams.items():
        ring = voices.features[name]
        for _, time_s, window in stream.pull():
            ring.push(time_s, window)


__all__ = [
    "AudioDevices", "AudioLevel", "AudioVoices", "FeatureSpec", "Voice", "advance_playback", "audio_plugin",
    "close_audio", "drain_audio", "extract_features", "open_audio", "output_delay_samples",
]
