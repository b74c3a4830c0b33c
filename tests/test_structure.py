"""The package's structure: imports point down (no cycle), and the core imports nothing above it."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tdmpc2_jax"
CORE = ("types", "config", "ops", "networks", "world_model", "optim", "xla", "agent", "planner")
ABOVE_CORE = ("loops", "envs", "speculative", "buffers", "acting", "cli", "train", "evaluate", "logs", "checkpoints")


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (dotted names below tdmpc2_jax)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tdmpc2_jax"):
                base = node.module.removeprefix("tdmpc2_jax").lstrip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}".lstrip(".")
                    deps.add(sub if (PACKAGE / (sub.replace(".", "/") + ".py")).exists() else base)
        graph[name] = {d for d in deps if d and d != name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph, state, cycles = import_graph(), {}, []

    def visit(module, stack):
        state[module] = "open"
        for dep in graph.get(module, ()):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert len(graph) > 30 and cycles == []


def test_the_core_imports_nothing_above_it():
    graph = import_graph()
    upward = {m: sorted(d for d in graph[m] if d.split(".")[0] in ABOVE_CORE) for m in CORE}
    assert all(deps == [] for deps in upward.values()), upward
