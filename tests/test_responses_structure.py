"""Where things live after the move to neuroenc.responses: no solver imports torch, no private mne
API, and the old modules are gone (no shims)."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neuroenc"


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_importing_the_ridge_solver_does_not_import_torch():
    code = ("import sys, neuroenc.encoding._ridge, neuroenc.encoding.sweep; "
            "print(sorted(m for m in ('torch', 'himalaya') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
    # and no import of torch is written in the solver, even inside a function
    assert not [m for m in _imports(PACKAGE / "encoding" / "_ridge.py") if m.split(".")[0] == "torch"]


def test_no_private_mne_api():
    offenders = [f"{p.relative_to(PACKAGE)}: {m}" for p in PACKAGE.rglob("*.py") for m in _imports(p)
                 if m.startswith("mne.") and any(part.startswith("_") for part in m.split(".")[1:])]
    assert offenders == []


@pytest.mark.parametrize("old", ["neuroenc.align.response", "neuroenc.encoding.io", "neuroenc.datasets._bold"])
def test_moved_modules_left_no_shim(old):
    assert importlib.util.find_spec(old) is None


def test_align_modules_have_one_job_each():
    """The 835-line design module is split: container, fMRI, MEG/EEG, nuisance bands."""
    for name in ("design", "fmri", "meg", "nuisance", "runs", "wordrate"):
        assert (PACKAGE / "align" / f"{name}.py").exists(), name
    assert len((PACKAGE / "align" / "design.py").read_text().splitlines()) < 450
    import neuroenc.align as align

    for public in ("Design", "make_fmri_design", "make_meg_design", "word_rate"):
        assert public in align.__all__ and hasattr(align, public)
