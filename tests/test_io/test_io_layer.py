"""fma.io is the bottom layer: its modules import nothing of fma outside fma.io, and the import
graph inside it has no cycle (function-level imports included). The VOC palette it defines is
the known colour map."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from fma.io.label_maps import bitwise_palette

IO = Path(__file__).resolve().parents[2] / "fma" / "io"


def _module_name(path: Path) -> str:
    rel = path.relative_to(IO.parent.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _fma_imports(path: Path) -> set[str]:
    """Every ``fma.*`` module an ``import`` / ``from ... import`` statement of ``path`` names;
    ``from fma.io.masks import npz`` names ``fma.io.masks.npz`` when that is a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "fma")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fma":
            names.add(node.module)
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if (IO.parent.parent / (sub.replace(".", "/") + ".py")).is_file():
                    names.add(sub)
    return names


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _fma_imports(p) for p in sorted(IO.rglob("*.py"))}


def test_io_imports_only_io():
    """Besides fma.io itself, only fma.version (the version string, a leaf) is allowed."""
    allowed = ("fma.io", "fma.version")
    outside = {m: sorted(n for n in deps if not n.startswith(allowed)) for m, deps in
               _graph().items()}  # fmt: skip
    assert {m: d for m, d in outside.items() if d} == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first search meets (each as the path that closes it)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == node or dep not in graph:
                continue
            if state.get(dep) == 1:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_cycle_finder_on_known_graphs():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_inside_io():
    assert _cycles(_graph()) == []


def test_masks_modules_import_graph():
    """The package's own layering: npz at the bottom (with counts), records on it, runs on both."""
    graph = _graph()
    inside = {m.rsplit(".", 1)[1]: sorted(d.rsplit(".", 1)[1] for d in deps
                                          if d.startswith("fma.io.masks."))
              for m, deps in graph.items() if m.startswith("fma.io.masks.")}  # fmt: skip
    assert inside["counts"] == []
    assert inside["npz"] == ["counts"]
    assert inside["records"] == ["counts", "npz"]
    assert set(inside["runs"]) == {"counts", "layout", "npz", "records"}


def test_bitwise_palette_known_colours():
    pal = bitwise_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    # VOCdevkit: background, aeroplane, bicycle, bird; person (15); the ignore colour (255).
    assert pal[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert pal[15].tolist() == [192, 128, 128]
    assert pal[255].tolist() == [224, 224, 192]
    assert np.array_equal(bitwise_palette(21), pal[:21])
