"""`syncanim run` end to end: the test card headless into an mp4 with its audio."""
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.cli import main
from engine.io.video import probe


def test_test_card_headless_writes_75_frames_and_3_s_of_audio(tmp_path):
    out = tmp_path / "card.mp4"
    assert main(["run", "scenes/test_card.py", "--headless", "--seconds", "3", "--out", str(out), "--size", "160x120"]) == 0
    info = probe(out)
    assert info.frames == 75 and info.fps == 25
    assert (info.width, info.height) == (160, 120)
    assert info.audio_duration_s == pytest.approx(3.0, abs=1 / 25)


@pytest.mark.slow
def test_the_recorded_meter_follows_the_tone_bursts(tmp_path):
    """The card's level meter (a green bar at the right edge) is tall in bursts and gone in the gaps."""
    import imageio.v3 as iio

    out = tmp_path / "card.mp4"
    main(["run", "scenes/test_card.py", "--headless", "--seconds", "1.5", "--out", str(out)])
    frames = iio.imread(out, plugin="pyav")
    column = frames[:, :, -4, :].astype(int)  # a column inside the meter
    green = (column[..., 1] > 150) & (column[..., 0] < 120) & (column[..., 2] < 160)
    heights = green.sum(axis=1)
    assert heights.max() > 0.5 * frames.shape[1]
    assert heights[:3].max() == 0  # before the first burst reaches the speakers


def test_ctrl_c_at_the_terminal_saves_the_recording_so_far(tmp_path):
    """The terminal sends SIGINT to its whole foreground process group: ffmpeg included, were it in that group.
    The run takes SIGINT as at a terminal: a test runner's process may ignore or block it, and its children inherit
    that (one fresh-clone CI run's engine never saw the signal)."""
    out = tmp_path / "card.mp4"
    at_a_terminal = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
                     "runpy.run_module('engine', run_name='__main__', alter_sys=True)")
    run = subprocess.Popen(
        [sys.executable, "-c", at_a_terminal, "run", "scenes/test_card.py", "--headless", "--realtime", "--seconds",
         "120", "--out", str(out), "--size", "160x120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(f.stat().st_size > 32000 for f in tmp_path.glob(".card.audio.wav*")):  # a second recorded
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "no second of audio recorded in 60 s"
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGINT)
        said, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, said
    info = probe(out)
    assert 25 <= info.frames < 120 * 25 and info.audio_duration_s == pytest.approx(info.duration_s, abs=0.07)
    assert f"wrote {out}" in said and "interrupted" in said


def test_a_broken_scene_exits_with_a_clear_message(tmp_path, capsys):
    """In this process (a new one took 3 s to start): `python -m engine` exits with main's code, as the tests of a
    bad audio file and of --help check in a process of their own."""
    scene = tmp_path / "broken.py"
    scene.write_text("def build(app):\n    raise ValueError('no avatar folder given')\n")
    assert main(["run", str(scene), "--headless", "--seconds", "0.2"]) == 2
    err = capsys.readouterr().err
    assert f"error: {scene}: build(app) raised" in err and "no avatar folder given" in err


@pytest.mark.slow
@pytest.mark.parametrize("audio, message", [("missing.wav", "does not exist"), ("noise.wav", "is not readable audio")])
def test_a_bad_audio_file_is_one_line_naming_it(tmp_path, audio, message):
    (tmp_path / "noise.wav").write_bytes(bytes(range(256)) * 8)
    result = subprocess.run(
        [sys.executable, "-m", "engine", "run", "scenes/test_card.py", "--headless", "--seconds", "0.2",
         "--audio", str(tmp_path / audio), "--out", str(tmp_path / "card.mp4")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: ") and str(tmp_path / audio) in error and message in error
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, says", [
    (["run", "scenes/test_card.py", "--headless", "--seconds", "-1"], "--seconds -1.0"),
    (["run", "scenes/test_card.py", "--headless", "--out", "take.avi"], "--out take.avi"),
    (["demo", "--out", "take.avi"], "--out take.avi"),
    (["bench", "--sizes", "8"], "--sizes"),
])
def test_bad_options_are_refused_while_parsing(args, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert says in " ".join(capsys.readouterr().err.split())


def test_help_lists_the_pipeline_commands():
    result = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout and "demo" in result.stdout


def test_an_options_help_reads_as_one_paragraph_not_its_source_lines(monkeypatch, capsys):
    """Every option's docstring goes on over indented lines; --help joins them (a wide terminal shows it)."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "'universal' maps the bundled universal audio-to-expression model" in capsys.readouterr().out


def test_docstring_lines_join_within_paragraphs_and_items():
    from engine.cli import _joined_lines

    text = "First line\n    goes on.\n\n    Second paragraph:\n    - one item\n      goes on\n    - two"
    assert _joined_lines(text) == "First line goes on.\n\nSecond paragraph:\n- one item goes on\n- two"


def test_a_live_engine_hands_freed_memory_back_every_ten_seconds():
    """glibc keeps freed frame buffers and clips in a fragmented heap; the live engine trims it as it runs (the
    kiosk soak measures the effect on resident memory)."""
    from engine.display.settings import DisplaySettings
    from engine.run import FreedMemory, make_app
    from engine.time import MasterClock

    app = make_app(DisplaySettings(size=(16, 16)), headless=True)
    app.insert_resource(MasterClock("stepped", 25))
    for _ in range(12 * 25):
        app.update()
    app.shutdown()
    assert app.resource(FreedMemory).trims == 2  # at 0 s and at 10 s


def test_control_flags_typed_win_over_a_scenes_defaults_even_when_they_repeat_the_engines(tmp_path):
    """A scene that opens its own socket (like the kiosk) chooses only what the operator left out."""
    from engine.cli import parse
    from engine.run import assemble_scene
    from engine.scene.control_settings import ControlSettings

    scene = tmp_path / "cautious.py"
    scene.write_text("from engine.scene.api import open_control\n\n"
                     "def build(app):\n"
                     "    open_control(app, '127.0.0.1:0', control_allow_load_scene=False, control_queue=3,\n"
                     "                 control_max_connections=2)\n")
    options = parse(["run", str(scene), "--headless", "--control-allow-load-scene", "--control_max_connections=8"])
    assert options.control_given == {"control_allow_load_scene", "control_max_connections"}
    app = assemble_scene(options)
    settings = app.resource(ControlSettings)
    assert (settings.control_allow_load_scene, settings.control_max_connections, settings.control_queue) == (
        True, 8, 3)
    app.shutdown()
