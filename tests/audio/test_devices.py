"""The real pyaudio paths, through ALSA's file plugin as the default device (HOME points at an .asoundrc).

Each scenario runs in a fresh interpreter: ALSA reads its configuration once per process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.audio.settings import AudioSettings

ROOT = Path(__file__).resolve().parents[2]


def _alsa_home(tmp_path: Path, rate: int, infile: Path | None = None) -> Path:
    """A HOME whose .asoundrc makes 'default' a plug into ALSA's file plugin (mono S16 at `rate`)."""
    home = tmp_path / "home"
    home.mkdir()
    infile_line = f'infile "{infile}"' if infile else ""
    (home / ".asoundrc").write_text(textwrap.dedent(f"""\
        pcm.!default {{ type plug  slave {{ pcm "capture_file" format S16_LE rate {rate} channels 1 }} }}
        pcm.capture_file {{ type file  slave.pcm "null"  file "{tmp_path / 'out.raw'}"  {infile_line}  format "raw" }}
        """))
    return home


def _run(home: Path, code: str) -> dict:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_microphone_through_pyaudio_is_resampled_to_16k(tmp_path: Path) -> None:
    infile = tmp_path / "in.raw"
    tone = 0.5 * np.sin(2 * np.pi * 500 * np.arange(10 * 48000) / 48000)
    (32767 * (tone + 0.05)).astype("<i2").tofile(infile)  # with a DC offset, as cheap microphones have
    home = _alsa_home(tmp_path, 48000, infile)
    result = _run(home, """
        import json, time
        import numpy as np
        from engine.audio.sources import MicSource
        mic = MicSource(None, ring_seconds=10.0).open()
        time.sleep(0.3)  # the file device is not paced: it delivers as fast as it is read
        got = mic.read(16000)
        counters = mic.native.counters()
        spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
        print(json.dumps({"name": mic.device_name, "rate": mic.device_rate, "peak_hz": float(np.argmax(spectrum)),
                          "rms": float(np.sqrt(np.mean(got[1600:] ** 2))), "dc": float(np.mean(got[1600:])),
                          "counters": counters,
                          "underruns": mic.ring.underruns}))
        mic.close()
    """)
    assert result["rate"] == 48000  # the device's own rate, converted by the engine
    assert result["peak_hz"] == pytest.approx(500, abs=2)
    assert result["rms"] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)  # the offset is gone, the tone kept
    assert abs(result["dc"]) < 0.002
    assert result["underruns"] == 0
    c = result["counters"]
    assert c["written"] >= c["consumed"] + c["dropped"] + c["available"] > 0


@pytest.mark.slow
def test_engine_listens_to_the_microphone(tmp_path: Path) -> None:
    infile = tmp_path / "in.raw"
    (0.5 * 32767 * np.sin(2 * np.pi * 300 * np.arange(10 * 16000) / 16000)).astype("<i2").tofile(infile)
    home = _alsa_home(tmp_path, 16000, infile)
    result = _run(home, """
        import json, time
        from engine.app import App
        from engine.audio.plugin import audio_plugin, AudioDevices
        from engine.audio.ring import FeatureRing
        from engine.audio.settings import AudioSettings
        from engine.time import MasterClock
        app = App()
        app.insert_resource(MasterClock("stepped", 25))
        app.insert_resource(AudioSettings(input="mic"))
        app.add_plugin(audio_plugin)
        for _ in range(30):
            app.update()
            time.sleep(0.005)
        ring = app.resource(FeatureRing)
        k, t, window = ring.latest()
        print(json.dumps({"frames": len(ring), "loudest": float(window.max()),
                          "fed": app.resource(AudioDevices).mic_fed}))
        app.shutdown()
    """)
    # 30 frames of clock, heard one input block (AudioSettings.block_frames) late.
    assert result["fed"] == 29 * 640 - AudioSettings().block_frames
    assert result["frames"] > 20 and result["loudest"] > 0.0


@pytest.mark.slow
def test_output_device_drives_the_clock(tmp_path: Path) -> None:
    home = _alsa_home(tmp_path, 16000)
    result = _run(home, """
        import json, time
        import numpy as np
        from engine.app import App
        from engine.audio.playback import AudioPlayback
        from engine.audio.plugin import audio_plugin
        from engine.audio.settings import AudioSettings
        from engine.time import MasterClock, Time
        app = App()
        app.insert_resource(AudioSettings(output="auto"))
        app.add_plugin(audio_plugin)
        app.startup()
        playback = app.resource(AudioPlayback)
        clip = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
        handle = playback.play(clip)
        times, positions = [], []
        for _ in range(40):
            app.update()
            times.append(app.resource(Time).elapsed)
            positions.append(playback.position_s)
            time.sleep(0.002)
        print(json.dumps({"mode": playback.mode, "clock": app.resource(MasterClock).describe, "done": handle.done,
                          "times": times, "positions": positions, "delay": playback.mixer.delay.samples}))
        app.shutdown()
    """)
    assert result["mode"] == "device" and result["clock"] == "slaved to audio device"
    assert result["done"]
    # The file device is not paced, so the device clock races ahead of the wall: the engine clock follows it.
    times, positions = np.array(result["times"]), np.array(result["positions"])
    assert np.all(np.diff(times) >= 0) and times[-1] > 0.5 + result["delay"] / 16000
    assert np.all(times <= positions + 1e-9)  # each frame's time is a position the device had reached
    # What reached the device file is the clip, whole, no earlier than the alignment delay (the stream was
    # already running silence when play() was called).
    written = np.fromfile(tmp_path / "out.raw", "<i2").astype(np.float32) / 32767
    clip = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    start = int(np.argmax(written != 0)) - 1  # the clip's first sample is sin(0) = 0
    assert start >= result["delay"]
    assert np.abs(written[start:start + 8000] - clip).max() < 2e-3
    assert np.all(written[start + 8000:start + 16000] == 0)
