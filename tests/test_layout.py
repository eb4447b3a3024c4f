"""The house's layout: no import circles (function-local imports included), packages in layers,
and the one training loop naming no method (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "rewardlab"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> nx.DiGraph:
    """Module -> module edges of every ``import`` anywhere in a file (inside functions too: a
    circle hidden by a function-local import is still a circle). ``from a.b import c`` points at
    ``a.b.c`` when that is a module, else at ``a.b``."""

    def known(name: str) -> str:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                if t.split(".")[0] == "rewardlab" and known(t) != mod:
                    g.add_edge(mod, known(t))
    return g


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_function_local_imports(tmp_path):
    """The checker itself: a circle closed by an import inside a function is found."""
    pkg = tmp_path / "rewardlab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from rewardlab import b\n")
    (pkg / "b.py").write_text("def f():\n    from rewardlab.a import x\n")
    mods = {"rewardlab": pkg / "__init__.py", "rewardlab.a": pkg / "a.py", "rewardlab.b": pkg / "b.py"}
    cycles = [c for c in nx.strongly_connected_components(import_graph(mods)) if len(c) > 1]
    assert cycles == [{"rewardlab.a", "rewardlab.b"}]


def test_no_import_circles_between_modules():
    g = import_graph(_modules())
    assert g.number_of_edges() > 100  # the walk found the imports
    circles = sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)
    assert circles == [], f"import circles: {circles}"


def test_packages_form_layers():
    """Top-level packages import each other without circles, and the lower floors never reach up."""
    g = import_graph(_modules())
    packages = nx.DiGraph()
    for a, b in g.edges:
        pa, pb = _package(a), _package(b)
        if pa and pb and pa != pb:
            packages.add_edge(pa, pb)
    circles = sorted(sorted(c) for c in nx.strongly_connected_components(packages) if len(c) > 1)
    assert circles == [], f"package circles: {circles}"
    never = {  # package -> packages it must not import
        "errors": "*", "config": {"data", "models", "train", "eval", "cli"},
        "data": {"models", "embed", "heads", "train", "eval", "critic", "cli", "study"},
        "objectives": {"models", "heads", "train", "eval", "critic", "cli"},
        "models": {"train", "heads", "critic", "eval", "study", "strength", "serve", "rubric", "cli"},
        "heads": {"train", "models", "eval", "cli"},
        "critic": {"train", "eval", "cli"},
        "train": {"eval", "study", "strength", "serve", "rubric", "cli"},
        "eval": {"train", "cli"},
        "serve": {"train", "cli"},
    }
    bad = []
    for pkg, forbidden in never.items():
        for dep in packages.successors(pkg) if pkg in packages else []:
            if forbidden == "*" or dep in forbidden:
                bad.append(f"{pkg} -> {dep}")
    assert bad == [], bad
    importers_of_cli = sorted({a for a, b in g.edges if _package(b) == "cli" and _package(a) not in ("cli", "__main__")})
    assert importers_of_cli == [], f"only the command line (and python -m rewardlab) imports cli: {importers_of_cli}"


def test_the_training_loop_names_no_method():
    """train/loop.py calls the plug-ins' hooks (train/methods); no identifier, attribute or string
    in its code names a method (comments and docstrings may give examples)."""
    from rewardlab.train.methods import SECTIONS

    tree = ast.parse((PKG / "train" / "loop.py").read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.alias):
            words.append(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
    names = set(SECTIONS) | {"critic", "metarm", "lora", "joint", "meta"}
    hits = sorted({w for w in words for n in names if n in w.lower()})
    assert hits == [], f"train/loop.py names methods: {hits}"
