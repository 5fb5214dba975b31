"""Test card: an animated card whose level meter follows the loudness of the audio being played.

Shows that every stage of the frame runs and that sound and picture stay together:
  first        the clock ticks (wall, stepped, or slaved to the audio device)
  pre_update   the output loudness is read into the card (`follow_loudness`)
  fixed_update an orbiting dot advances at 25 Hz, whatever the display rate (`step_orbit`)
  update       the card's colours and the sweep line animate with time (`animate_card`)
  post_update  positions are laid out for the canvas size (`lay_out_card`)
  extract      a frozen CardView snapshot is taken (`extract_card_view`)
  render       the snapshot is drawn into the FrameImage (`render_card`)
  present      the display plugin shows / records it
  last         the scene counts frames and ends with its audio (`finish_with_audio`)

Run:  syncanim run scenes/test_card.py [--audio speech.wav] [--headless --seconds 3 --out card.mp4]
Without --audio it plays a built-in pattern of tone bursts, so the meter moves anyway.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.audio.playback import AudioPlayback
from engine.audio.plugin import AudioLevel
from engine.components import FrameImage
from engine.display.settings import DisplaySettings
from engine.ecs import Stage, World
from engine.scene.loader import SceneArgs
from engine.time import FixedTime, MasterClock, Time

BAR_COLOURS = np.array(
    [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
    dtype=np.uint8,
)


@dataclass
class Card:
    """Component: the card's animated state."""

    level_db: float = -90.0
    orbit_angle: float = 0.0
    orbit_steps: int = 0
    sweep: float = 0.0


@dataclass
class CardLayout:
    """Component: pixel positions for the current canvas size."""

    width: int = 0
    height: int = 0
    dot: tuple[int, int] = (0, 0)
    dot_radius: int = 0
    meter_height: int = 0
    sweep_x: int = 0


@dataclass(frozen=True)
class CardView:
    """Resource: the frozen snapshot the renderer draws (it never reads live components)."""

    layout: CardLayout
    frame: int
    time_s: float
    level_db: float
    orbit_steps: int
    clock: str


@dataclass
class CardScene:
    """Resource: what this scene started, so it can end itself when its audio is done."""

    clip: object = None
    stop_when_audio_ends: bool = False


