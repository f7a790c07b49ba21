"""The package's structure, read from its source (AST): no import cycles between its modules, no
imports of another module's private names, and subpackage ``__all__`` lists of public names only.

Imports inside functions count (a deferred import that closes a cycle is still a cycle: it only
moves the failure to run time); imports under ``if TYPE_CHECKING:`` do not (they never run).
The package-wide private helper modules (``neuroenc._validation``, ``_io``, ``_logging``,
``_settings``) are meant to be imported everywhere, as mne's ``mne.utils._check_option`` is; a
subpackage may import its own private submodules (``from . import _ridge``), not another's.
"""
from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neuroenc"
#: Private modules whose names any module may import.
SHARED_PRIVATE = {"neuroenc._validation", "neuroenc._io", "neuroenc._logging", "neuroenc._settings"}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _runtime_tree(path: Path) -> ast.Module:
    """The module's AST without its ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = [ast.Pass()]
    return tree


def _imports(module: str) -> Iterator[tuple[str, str | None, int]]:
    """``(target module, imported name or None, line)`` of every import of a neuroenc module,
    at any depth; ``from pkg import sub`` with ``sub`` a module gives ``(pkg.sub, None, line)``."""
    path, is_pkg = MODULES[module]
    for node in ast.walk(_runtime_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "neuroenc":
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "neuroenc":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    yield sub, None, node.lineno
                else:
                    yield target, alias.name, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        edges = graph.setdefault(module, {})
        for target, _, line in _imports(module):
            if target in MODULES and target != module:
                edges.setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _owner_package(module: str) -> str:
    path, is_pkg = MODULES[module]
    return module if is_pkg else module.rsplit(".", 1)[0]


def private_imports() -> list[str]:
    """Every import of another module's private name, or of another subpackage's private module."""
    found = []
    for module in MODULES:
        mine = _owner_package(module)
        for target, name, line in _imports(module):
            where = f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{line}"
            if target not in SHARED_PRIVATE:
                parts = target.split(".")
                for i, part in enumerate(parts):
                    if _is_private(part):
                        owner = ".".join(parts[:i])
                        if not (mine == owner or mine.startswith(owner + ".")):
                            found.append(f"{where}: {module} imports the private module {target}")
                        break
            if name is not None and _is_private(name) and target not in SHARED_PRIVATE:
                found.append(f"{where}: {module} imports the private name {name} of {target}")
    return found


# ---------------------------------------------------------------------- the checks
def test_the_scan_sees_every_kind_of_import():
    """The scanner itself: relative, absolute and deferred imports are edges; a cycle is found."""
    edges = import_graph()
    assert "neuroenc._validation" in edges["neuroenc.features.cache"]  # from .._validation import ...
    assert "neuroenc.features.featureset" in edges["neuroenc.features.extract"]  # from .featureset import ...
    assert "neuroenc.pipeline.loaders" in edges["neuroenc.pipeline.config"]  # deferred, inside data_kind
    assert "neuroenc.encoding._ridge" in edges["neuroenc.encoding.sweep"]  # from . import _ridge
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycles():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} imports {b} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle: " + "; ".join(steps))


def test_no_imports_of_private_names():
    assert private_imports() == []


def test_no_calls_of_private_attributes_of_imported_names():
    """``module._name`` or ``Class._name`` on a name imported from another neuroenc module (the
    form an import check cannot see); ``_parameter_constraints`` is read with
    :func:`neuroenc._settings.constraints_of`."""
    found = []
    for path, _ in MODULES.values():
        tree = _runtime_tree(path)
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("neuroenc")):
                imported.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update((a.asname or a.name).split(".")[0] for a in node.names
                                if a.name.startswith("neuroenc"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in imported):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


SUBPACKAGES = sorted(m for m, (_, is_pkg) in MODULES.items() if is_pkg)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_all_lists_existing_public_names(name):
    module = importlib.import_module(name)
    names = list(getattr(module, "__all__", []))
    assert len(names) == len(set(names)), f"{name}.__all__ repeats {sorted({n for n in names if names.count(n) > 1})}"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names {missing}, which {name} does not have"
    private = [n for n in names if _is_private(n)]
    assert private == [], f"{name}.__all__ names private {private}"


def test_all_lists_no_name_of_another_subpackage():
    """A public name is listed once, by the subpackage that defines it (no re-exports)."""
    owners: dict[str, list[str]] = {}
    for name in SUBPACKAGES:
        module = importlib.import_module(name)
        for n in getattr(module, "__all__", []):
            obj = getattr(module, n)
            defined = getattr(obj, "__module__", None) or name
            if name != "neuroenc" and isinstance(defined, str) and defined.startswith("neuroenc.") \
                    and not (defined == name or defined.startswith(name + ".")) \
                    and not defined.startswith("neuroenc._"):
                owners.setdefault(n, []).append(f"{name} (defined in {defined})")
    assert owners == {}


#: The most public names the subpackages may list together (issue 19: a small API, as himalaya's
#: about ten names a subpackage; everything else is importable from its module, and private).
MAX_PUBLIC_NAMES = 80


def test_the_public_api_is_small():
    """The subpackages' ``__all__`` lists together hold at most MAX_PUBLIC_NAMES names, and a
    subpackage exposes no other name of its modules (``from neuroenc.encoding import X`` works
    exactly for the X in ``neuroenc.encoding.__all__``)."""
    total = 0
    extra = {}
    for name in SUBPACKAGES:
        if name == "neuroenc" or name.startswith("neuroenc.commands"):
            continue
        module = importlib.import_module(name)
        names = set(getattr(module, "__all__", []))
        total += len(names)
        submodules = {m.rsplit(".", 1)[1] for m in MODULES if m.startswith(name + ".")}
        others = [n for n, v in vars(module).items() if not n.startswith("_") and n not in names
                  and n not in submodules and n != "annotations" and not isinstance(v, type(importlib))]
        if others:
            extra[name] = sorted(others)
    assert total <= MAX_PUBLIC_NAMES, f"{total} public names; the API is at most {MAX_PUBLIC_NAMES}"
    assert extra == {}


# ---------------------------------------------------------------------- one path for every kind of data
#: The modules and names that are about stimulus-level data sets (stimuli without time).
STIMULUS_MODULES = {
    "neuroenc.stimuli.stimulus_set", "neuroenc.stimuli.responses", "neuroenc.datasets.stimuli",
    "neuroenc.datasets.naturalstories_rt", "neuroenc.features.stimuli", "neuroenc.features.stimulus_features",
    "neuroenc.features.stimulus_plan", "neuroenc.align.stimuli", "neuroenc.encoding.stimulus_fit",
}
STIMULUS_NAMES = {
    "StimulusSet", "StimulusDataset", "StimulusResponses", "read_stimulus_responses", "read_stimuli",
    "read_stimuli_events", "StimulusFeatures", "load_stimulus_features", "is_stimulus_file", "StimulusExtractor",
    "extract_stimulus_features", "stimulus_surprisal", "StimulusDesign", "make_stimulus_design", "fit_stimuli",
    "stimulus_regressors", "load_stimuli", "load_naturalstories_rt", "is_stimulus_loader",
}
#: The only modules that may import them: the readers (stimuli/, datasets/, the pipeline's loader of
#: data sets), the extractors (features/), the stimulus design (align/stimuli.py, re-exported by align/)
#: and its one-call wrapper (encoding/stimulus_fit.py, re-exported by encoding/), the settings that
#: declare the stimulus sections of a config, the command-line readers of files, and the bridges
#: that read other tools' stimulus sets (Brain-Score assemblies).
STIMULUS_PACKAGES = ("neuroenc.stimuli", "neuroenc.datasets", "neuroenc.features", "neuroenc.bridges")
STIMULUS_ALLOWED = {"neuroenc.pipeline.loaders", "neuroenc.align", "neuroenc.encoding", "neuroenc.pipeline.config",
                    "neuroenc.commands.fit", "neuroenc.commands.extract"}


def _allowed(module: str) -> bool:
    return module in STIMULUS_ALLOWED or module in STIMULUS_MODULES or any(
        module == p or module.startswith(p + ".") for p in STIMULUS_PACKAGES)


def stimulus_importers() -> list[str]:
    """Every import of a stimulus-specific module or name by a module outside :data:`STIMULUS_ALLOWED`."""
    found = []
    for module in MODULES:
        if _allowed(module):
            continue
        for target, name, line in _imports(module):
            if target in STIMULUS_MODULES or name in STIMULUS_NAMES:
                where = f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{line}"
                found.append(f"{where}: {module} imports {name or target}")
    return found


def test_only_readers_and_extractors_know_stimulus_data():
    """No module outside the readers, the extractors and the stimulus design branches on stimulus-level vs
    story data: one design, one fit, one runner, one results writer (the pipeline, encoding, mapping and
    report see designs whose rows are samples or stimuli)."""
    assert stimulus_importers() == []
    # the scan sees what it is meant to see: the allowed modules do import them
    assert any(name == "StimulusDataset" for target, name, _ in _imports("neuroenc.pipeline.loaders"))
    assert "neuroenc.pipeline.stimuli_run" not in MODULES and "neuroenc.pipeline.run" in MODULES
    assert not _allowed("neuroenc.pipeline.tasks") and not _allowed("neuroenc.encoding.sweep")
