"""The package layout keeps its two promises: imports go one way, and every module can be read in one sitting.

Layers, lowest first: base modules (config, errors, schemas, sql, engine, faults, money, extras, ledger,
demo) ← io ← slice ← day ← report ← month ← run ← cli. A module may import its own layer and the ones below.
``month`` (issue 15: sign-offs, adjustments, anomalies, the month's books) reads published days through
``day`` and renders with ``report``'s templates; ``run`` asks it for a day's context, ``cli`` runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "billing"
LAYERS = ("base", "io", "slice", "day", "report", "month", "run", "cli")
MAX_LINES = 300

#: Modules allowed past MAX_LINES, each with its reason.
LONG_MODULES = {
    "demo.py": "the demo lake and the truth it plants: one story, told in plain Python on purpose",
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer(module: str) -> str:
    """The layer of a dotted module name inside billing (``billing.day.diff`` -> day)."""
    parts = module.split(".")[1:]
    if not parts:
        return "base"  # billing/__init__.py: the version
    if parts[0] in ("io", "slice", "day", "report", "month", "run"):
        return parts[0]
    return "cli" if parts[0] in ("cli", "__main__") else "base"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def billing_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a billing module in ``path``, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "billing"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "billing":  # from billing import engine, report: each is a module
                found += [(node.lineno, f"billing.{a.name}") for a in node.names]
            elif node.module.split(".")[0] == "billing":
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: relative import; billing imports by full name")
    return found


def test_the_layers_are_the_package_folders() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("__pycache__", "sql")}
    assert folders <= set(LAYERS), folders - set(LAYERS)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path: Path) -> None:
    """Lower layers never import higher ones: base ← io ← slice ← day ← report ← month ← run ← cli."""
    mine = LAYERS.index(layer(module_name(path)))
    upward = [f"line {line}: {mod} ({layer(mod)})" for line, mod in billing_imports(path)
              if LAYERS.index(layer(mod)) > mine]
    assert not upward, f"{module_name(path)} ({LAYERS[mine]}) imports a higher layer: {upward}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or rel in LONG_MODULES, (
        f"billing/{rel} has {lines} lines (> {MAX_LINES}): split it, or list it in LONG_MODULES with a reason")


def test_the_layer_rule_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself: an io module importing the run layer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from billing.run.local import reconcile\n")
    assert billing_imports(bad) == [(2, "billing.run.local")]
    assert LAYERS.index(layer("billing.run.local")) > LAYERS.index(layer("billing.io.raw"))