def tone_bursts(sample_rate: int, seconds: float = 6.0) -> np.ndarray:
    """Half-second bursts of rising pitch with silences between, so the meter visibly rises and falls."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    burst = np.floor(t / 0.75).astype(int)
    within = t - burst * 0.75
    envelope = np.where(within < 0.5, np.sin(np.pi * within / 0.5) ** 2, 0.0)
    pitch = 330.0 * 2 ** ((burst % 4) / 4)
    return (0.4 * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def start_audio(world: World) -> None:
    playback = world.resource(AudioPlayback)
    scene = world.resource(CardScene)
    args = world.get_resource(SceneArgs)
    if args is not None and args.audio is not None:
        scene.clip = playback.play(args.audio)
        scene.stop_when_audio_ends = args.seconds is None
    else:
        scene.clip = playback.play(tone_bursts(playback.sample_rate))


def follow_loudness(world: World) -> None:
    level = world.resource(AudioLevel)
    for _, card in world.query(Card):
        # Fast attack, slow release: how a broadcast meter reads.
        rate = 0.6 if level.dbfs > card.level_db else 0.15
        card.level_db += rate * (max(level.dbfs, -90.0) - card.level_db)


def step_orbit(world: World) -> None:
    step = world.resource(FixedTime).step
    for _, card in world.query(Card):
        card.orbit_angle = (card.orbit_angle + 2 * math.pi * step / 2.0) % (2 * math.pi)  # one turn per 2 s
        card.orbit_steps += 1


def animate_card(world: World) -> None:
    elapsed = world.resource(Time).elapsed
    for _, card in world.query(Card):
        card.sweep = (elapsed / 3.0) % 1.0


def lay_out_card(world: World) -> None:
    width, height = world.resource(DisplaySettings).size
    for _, card, layout in world.query(Card, CardLayout):
        radius = min(width, height) * 0.28
        layout.width, layout.height = width, height
        layout.dot = (
            int(width / 2 + radius * math.cos(card.orbit_angle)),
            int(height * 0.42 + radius * math.sin(card.orbit_angle)),
        )
        layout.dot_radius = max(3, min(width, height) // 24)
        layout.meter_height = int(np.clip((card.level_db + 60.0) / 60.0, 0.0, 1.0) * height * 0.8)
        layout.sweep_x = int(card.sweep * (width - 1))


def extract_card_view(world: World) -> None:
    time = world.resource(Time)
    for _, card, layout in world.query(Card, CardLayout):
        world.insert_resource(CardView(
            CardLayout(**vars(layout)), time.frame, time.elapsed, card.level_db, card.orbit_steps,
            world.resource(MasterClock).describe,
        ))


def render_card(world: World) -> None:
    view = world.resource(CardView)
    layout = view.layout
    pixels = card_background(layout.width, layout.height).copy()
    draw_dot(pixels, layout.dot, layout.dot_radius)
    meter_left = layout.width - max(8, layout.width // 16)
    pixels[layout.height - layout.meter_height:, meter_left:, :3] = (40, 230, 90)
    pixels[:, layout.sweep_x, :3] = 255
    draw_caption(pixels, f"frame {view.frame}  t={view.time_s:6.2f}s  fixed steps {view.orbit_steps}\n"
                          f"level {view.level_db:6.1f} dBFS  clock: {view.clock}")
    image = world.resource(FrameImage)
    image.rgba, image.frame = pixels, view.frame


def finish_with_audio(world: World) -> None:
    scene = world.resource(CardScene)
    if scene.stop_when_audio_ends and scene.clip is not None and scene.clip.done:
        from engine.app import AppExit

        world.messages(AppExit).send(AppExit("the test card's audio ended"))


@lru_cache(maxsize=4)
def card_background(width: int, height: int) -> np.ndarray:
    """Colour bars over the top two thirds, a grey ramp below, and a framing grid: [H, W, 4] uint8."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., 3] = 255
    bars_bottom = height * 2 // 3
    columns = (np.arange(width) * len(BAR_COLOURS) // width)
    pixels[:bars_bottom, :, :3] = BAR_COLOURS[columns][None]
    ramp = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)
    pixels[bars_bottom:, :, :3] = ramp[None, :, None]
    pixels[:: max(1, height // 8), :, :3] = 64
    pixels[:, :: max(1, width // 8), :3] = 64
    pixels.setflags(write=False)
    return pixels


def draw_dot(pixels: np.ndarray, centre: tuple[int, int], radius: int) -> None:
    x, y = centre
    height, width = pixels.shape[:2]
    y0, y1, x0, x1 = max(0, y - radius), min(height, y + radius + 1), max(0, x - radius), min(width, x + radius + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (yy - y) ** 2 + (xx - x) ** 2 <= radius * radius
    pixels[y0:y1, x0:x1, :3][inside] = (255, 255, 255)


@lru_cache(maxsize=1)
def caption_font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_caption(pixels: np.ndarray, text: str) -> None:
    height, width = pixels.shape[:2]
    font_size = max(10, width // 36)
    box_height = min(height, font_size * 3)
    box = Image.fromarray(np.ascontiguousarray(pixels[height - box_height:, :, :3]) // 3)
    ImageDraw.Draw(box).multiline_text((font_size // 2, font_size // 4), text, font=caption_font(font_size),
                                       fill=(255, 255, 255))
    pixels[height - box_height:, :, :3] = np.asarray(box)


def build(app) -> None:
    app.insert_resource(CardScene())
    app.world.insert_resource(FrameImage())
    app.world.spawn(Card(), CardLayout())
    app.add_system(start_audio, Stage.STARTUP)
    app.add_system(follow_loudness, Stage.PRE_UPDATE)
    app.add_system(step_orbit, Stage.FIXED_UPDATE)
    app.add_system(animate_card, Stage.UPDATE)
    app.add_system(lay_out_card, Stage.POST_UPDATE)
    app.add_system(extract_card_view, Stage.EXTRACT)
    app.add_system(render_card, Stage.RENDER)
    app.add_system(finish_with_audio, Stage.LAST)
