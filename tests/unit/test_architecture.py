"""The package's shape: no import cycles, pure packages free of pyspark, one error root, a documented tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bigbilbao"
PURE_PACKAGES = ("config", "contracts", "scorecard", "spatial", "tables", "report", "monitor")
SPARK_MODULES = ("pyspark", "delta", "py4j")  # delta-spark's Python package is `delta`
TOP_LEVEL_MODULES = {"__init__.py", "errors.py", "logs.py"}


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of a package tree (a package is its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, known: Iterable[str], root_name: str) -> tuple[set[str], set[str]]:
    """(modules of the package, top-level outside modules) that a file imports anywhere: module level,
    inside functions, or under TYPE_CHECKING; `from pkg import sub` counts as importing pkg.sub."""
    known = set(known)
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != root_name:
                outside.add(node.module.split(".")[0])
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                inside.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (inside if alias.name.split(".")[0] == root_name else outside).add(
                    alias.name if alias.name.split(".")[0] == root_name else alias.name.split(".")[0])
    return inside & known, outside


def import_graph(package: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module -> package modules it imports, and module -> outside top-level modules it imports."""
    files = module_files(package)
    inside, outside = {}, {}
    for name, path in files.items():
        inside[name], outside[name] = imports_of(path, files, package.name)
        inside[name].discard(name)
    return inside, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def reaches_spark(graph: dict[str, set[str]], outside: dict[str, set[str]], start: str) -> list[str] | None:
    """The import chain from `start` to a Spark module, or None when there is none."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        hit = next((m for m in SPARK_MODULES if m in outside[module]), None)
        if hit:
            return [*paths[module], hit]
        for child in sorted(graph[module]):
            if child not in paths:
                paths[child] = [*paths[module], child]
                queue.append(child)
    return None


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "fake" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "fake"


def test_the_checks_find_a_cycle_and_a_spark_import_when_there_is_one(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": "", "a/__init__.py": "", "b/__init__.py": "",
        "a/one.py": "from fake.b import two\n",
        "b/two.py": "def f():\n    from fake.a.one import x\n",
        "b/three.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fake.b.four import y\n",
        "b/four.py": "from fake.b import three\nfrom pyspark.sql import functions as F\n",
        "b/clean.py": "import json\nfrom fake.a import one\n",
    })
    graph, outside = import_graph(package)
    assert sorted(cycles(graph)) == [["fake.a.one", "fake.b.two"], ["fake.b.four", "fake.b.three"]]
    assert reaches_spark(graph, outside, "fake.b.three") == ["fake.b.three", "fake.b.four", "pyspark"]
    assert reaches_spark(graph, outside, "fake.b.clean") is None


def test_no_import_cycle_inside_bigbilbao() -> None:
    graph, _ = import_graph(PACKAGE)
    assert len(graph) > 70
    assert cycles(graph) == []


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_never_import_spark(package: str) -> None:
    graph, outside = import_graph(PACKAGE)
    modules = [name for name in graph if name == f"bigbilbao.{package}" or name.startswith(f"bigbilbao.{package}.")]
    assert len(modules) > 1
    chains = {name: reaches_spark(graph, outside, name) for name in modules}
    assert {name: chain for name, chain in chains.items() if chain} == {}


def test_importing_every_pure_module_loads_no_spark() -> None:
    modules = [name for name in module_files(PACKAGE) if name.split(".")[1:2] and name.split(".")[1] in PURE_PACKAGES]
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n    importlib.import_module(name)\n"
              f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SPARK_MODULES!r}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_only_init_errors_and_logs_sit_at_the_top_of_the_package() -> None:
    assert {path.name for path in PACKAGE.glob("*.py")} == TOP_LEVEL_MODULES


def test_every_subpackage_says_what_it_is_for_and_re_exports_its_names() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert len(ast.get_docstring(tree) or "") > 80, f"{init.parent.name}/__init__.py needs a docstring"
        module = __import__(f"bigbilbao.{init.parent.name}", fromlist=["__all__"])
        assert module.__all__, f"{init.parent.name} re-exports nothing"
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_every_exception_class_derives_from_the_one_error_root() -> None:
    from bigbilbao import errors

    defined_elsewhere = []
    for name, path in module_files(PACKAGE).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = [getattr(base, "id", getattr(base, "attr", "")) for base in getattr(node, "bases", [])]
            if (isinstance(node, ast.ClassDef) and any(b.endswith(("Error", "Exception")) for b in bases)
                    and name != "bigbilbao.errors"):
                defined_elsewhere.append(f"{name}.{node.name}")
    assert defined_elsewhere == []
    classes = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(classes) > 10
    assert all(issubclass(cls, errors.BigBilbaoError) for cls in classes)
