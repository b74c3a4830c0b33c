"""The package's structure: imports point down (no cycle), and the core imports nothing above it."""
import ast
import os
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


# The layers of the package, lowest first: a module imports only modules of its own layer or below.
LAYERS = (
    ("core", ("types", "names", "config", "ops", "networks", "world_model", "optim", "xla", "agent", "planner")),
    ("environments, buffers and files", ("envs", "buffers", "checkpoints", "logs", "sharding", "malloc", "official",
                                         "official_code", "convert", "torch_archive")),
    ("the run layer", ("run_record", "run_config", "environments", "loading", "acting", "evaluation")),
    ("the loops", ("loops", "speculative")),
    ("the commands", ("cli", "process_guard", "configs", "train", "evaluate", "sweep", "parity", "plot", "speculative.collect",
                      "speculative.evaluate", "speculative.train_corrector", "speculative.tune")),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of a module (its longest matching name or package prefix)."""
    best, index = "", None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, index = name, i
    assert index is not None, f"{module} is in no layer of tests/test_structure.py's LAYERS"
    return index


def test_imports_point_down_the_layers():
    graph = import_graph()
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in sorted(graph.items()) if m not in ("", "__init__")
              for d in sorted(deps) if d not in ("", "__init__") and layer_of(d) > layer_of(m)]
    assert upward == []


def test_the_package_imports_nothing_outside_it():
    outside = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            outside += [f"{path.relative_to(PACKAGE)}: {n}" for n in names
                        if n.split(".")[0] in ("benchmarks", "experiments", "tests", "configs")]
        if "../shared" in path.read_text():
            outside.append(f"{path.relative_to(PACKAGE)} reads ../shared")
    assert outside == []


def test_importing_the_package_changes_nothing_in_the_process_environment():
    import subprocess
    import sys

    modules = sorted(m for m in import_graph() if m not in ("", "__init__"))
    probe = ("import importlib, os; before = dict(os.environ)\n"
             f"for m in {modules!r}: importlib.import_module('tdmpc2_jax.' + m)\n"
             "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
             "print(changed)")
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
