"""Dependencies point downward (docs/architecture.md, "Where each concern lives"): checked on every import
statement of the library and the handlers, including imports inside functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common" / "rostersync"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


LIBRARY_MODULES = {module_name(path): imports_of(path) for path in sorted(LIBRARY.rglob("*.py"))}


def in_room(room: str, name: str) -> bool:
    return name == room or name.startswith(room + ".")


def ours(imports: set[str]) -> set[str]:
    return {
        name for name in imports if name.split(".")[0] in {"rostersync", "rostersync_local", "rostersync_cli"}
    }


def test_the_library_never_imports_the_local_stack_or_the_cli() -> None:
    offenders = {
        module: sorted(name for name in ours(imports) if name.split(".")[0] != "rostersync")
        for module, imports in LIBRARY_MODULES.items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


# room -> what its modules may import of ours (besides themselves)
ALLOWED = {
    "rostersync.canvas": {"rostersync"},  # the package's __version__ for the User-Agent
    "rostersync.store": {"rostersync.models", "rostersync.settings"},
}


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_a_low_room_imports_only_itself_and_what_lies_below(room: str) -> None:
    offenders = {
        module: sorted(
            name for name in ours(imports) if not name.startswith(room) and name not in ALLOWED[room]
        )
        for module, imports in LIBRARY_MODULES.items()
        if module.startswith(room)
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_shared_models_depend_only_on_canvas_wire_models() -> None:
    # The domain models carry a Canvas course in a sync message; nothing else of ours but themselves.
    modules = {
        module: imports for module, imports in LIBRARY_MODULES.items() if in_room("rostersync.models", module)
    }
    reached = set().union(*(ours(imports) for imports in modules.values()))
    assert {name for name in reached if not in_room("rostersync.models", name)} == {
        "rostersync.canvas.models"
    }


def test_the_rest_of_the_library_imports_models_only_through_the_package() -> None:
    reaching_in = {
        module
        for module, imports in LIBRARY_MODULES.items()
        if not in_room("rostersync.models", module)
        and any(name.startswith("rostersync.models.") for name in imports)
    }
    assert reaching_in == set()


def test_no_room_reaches_into_the_sync_worker_for_one_class() -> None:
    reaching = {module for module, imports in LIBRARY_MODULES.items() if "rostersync.sync.course" in imports}
    assert reaching <= {"rostersync.events.apply", "rostersync.selftest", "rostersync.sync.course"}


def test_handlers_import_only_the_library_and_their_own_routes() -> None:
    offenders = {}
    for path in sorted((ROOT / "functions").rglob("*.py")):
        names = {
            name for name in imports_of(path) if name.split(".")[0] in {"rostersync_local", "rostersync_cli"}
        }
        if names:
            offenders[str(path.relative_to(ROOT))] = sorted(names)
    assert offenders == {}
