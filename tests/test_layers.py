"""The package's layers run one way: every import of `epx/` (module level and inside functions)
goes to its own layer or one below, no command package imports another, and nothing imports in a
cycle. The layers, bottom up, are written here; a new module must be placed in one."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "epx"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # pure helpers and the formula cores: no recipe, no trainer, no command
    ("foundation", ("epx", "epx.errors", "epx.console", "epx.quiet", "epx.hub", "epx.paths",
                    "epx.locks", "epx.records", "epx.grpo_fields", "epx.tiny", "epx.stats",
                    "epx.checkpoints", "epx.metrics", "epx.shaping", "epx.stage", "epx.reports",
                    "epx.interventions", "epx.scoring", "epx.execution", "epx.per_process")),
    # the shared cores the commands stand on: recipe, data, models, rewards, the benchmark
    # registry, generation and the eval core, the run directory's layout, the launch checks
    ("cores", ("epx.recipe", "epx.schedule", "epx.data", "epx.models", "epx.rewards",
               "epx.benchmarks", "epx.generation", "epx.evaluation", "epx.grpo_args",
               "epx.launch_checks", "epx.run_dir", "epx.ood")),
    # one package per command; none imports another
    ("commands", ("epx.train", "epx.eval", "epx.sweep", "epx.analyze")),
    # the command line
    ("entry", ("epx.cli", "epx.commands")),
]  # fmt: skip
COMMANDS = dict(LAYERS)["commands"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Every epx module `path` imports, at module level or inside a function (`from pkg import
    sub` of a submodule counts as importing `pkg.sub`, not the package's own code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("epx"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("epx"))
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def owner(name: str, layers=LAYERS) -> tuple[int, str] | None:
    """(layer index, the layer entry) of a module: its longest matching entry."""
    best = None
    for index, (_, entries) in enumerate(layers):
        for entry in entries:
            nested = entry != "epx" and name.startswith(entry + ".")  # "epx" is the root only
            if (name == entry or nested) and (
                best is None or len(entry) > len(best[1])
            ):
                best = (index, entry)
    return best


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name is (a `from epx.x import y` may name a function of epx.x)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph = {}
    for name, path in modules.items():
        targets = {resolve(target, modules) for target in imports_of(path, set(modules))}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def wrong_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up the layers, or from one command package into another."""
    wrong = []
    for name, targets in graph.items():
        layer, entry = owner(name)
        for target in targets:
            target_layer, target_entry = owner(target)
            if target_layer > layer:
                wrong.append(f"{name} -> {target} (up: {LAYERS[layer][0]} -> {LAYERS[target_layer][0]})")
            elif entry in COMMANDS and target_entry in COMMANDS and target_entry != entry:
                wrong.append(f"{name} -> {target} (one command package into another)")
    return sorted(wrong)


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every import cycle a depth-first walk meets, as `a -> b -> a`."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                found.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_has_a_layer():
    assert [name for name in all_modules() if owner(name) is None] == []


def test_imports_run_down_the_layers_and_never_across_commands():
    assert wrong_imports(import_graph()) == []


def test_there_is_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_checks_catch_an_upward_import_a_cross_command_import_and_a_cycle():
    made_up = {
        "epx.shaping": {"epx.recipe"},  # foundation -> cores: up
        "epx.sweep.runner": {"epx.train.run", "epx.recipe"},  # sweep -> train: across
        "epx.recipe": {"epx.data"},
        "epx.data": {"epx.recipe"},  # a cycle
    }
    assert wrong_imports(made_up) == [
        "epx.shaping -> epx.recipe (up: foundation -> cores)",
        "epx.sweep.runner -> epx.train.run (one command package into another)",
    ]
    assert cycles(made_up) == ["epx.data -> epx.recipe -> epx.data"]
    assert owner("epx.nosuchthing") is None and owner("epx") == (0, "epx")
