"""The package's imports run one way: no module imports itself back through others, and the library never imports
the commands (bench/, train/, inspect/, fid/, cli/) or anything above the kernels from inside kernels/."""
import ast
from pathlib import Path

import fastinception

ROOT = Path(fastinception.__file__).parent
KERNELS = ROOT / "kernels" if (ROOT / "kernels").is_dir() else ROOT.parent / "kernels"
COMMANDS = ("fastinception.bench", "fastinception.train", "fastinception.inspect", "fastinception.fid",
            "fastinception.cli", "fastinception.__main__")


def _module_name(path: Path) -> str:
    if path.is_relative_to(KERNELS):
        parts = ["fastinception", "kernels", *path.relative_to(KERNELS).with_suffix("").parts]
    else:
        parts = ["fastinception", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict:
    """module -> the package's modules it imports (at any depth of its code), resolved to module names."""
    files = [*ROOT.rglob("*.py"), *KERNELS.rglob("*.py")]
    modules = {_module_name(f): f for f in files}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_no_import_cycle():
    graph = _imports()
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_library_never_imports_the_commands():
    graph = _imports()
    core = [m for m in graph if not m.startswith(COMMANDS)]
    bad = {m: sorted(t for t in graph[m] if t.startswith(COMMANDS)) for m in core}
    assert not {m: t for m, t in bad.items() if t}


def test_kernels_import_nothing_above_them():
    graph = _imports()
    bad = {m: sorted(t for t in targets if not t.startswith("fastinception.kernels"))
           for m, targets in graph.items() if m.startswith("fastinception.kernels")}
    assert not {m: t for m, t in bad.items() if t}


def test_the_package_root_holds_the_public_api_and_few_modules():
    # what a block is lives in blocks/, the oracles in reference/, each computation in its subpackage
    modules = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(modules) <= 12, modules
