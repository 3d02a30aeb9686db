"""tools/private_imports.py (make lint): which uses of private names it refuses, on a small
package written for each test, and that agents_core passes it."""

from __future__ import annotations

from pathlib import Path

from tools.private_imports import main, violations


def package(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with these modules (``"a/b.py": source``)."""
    top = root / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(source)
    return top


def found(top: Path, allow: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    return [(v.importer, v.imported, v.owner) for v in violations(top, allow)]


def test_a_private_module_belongs_to_its_package(tmp_path: Path) -> None:
    top = package(
        tmp_path,
        {
            "db/_base.py": "def load(): ...\n",
            "db/repo.py": "from pkg.db._base import load\nfrom ._base import load as again\n",
            "db/sub/deep.py": "from pkg.db import _base\n",
            "web/reads.py": "from pkg.db._base import load\n",
            "web/more.py": "import pkg.db._base as base\n",
        },
    )
    assert found(top) == [
        ("pkg.web.more", "pkg.db._base", "pkg.db"),
        ("pkg.web.reads", "pkg.db._base.load", "pkg.db"),
    ]


def test_a_private_name_belongs_to_its_module(tmp_path: Path) -> None:
    top = package(
        tmp_path,
        {
            "db/client.py": "def _swap(): ...\ndef _inner(): return _swap()\n",
            "db/repo.py": "from pkg.db.client import _swap\n",
            "testing.py": "from .db.client import _swap\n",
        },
    )
    assert found(top) == [
        ("pkg.db.repo", "pkg.db.client._swap", "pkg.db.client"),
        ("pkg.testing", "pkg.db.client._swap", "pkg.db.client"),
    ]


def test_a_private_attribute_of_an_imported_module_counts(tmp_path: Path) -> None:
    # The old CLI circle: a module imported by name, then its helpers read as attributes.
    top = package(
        tmp_path,
        {
            "cli.py": "def _fail(): ...\ndef run(): ...\n",
            "cli_trace.py": "from pkg import cli\n\ncli.run()\ncli._fail()\n",
            "other.py": "import pkg.cli as c\n\nc._fail()\n",
        },
    )
    assert found(top) == [
        ("pkg.cli_trace", "pkg.cli._fail", "pkg.cli"),
        ("pkg.other", "pkg.cli._fail", "pkg.cli"),
    ]


def test_dunders_other_packages_and_allowed_uses_pass(tmp_path: Path) -> None:
    top = package(
        tmp_path,
        {
            "a.py": "from pkg import __version__\nfrom os import _exit\nimport _thread\n",
            "db/_base.py": "",
            "web/reads.py": "from pkg.db._base import Repository\n",
        },
    )
    assert found(top, ("pkg.web.reads -> pkg.db._base.Repository",)) == []
    assert found(top) == [("pkg.web.reads", "pkg.db._base.Repository", "pkg.db")]


def test_the_command_line_reads_its_exceptions_from_the_config(tmp_path: Path) -> None:
    top = package(tmp_path, {"db/_base.py": "", "web.py": "from pkg.db import _base\n"})
    config = tmp_path / "pyproject.toml"
    config.write_text("")
    assert main([str(top), "--config", str(config)]) == 1
    config.write_text('[tool.private-imports]\nallow = ["pkg.web -> pkg.db._base"]\n')
    assert main([str(top), "--config", str(config)]) == 0


def test_agents_core_uses_no_other_modules_private_names() -> None:
    assert main(["agents_core", "--config", "pyproject.toml"]) == 0
