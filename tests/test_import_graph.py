"""gelora's modules import one another without a circle (ARCHITECTURE.md: "no import circle").

The graph holds the imports that run when a module is imported: module level, class bodies,
``if``/``try``/``with`` blocks; not function bodies (imported when called) nor
``if TYPE_CHECKING:`` blocks (never run). An edge goes to the module named, and to a submodule
named in ``from package import submodule``; a package's ``__init__`` re-exporting its own
modules is the usual Python idiom and is only an edge where a module imports the package itself.

A function-level import can hide a circle from that graph; in ``methods/``, ``ranks/``,
``data/`` and ``evaluation/`` none may (issue 28 removed three), so there the graph also counts
imports in functions.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gelora

ROOT = Path(gelora.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_imports(body: list[ast.stmt], *, in_functions: bool = False):
    """Import statements that run when the module is imported (or, ``in_functions``, also
    those that run when one of its functions is called)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if in_functions:
                yield from _run_time_imports(node.body, in_functions=True)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_time_imports(node.body, in_functions=in_functions)
            yield from _run_time_imports(node.orelse, in_functions=in_functions)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    yield from _run_time_imports(inner, in_functions=in_functions)
                elif isinstance(inner, list):
                    for handler in inner:
                        if isinstance(handler, ast.ExceptHandler):
                            yield from _run_time_imports(handler.body, in_functions=in_functions)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(*, in_functions: bool = False) -> dict[str, set[str]]:
    """Each gelora module and the gelora modules it imports when imported (``in_functions``:
    or when one of its functions runs)."""
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        graph[module] = {
            target
            for node in _run_time_imports(tree.body, in_functions=in_functions)
            for target in _targets(node, module, is_package)
            if target in paths and target != module
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph[node]):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_gelora_imports():
    graph = import_graph()
    assert "gelora.ranks.policies" in graph["gelora.ranks.controls"]
    assert "gelora.methods.base" in graph["gelora.methods.ours"]
    assert "gelora.data.task_data" in graph["gelora.data.instruction_data"]


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_no_circle_hidden_in_functions_in_methods_ranks_data_and_evaluation():
    packages = ("gelora.methods", "gelora.ranks", "gelora.data", "gelora.evaluation")
    graph = {
        module: {target for target in targets if target.startswith(packages)}
        for module, targets in import_graph(in_functions=True).items()
        if module.startswith(packages)
    }
    assert cycles(graph) == []


# ARCHITECTURE.md's "Folders" table, row by row: a module imports only modules of its own row or
# of rows before it, in functions too (``gelora.X`` is ``X``'s row; the package root is left out).
LAYERS = (
    ("errors", "atomic", "logs", "record", "cache_entries", "sweep_jobs", "run_folder"),
    ("assets",),
    ("data",),
    ("geometry",),
    ("ranks",),
    ("models",),
    ("lora",),
    ("methods",),
    ("training",),
    ("config",),
    ("evaluation",),
    ("reporting",),
    ("kinds",),
    ("stages",),
    ("pipeline", "train"),
    ("plan",),
    ("generate",),
    ("table",),
    ("sync",),
)


def _row(module: str) -> int:
    name = module.split(".")[1]
    rows = [i for i, row in enumerate(LAYERS) if name in row]
    assert rows, f"{module}: its folder {name!r} is in no row of LAYERS (ARCHITECTURE.md's table)"
    return rows[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for each import of a module ``b`` whose row comes after ``a``'s."""
    return [
        f"{module} -> {target}"
        for module, targets in sorted(graph.items())
        if module != "gelora"
        for target in sorted(targets)
        if target != "gelora" and _row(target) > _row(module)
    ]


def test_a_layer_violation_is_found():
    graph = {"gelora.data.task_data": {"gelora.stages.fit"}, "gelora.stages.fit": {"gelora.data"}}
    assert layer_violations(graph) == ["gelora.data.task_data -> gelora.stages.fit"]


def architecture_rows() -> list[tuple[str, ...]]:
    """The first column of ARCHITECTURE.md's "Folders" table: each row's module and folder names
    (``errors.py`` -> ``errors``, ``data/`` -> ``data``; parenthesised files left out)."""
    text = (ROOT.parent.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text.split("| folder | what | imports from |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.strip().splitlines()[1:]:  # past the |---| line
        first = re.sub(r"\([^)]*\)", "", line.split("|")[1])
        rows.append(
            tuple(n.removesuffix(".py").rstrip("/") for n in re.findall(r"`([^`]+)`", first))
        )
    return rows


def test_layers_are_architecture_md_s_table():
    assert [set(row) for row in architecture_rows()] == [set(row) for row in LAYERS]


def test_each_folder_imports_only_the_rows_before_it_in_architecture_md():
    assert layer_violations(import_graph(in_functions=True)) == []


# What makes a run (data, model, LoRA, methods, training, the stages and the apps around them):
# gelora-table reads what runs wrote and imports none of it (STYLE.md: each application has a
# room), so tabling a sweep never waits for torch, Lightning or a model library.
TRAINING_STACK = (
    "gelora.assets", "gelora.data", "gelora.models", "gelora.lora", "gelora.methods",
    "gelora.training", "gelora.config", "gelora.evaluation", "gelora.kinds", "gelora.stages",
    "gelora.plan", "gelora.pipeline", "gelora.train", "gelora.generate",
)  # fmt: skip


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen - {start}


def training_stack_imports(graph: dict[str, set[str]], package: str) -> list[str]:
    """``module -> imported`` for each training-stack module reachable from ``package``."""
    return sorted(
        f"{module} -> {target}"
        for module in graph
        if module == package or module.startswith(package + ".")
        for target in reachable(graph, module)
        if any(target == p or target.startswith(p + ".") for p in TRAINING_STACK)
    )


def test_a_training_stack_import_is_found():
    graph = {"gelora.table.cli": {"gelora.record"}, "gelora.record": {"gelora.stages.fit"},
             "gelora.stages.fit": set(), "gelora.trainer_free": set()}  # fmt: skip
    assert training_stack_imports(graph, "gelora.table") == [
        "gelora.table.cli -> gelora.stages.fit"
    ]


def test_gelora_plan_never_imports_the_run():
    # gelora-plan runs the stages up to the plan (the prologue), never the training run; its
    # command line borrows gelora-train's checks from gelora.train, which imports the run only
    # when that app runs
    graph = import_graph(in_functions=True)
    assert not [
        module for module, targets in graph.items()
        if module.startswith("gelora.plan") and "gelora.pipeline" in targets
    ]  # fmt: skip


def test_the_table_package_imports_nothing_of_the_training_stack():
    assert training_stack_imports(import_graph(in_functions=True), "gelora.table") == []
