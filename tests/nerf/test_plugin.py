"""nerf_plugin: Taichi starts in the startup stage on the configured device, and the settings module stays light."""
import subprocess
import sys

from engine.app import App
from engine.nerf.plugin import nerf_plugin, resolve_device
from engine.nerf.settings import NerfRuntimeSettings, RenderDevice


def test_startup_starts_taichi_on_the_configured_device(taichi_cpu):
    app = App()
    app.insert_resource(NerfRuntimeSettings(device="cpu"))
    app.add_plugin(nerf_plugin)
    assert not app.world.has_resource(RenderDevice)  # nothing before startup
    app.startup()
    assert app.resource(RenderDevice).name == "cpu"


def test_auto_device_follows_torch():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_settings_module_imports_neither_torch_nor_taichi():
    code = "import sys, engine.nerf.settings, engine.nerf.plugin; print('torch' in sys.modules, 'taichi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
