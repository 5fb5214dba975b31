"""The layout shows the frame: the stage packages import only the stages before them (at any indentation)."""
import ast
from pathlib import Path

ENGINE = Path(__file__).parents[1] / "engine"
FRAME_ORDER = ("audio", "motion", "nerf", "scene", "display")


def engine_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported engine module) of every import in `path`, top-level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("engine.")]
    return found


def test_no_stage_imports_a_stage_after_it_in_the_frame():
    backwards = []
    for stage, package in enumerate(FRAME_ORDER):
        for path in sorted((ENGINE / package).rglob("*.py")):
            for line, module in engine_imports(path):
                target = module.split(".")[1]
                if target in FRAME_ORDER[stage + 1:]:
                    backwards.append(f"{path.relative_to(ENGINE.parent)}:{line} imports {module}")
    assert not backwards, "\n".join(backwards)


def test_shared_components_import_no_stage():
    assert not engine_imports(ENGINE / "components.py")
