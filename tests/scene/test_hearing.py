"""An engine hears with the speech features its avatars were trained on: a Whisper-trained avatar plays in an engine
started with the default (mel) settings, and two avatars trained on different features are refused with the fix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scenes import train_tiny_avatar

from engine.audio.settings import AudioSettings
from engine.scene.loader import SceneError


@pytest.fixture(scope="module")
def whisper_avatar(tiny_data, tmp_path_factory) -> Path:
    """The shared tiny avatar's training on Whisper features: its own, as these tests need two feature sets."""
    return train_tiny_avatar(tiny_data, tmp_path_factory.mktemp("whisper_avatar"), AudioSettings(extractor="whisper"))


def test_a_whisper_avatar_plays_in_an_engine_started_for_mel(app, whisper_avatar):
    from engine.audio.features import FeatureSpec
    from engine.motion.components import MotionState
    from engine.scene.api import Scene

    assert app.world.resource(AudioSettings).extractor == "mel"
    scene = Scene(app)
    scene.avatar(whisper_avatar)
    settings = app.world.resource(AudioSettings)
    assert settings.extractor == "whisper" and settings.voices == ("main",) and settings.output == "virtual"
    scene.script(lambda d: (yield d.say(np.full(8000, 0.05, np.float32))))
    for _ in range(5):
        app.update()
    assert app.world.resource(FeatureSpec).extractor == "whisper"
    ((_, state),) = app.world.query(MotionState)
    assert np.all(np.isfinite(state.euler_deg)) and state.frame >= 0


def test_avatars_trained_on_other_features_cannot_share_an_engine(app, whisper_avatar, tiny_avatar):
    from engine.scene.api import Scene

    scene = Scene(app)
    scene.avatar(tiny_avatar, name="mel")
    with pytest.raises(SceneError, match=r"'whisper'.*whisper \(16 frames.*'mel' on mel.*--features mel"):
        scene.avatar(whisper_avatar, name="whisper")
