"""The layering rules of CONVENTIONS.md, checked over ripstream/'s source with ``ast``.

Each rule is one test, so a rule broken today can be marked ``xfail(strict=True)`` with its
offenders while the others keep guarding; once it is fixed, the strict xfail fails and the mark
must go. Every failure lists the offenders as ``module:line``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from radon.complexity import cc_visit  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ripstream"
MAX_LINES = 500
MAX_COMPLEXITY = 15
#: Layers above the framework: ripstream.downloader imports none of them.
ABOVE_FRAMEWORK = (
    "ripstream.app",
    "ripstream.sources",
    "ripstream.library",
    "ripstream.cli",
    "ripstream.demo",
)
#: Calls that start threads or processes, allowed in executors.py only.
THREAD_STARTERS = {
    ("threading", "Thread"),
    ("concurrent.futures", "ThreadPoolExecutor"),
    ("concurrent.futures", "ProcessPoolExecutor"),
    ("concurrent.futures.thread", "ThreadPoolExecutor"),
    ("concurrent.futures.process", "ProcessPoolExecutor"),
    ("multiprocessing", "Process"),
}
EXECUTORS = "ripstream.downloader.executors"
PLUGIN_API = "ripstream.downloader.plugin"


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to the most specific module it names."""

    module: str  # the module imported (``a.b`` for ``from a import b`` when a.b is a module)
    names: tuple[str, ...]  # names taken from ``module`` (empty for ``import module``)
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:``
    top_level: bool  # runs when the module is imported (not inside a function)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    line_count: int

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path)
        found[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def resolve_from(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module of ``from X import ...`` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: Module) -> list[Import]:
    """Every import in ``module``, with where it sits."""
    found: list[Import] = []

    def visit(node: ast.AST, *, type_checking: bool, top_level: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(
                Import(alias.name, (), node.lineno, type_checking, top_level)
                for alias in node.names
            )
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, node)
            plain: list[str] = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules():
                    found.append(Import(submodule, (), node.lineno, type_checking, top_level))
                else:
                    plain.append(alias.name)
            if plain or not node.names:
                found.append(Import(base, tuple(plain), node.lineno, type_checking, top_level))
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and is_type_checking(node.test) and child in node.body:
                visit(child, type_checking=True, top_level=top_level)
            else:
                inner = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(child, type_checking=type_checking, top_level=top_level and not inner)

    visit(module.tree, type_checking=False, top_level=True)
    return found


def ripstream_imports(module: Module) -> Iterator[Import]:
    for found in imports(module):
        if found.module == "ripstream" or found.module.startswith("ripstream."):
            yield found


# -- (a) the framework imports nothing above it ---


def test_the_framework_imports_nothing_above_it() -> None:
    offenders = [
        f"{module.where}:{found.line} imports {found.module}"
        for module in modules().values()
        if module.name.startswith("ripstream.downloader")
        for found in ripstream_imports(module)
        if found.module.startswith(ABOVE_FRAMEWORK)
    ]
    assert offenders == []


# -- (b) no import cycles ---


def import_graph() -> dict[str, set[str]]:
    """Module -> ripstream modules it imports when it is imported (``TYPE_CHECKING`` blocks and
    imports inside functions left out: they do not run at import time)."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for module in modules().values():
        for found in ripstream_imports(module):
            if found.top_level and not found.type_checking and found.module in graph:
                graph[module.name].add(found.module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a -> b -> a``) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_in(graph, set(component)) for component in components]


def cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A concrete cycle through the first module of ``component`` (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return sorted(component)


def test_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert [" -> ".join(cycle) for cycle in find_cycles(import_graph())] == []


# -- (c) module size ---


def test_no_module_over_500_lines() -> None:
    offenders = sorted(
        f"{module.where} ({module.line_count} lines)"
        for module in modules().values()
        if module.line_count > MAX_LINES
    )
    assert offenders == []


# -- (d) private names stay private ---


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_access(module: Module) -> list[str]:
    """``from ripstream.x import _name``, and ``name._attr`` where ``name`` was imported from
    a ripstream module (``self``/``cls``/local objects are not judged: their types are not
    known here)."""
    offenders: list[str] = []
    imported: dict[str, str] = {}  # local name -> what it is in ripstream
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            base = resolve_from(module, node)
            if base != "ripstream" and not base.startswith("ripstream."):
                continue
            for alias in node.names:
                if is_private(alias.name):
                    offenders.append(f"{module.where}:{node.lineno} imports {base}.{alias.name}")
                imported[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ripstream"):
                    local = alias.asname or alias.name.split(".")[0]
                    imported[local] = alias.name if alias.asname else local
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = node.value
            while isinstance(owner, ast.Attribute):  # ripstream.downloader.x._y
                owner = owner.value
            if isinstance(owner, ast.Name) and owner.id in imported:
                offenders.append(
                    f"{module.where}:{node.lineno} uses {ast.unparse(node)} ({imported[owner.id]})"
                )
    return offenders


def test_private_access_detector_sees_both_forms() -> None:
    source = (
        "from ripstream.downloader import engine\n"
        "from ripstream.downloader.engine import _Run, DownloadEngine\n"
        "import os\n"
        "engine._result(1)\nDownloadEngine._fetcher\nos._exit(0)\nself_._x = 1\n"
    )
    fake = Module("ripstream.fake", PACKAGE / "fake.py", ast.parse(source), 7)
    found = sorted(private_access(fake))
    assert [line.split(" ", 1)[0] for line in found] == [
        "ripstream/fake.py:2",
        "ripstream/fake.py:4",
        "ripstream/fake.py:5",
    ]


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = [line for module in modules().values() for line in private_access(module)]
    assert offenders == []


# -- (e) threads and processes start in executors.py only ---


def thread_starts(module: Module) -> list[str]:
    aliases: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
    modules_as: dict[str, str] = {}  # local name -> module
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules_as[alias.asname or alias.name] = alias.name
    offenders = []
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        target: tuple[str, str] | None = None
        if isinstance(func, ast.Name) and func.id in aliases:
            target = aliases[func.id]
        elif isinstance(func, ast.Attribute):
            owner = ast.unparse(func.value)
            target = (modules_as.get(owner, owner), func.attr)
        if target in THREAD_STARTERS:
            offenders.append(f"{module.where}:{node.lineno} calls {ast.unparse(func)}(")
    return offenders


def test_threads_and_processes_start_only_in_executors() -> None:
    offenders = [
        line
        for module in modules().values()
        if module.name != EXECUTORS
        for line in thread_starts(module)
    ]
    assert offenders == []
    assert thread_starts(modules()[EXECUTORS])  # the detector sees the allowed ones


# -- (f) sources use the plugin API only ---


def test_sources_import_only_the_plugin_api_and_their_siblings() -> None:
    offenders = [
        f"{module.where}:{found.line} imports {found.module}"
        for module in modules().values()
        # the package __init__ is the source registry, not a source
        if module.name.startswith("ripstream.sources.")
        for found in ripstream_imports(module)
        if found.module != PLUGIN_API and not found.module.startswith("ripstream.sources.")
    ]
    assert offenders == []


# -- (g) complexity ---


def blocks(found: list[object]) -> Iterator[object]:
    """Functions and methods (radon lists both) and the closures inside them; not the
    class totals."""
    for block in found:
        if not hasattr(block, "methods"):
            yield block
            yield from blocks(list(getattr(block, "closures", [])))


def test_no_function_above_complexity_15() -> None:
    offenders = sorted(
        f"{module.where}:{block.lineno} {block.fullname} ({block.complexity})"  # type: ignore[attr-defined]
        for module in modules().values()
        for block in blocks(cc_visit(module.path.read_text(encoding="utf-8")))
        if block.complexity > MAX_COMPLEXITY  # type: ignore[attr-defined]
    )
    assert offenders == []


def test_every_module_was_read() -> None:
    found = modules()
    assert {"ripstream.downloader.engine", "ripstream.sources.http", "ripstream.cli"} <= set(found)
    graph = import_graph()
    assert "ripstream.downloader.fetch.job" in graph["ripstream.downloader.fetch.stream"]
    assert "ripstream.downloader.executors" not in graph["ripstream.downloader.fetch.job"]
