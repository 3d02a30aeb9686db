"""No module imports another's private names: ``python tools/private_imports.py agents_core``.

A name that starts with an underscore belongs to where it is defined: a private module
(``repositories/_base.py``) to its package, whose modules (and subpackages) may import it; a
private function, class or constant (``client._set_default``) to its module alone. Ruff's
``PLC2701`` keeps this rule between top-level packages but not inside one (any module of
``agents_core`` may import any private name of ``agents_core`` as far as ruff is concerned):
this checks inside, from the source alone (nothing is imported).

What counts as a use: every name an import statement brings in, and every attribute read of a
module of the package that was imported by name (``from agents_core import cli`` then
``cli._run``). Known exceptions are listed in ``pyproject.toml`` under
``[tool.private-imports]``, as ``"importer -> imported"`` (``allow``). Prints one line per use
that breaks the rule and exits 1; exits 0 when there is none. ``make lint`` runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Violation", "main", "violations"]


@dataclass(frozen=True, slots=True)
class Violation:
    """``importer`` (a module) uses ``imported``, whose private part belongs to ``owner``."""

    path: Path
    line: int
    importer: str
    imported: str
    owner: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.importer} uses {self.imported}, "
            f"private to {self.owner}"
        )


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of the module at ``path`` (in the package ``root``), and whether it is a
    package (an ``__init__.py``)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _imported(node: ast.stmt, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement brings in (relative ones made absolute)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _inside(importer: str, owner: str) -> bool:
    return importer == owner or importer.startswith(owner + ".")


def _uses(
    tree: ast.AST, module: str, is_package: bool, modules: set[str]
) -> Iterator[tuple[int, str]]:
    """What a module uses of its package, with the line: every name it imports, and every
    attribute it reads of a module of the package it imported (``common.run``)."""
    bound: dict[str, str] = {}  # a local name -> the package's module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias, imported in zip(
                node.names, _imported(node, module, is_package), strict=True
            ):
                yield node.lineno, imported
                if imported in modules and (alias.asname or isinstance(node, ast.ImportFrom)):
                    bound[alias.asname or alias.name] = imported
    for node in ast.walk(tree):
        name = node.value if isinstance(node, ast.Attribute) else None
        if isinstance(node, ast.Attribute) and isinstance(name, ast.Name) and name.id in bound:
            yield node.lineno, f"{bound[name.id]}.{node.attr}"


def violations(root: Path, allow: Iterable[str] = ()) -> list[Violation]:
    """Every use below the package ``root`` of a private name from outside its owner."""
    allowed = {tuple(part.strip() for part in entry.split("->")) for entry in allow}
    paths = sorted(root.rglob("*.py"))
    modules = {_module_name(path, root)[0] for path in paths}
    found = []
    for path in paths:
        module, is_package = _module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, imported in _uses(tree, module, is_package, modules):
            segments = imported.split(".")
            if segments[0] != root.name:
                continue  # another package's: ruff's PLC2701 sees those
            for index, segment in enumerate(segments):
                private = segment.startswith("_") and not segment.startswith("__")
                owner = ".".join(segments[:index])
                if private and not _inside(module, owner):
                    if (module, imported) not in allowed:
                        found.append(Violation(path, line, module, imported, owner))
                    break
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the package's directory, e.g. agents_core")
    parser.add_argument("--config", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    config = tomllib.loads(args.config.read_text(encoding="utf-8")) if args.config.exists() else {}
    allow = config.get("tool", {}).get("private-imports", {}).get("allow", [])
    found = violations(args.package, allow)
    for violation in sorted(found, key=lambda v: (str(v.path), v.line, v.imported)):
        print(violation)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
