"""pyaudio device lookup: open PortAudio quietly, list devices, find one by name or index."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal

Kind = Literal["input", "output"]


class AudioDeviceError(RuntimeError):
    """No usable audio device for what was asked (the message names what exists and the fix)."""


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    # PortAudio's ALSA and JACK probes print dozens of harmless lines on the C-level stderr at init.
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_pyaudio() -> Any:
    """A `pyaudio.PyAudio` instance (terminate it when done); an AudioDeviceError if pyaudio is missing."""
    try:
        import pyaudio
    except ImportError as error:
        raise AudioDeviceError(
            f"pyaudio is not installed ({error}): `apt-get install portaudio19-dev` then `pip install pyaudio`, "
            "or use AudioSettings(output='virtual', input='none')"
        ) from error
    with _stderr_silenced():
        return pyaudio.PyAudio()


def list_devices(pa: Any, kind: Kind) -> list[dict[str, Any]]:
    """pyaudio device-info dicts that can do `kind` (index, name, maxInputChannels, defaultSampleRate, ...)."""
    key = "maxInputChannels" if kind == "input" else "maxOutputChannels"
    found = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info.get(key, 0) > 0:
            found.append(info)
    return found


def _default_device(pa: Any, kind: Kind) -> dict[str, Any] | None:
    try:
        return pa.get_default_input_device_info() if kind == "input" else pa.get_default_output_device_info()
    except OSError:
        return None


def find_device(pa: Any, want: str | int | None, kind: Kind) -> dict[str, Any]:
    """The device for `want`: None is the default, an int a pyaudio index, a str a (case-insensitive) name substring."""
    devices = list_devices(pa, kind)
    setting = "input_device" if kind == "input" else "output_device"
    listing = ", ".join(f"{d['index']} {d['name']!r}" for d in devices) or "none"
    if not devices:
        raise AudioDeviceError(
            f"no audio {kind} device: PortAudio lists none on this machine. "
            + ("Plug in a microphone, or drive the avatar from files or pushed clips (AudioSettings.input='none')."
               if kind == "input" else "Use AudioSettings.output='virtual' (playback then follows the engine clock).")
        )
    if want is None:
        chosen = _default_device(pa, kind)
        return chosen if chosen is not None else devices[0]
    if isinstance(want, int) or (isinstance(want, str) and want.isdigit()):
        for device in devices:
            if device["index"] == int(want):
                return device
    else:
        exact = [d for d in devices if d["name"].lower() == want.lower()]
        partial = [d for d in devices if want.lower() in d["name"].lower()]
        if exact or partial:
            return (exact or partial)[0]
    raise AudioDeviceError(
        f"no audio {kind} device matches {want!r}; {kind} devices: {listing}. "
        f"Pass AudioSettings.{setting}=NAME or INDEX."
    )
