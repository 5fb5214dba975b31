"""The renderer's quality knobs (head_scale, precision) from the command line and from scene scripts reach the
renderer each avatar is drawn with; the operator's flags win over a scene's own choice."""
from __future__ import annotations

import pytest
from scene_helpers import make_app

from engine.cli import main, parse
from engine.nerf.settings import NerfRenderSettings, QualitySettings, chosen_quality
from engine.scene import SCENES_DIR
from engine.scene.api import Scene
from engine.scene.loader import SceneError

SIZE = (160, 160)  # above 128x128: 'auto' marches the head at half resolution on a CPU


def head_rays(app) -> dict[str, tuple[int, int]]:
    """Avatar name -> the head grid its renderer marches at the canvas size, after one frame."""
    from engine.components import Avatar
    from engine.nerf.systems import AvatarViews, NerfAvatars

    app.update()
    renderers = app.world.resource(NerfAvatars).renderers
    names = {entity: avatar.name for entity, avatar in app.world.query(Avatar)}
    found = {}
    for view in app.world.resource(AvatarViews).views:
        renderer = next(r for (_, precision, scale), r in renderers.items()
                        if (precision, scale) == (view.precision, view.head_scale))
        found[names[view.entity]] = renderer.head_size(*SIZE)
    return found


def test_each_avatar_renders_at_the_quality_its_scene_set(tiny_avatar):
    app = make_app(size=SIZE)
    scene = Scene(app)
    scene.avatar(tiny_avatar, name="full", head_scale=1, precision="float32")
    scene.avatar(tiny_avatar, name="engine")
    scene.avatar(tiny_avatar, name="quarter", head_scale=0.25)
    assert head_rays(app) == {"full": (160, 160), "engine": (80, 80), "quarter": (40, 40)}
    from engine.nerf.systems import NerfAvatars

    models = {id(r.model) for r in app.world.resource(NerfAvatars).renderers.values()}
    assert len(models) == 1  # one set of weights for the three qualities
    app.shutdown()


def test_the_operators_quality_wins_over_the_scenes(tiny_avatar):
    app = make_app(size=SIZE)
    app.insert_resource(QualitySettings(head_scale=0.5))
    scene = Scene(app)
    scene.avatar(tiny_avatar, name="full", head_scale=1.0)
    assert head_rays(app) == {"full": (80, 80)}
    app.shutdown()


def test_quality_is_chosen_field_by_field():
    engine = NerfRenderSettings(head_scale="auto", precision="bfloat16")
    assert chosen_quality(engine, None, None) == ("auto", "bfloat16")
    assert chosen_quality(engine, QualitySettings(head_scale=1.0), None) == (1.0, "bfloat16")
    assert chosen_quality(engine, QualitySettings(1.0, "float32"), QualitySettings(precision="bfloat16")) == \
        (1.0, "bfloat16")


def test_run_flags_reach_the_engine_before_the_scene_is_built(tmp_path):
    from engine.run import assemble_scene

    options = parse(["run", str(SCENES_DIR / "test_card.py"), "--headless", "--head-scale", "1",
                     "--precision", "float32"])
    assert options.quality == QualitySettings(1.0, "float32")
    app = assemble_scene(options)
    assert app.world.resource(QualitySettings) == QualitySettings(1.0, "float32")
    assert parse(["run", str(SCENES_DIR / "test_card.py")]).quality == QualitySettings()  # the scene's, else auto
    assert parse(["demo", "--head-scale", "auto"]).quality == QualitySettings("auto")
    app.shutdown()


@pytest.mark.parametrize("args, says", [
    (["run", "scenes/test_card.py", "--head-scale", "1.5"], "--head-scale 1.5"),
    (["bench", "--head-scale", "0"], "--head-scale 0.0"),
])
def test_bad_quality_flags_are_refused_while_parsing(args, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert says in " ".join(capsys.readouterr().err.split())


def test_a_bad_quality_in_a_scene_names_the_avatar_and_the_argument(tiny_avatar):
    app = make_app(size=SIZE)
    with pytest.raises(SceneError, match="avatar 'anna': head_scale=2"):
        Scene(app).avatar(tiny_avatar, name="anna", head_scale=2)
    with pytest.raises(SceneError, match="avatar 'anna': precision='fp16'"):
        Scene(app).avatar(tiny_avatar, name="anna", precision="fp16")
    app.shutdown()
