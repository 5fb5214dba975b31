"""`syncanim schedule`: the frame as it runs, held against the README's frame diagram."""
import re
from pathlib import Path

import pytest

from engine.ecs import Stage
from engine.ecs.schedule import FRAME_STAGES

README = Path(__file__).parents[1] / "README.md"
# A system the README's line for a stage speaks of, by stage.
NAMED = {
    Stage.FIRST: ["engine.app.tick_time", "engine.display.plugin.publish_canvas"],
    Stage.PRE_UPDATE: ["engine.audio.plugin.drain_audio", "engine.audio.plugin.extract_features"],
    Stage.FIXED_UPDATE: ["engine.motion.systems.drive_motion"],
    Stage.UPDATE: ["engine.scene.timeline.run_scripts", "engine.scene.framing.ease_framing"],
    Stage.POST_UPDATE: ["engine.scene.framing.lay_out_avatars"],
    Stage.EXTRACT: ["engine.nerf.systems.extract_avatar_views", "engine.display.compose.extract_scene_view"],
    Stage.RENDER: ["engine.nerf.systems.render_avatars", "engine.display.compose.compose_scene"],
    Stage.PRESENT: ["engine.display.present.present_frame", "engine.display.sinks.record_mp4"],
}


def readme_stages() -> list[str]:
    block = README.read_text().split("One `app.update()` is one frame:", 1)[1].split("```")[1]
    return [m.group(1) for m in re.finditer(r"^(\w+)\s", block, re.M)]


@pytest.fixture(scope="module")
def demo_schedule(tmp_path_factory):
    from engine.run import ScheduleOptions, print_schedule

    return print_schedule(ScheduleOptions(frames=2))


def test_the_readme_diagram_lists_the_stages_in_the_order_they_run():
    assert readme_stages() == [stage.value for stage in FRAME_STAGES]


def test_the_demo_runs_each_stage_with_the_systems_the_diagram_names_in_order(demo_schedule):
    where = {row.name: (row.stage, i) for i, row in enumerate(demo_schedule)}
    for stage, names in NAMED.items():
        assert [where[name][0] for name in names] == [stage] * len(names)
    assert where["engine.nerf.systems.render_avatars"][1] < where["engine.display.compose.compose_scene"][1]
    ran = {row.name: row.access.ran for row in demo_schedule}
    assert ran["engine.nerf.systems.render_avatars"] == 2 and ran["engine.motion.systems.drive_motion"] >= 2


def test_the_frame_image_has_one_writer_and_avatar_pictures_are_read_after_they_are_drawn(demo_schedule):
    writers = {kind: [row.name for row in demo_schedule if kind in row.access.writes] for kind in ("FrameImage", "AvatarImage")}
    assert writers == {"FrameImage": ["engine.display.compose.compose_scene"],
                       "AvatarImage": ["engine.nerf.systems.render_avatars"]}
    readers = [row.name for row in demo_schedule if "AvatarImage" in row.access.reads - row.access.writes]
    assert readers == ["engine.display.compose.compose_scene"]
