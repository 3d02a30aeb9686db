"""The shape of ``agents_core.embedded``: a face that imports on use, a cheap launcher, layers.

``agents_core.embedded`` offers its names without importing the modules behind them: the
``agents-core`` launcher is one of its modules, so every command runs the package's
``__init__`` first. These tests hold what makes that safe: the names type checkers read are the
names that run, the launcher loads nothing but the standard library and two small modules of
ours, and no module of the package imports another's private names or takes part in a cycle.
No server is started here.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import agents_core.embedded as embedded
from tests.helpers import modules_loaded_by

PACKAGE = Path(embedded.__file__).parent


def type_checking_imports() -> dict[str, str]:
    """What type checkers read in ``__init__``: each name and the module it comes from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_every_name_type_checkers_read_is_the_object_its_module_defines() -> None:
    names = type_checking_imports()
    assert set(embedded.__all__) <= set(names)
    for name, module in names.items():
        assert getattr(embedded, name) is getattr(importlib.import_module(module), name), name
    offered = {
        name
        for name in dir(embedded)
        if not name.startswith("_") and not isinstance(getattr(embedded, name), types.ModuleType)
    }
    assert offered - {"TYPE_CHECKING", "annotations"} == set(names)


def test_a_name_the_package_does_not_offer_is_an_attribute_error() -> None:
    misspelt = "EmbededServer"
    with pytest.raises(AttributeError, match="EmbededServer"):
        getattr(embedded, misspelt)


def test_the_launcher_loads_only_the_standard_library_and_two_small_modules() -> None:
    """What every ``agents-core`` command imports before it knows whether a worker runs it."""
    loaded = modules_loaded_by("agents_core.embedded.launcher")
    ours = {name for name in loaded if name.split(".")[0] == "agents_core"}
    assert ours == {
        "agents_core",
        "agents_core.embedded",
        "agents_core.embedded.config",
        "agents_core.embedded.errors",
        "agents_core.embedded.launcher",
    }
    others = [name for name in loaded - ours if name.split(".")[0] not in sys.stdlib_module_names]
    assert others == []


def test_no_module_imports_private_names_of_another_and_none_is_in_a_cycle() -> None:
    imports: dict[str, set[str]] = {}
    private: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        used = imports.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
                private += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and node.module.startswith("agents_core")
                ]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            used |= {m.rsplit(".", 1)[1] for m in modules if m.startswith("agents_core.embedded.")}
    assert private == []
    assert imports["launcher"] == {"config", "errors"}
    list(graphlib.TopologicalSorter(imports).static_order())  # CycleError if there is one


def test_a_server_on_another_storage_is_never_taken_for_ours(tmp_path: Path) -> None:
    """Issue 25, E2: ``storage in command`` matched ``<dir>/storage.bak`` (and an empty storage
    any secantusd), so ``server status`` signalled an unrelated server."""
    from agents_core.embedded.processes import runs

    storage = tmp_path / "storage"
    other = subprocess.Popen(
        [
            *(sys.executable, "-c", "import time; time.sleep(60)"),
            *("secantusd-py", "--storage-path", f"{storage}.bak"),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not runs(other.pid, "secantusd", f"{storage}.bak"):  # its cmdline is set
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not runs(other.pid, "secantusd", str(storage))
        assert not runs(other.pid, "secantusd", "")
        assert not runs(other.pid, "supervisor", f"{storage}.bak")
    finally:
        other.kill()
        other.wait()
