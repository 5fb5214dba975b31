"""One rule for the voice an avatar hears, read alike by its motion and its renderer."""
from pathlib import Path

import numpy as np

from engine.audio.plugin import AudioVoices, Voice, voice_features
from engine.audio.ring import FeatureRing
from engine.ecs import World
from engine.motion.components import MotionController
from engine.nerf.systems import _window as render_window


def world_with_voices(*names: str) -> World:
    """A world whose voices each hear one window filled with their index (voice k: all k)."""
    world = World()
    rings = {}
    for k, name in enumerate(names):
        rings[name] = FeatureRing(4, 2, 3)
        rings[name].push(0.0, np.full((2, 3), float(k), np.float32))
    world.insert_resource(AudioVoices(features=rings))
    return world


def test_the_controllers_voice_then_the_voice_component_then_the_first_voice():
    world = world_with_voices("a", "b", "c")
    rings = world.resource(AudioVoices).features
    named = world.spawn(MotionController(Path("avatar"), voice="b"))
    both = world.spawn(MotionController(Path("avatar"), voice="b"), Voice("c"))
    component = world.spawn(MotionController(Path("avatar")), Voice("c"))
    neither = world.spawn(MotionController(Path("avatar")))
    assert voice_features(world, named, "b") is rings["b"]
    assert voice_features(world, both, "b") is rings["b"]
    assert voice_features(world, component) is rings["c"]
    assert voice_features(world, neither) is rings["a"]
    assert voice_features(World(), neither) is None  # no voice yet


def test_the_renderer_hears_the_voice_the_controller_names():
    world = world_with_voices("a", "b")
    avatar = world.spawn(MotionController(Path("avatar"), voice="b"))  # no Voice component
    assert float(render_window(world, avatar, 0.0).mean()) == 1.0  # voice b's window, as its head's motion
    plain = world.spawn(MotionController(Path("avatar")))
    assert float(render_window(world, plain, 0.0).mean()) == 0.0
