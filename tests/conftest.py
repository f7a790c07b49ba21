"""Shared fixtures, as nilearn's conftest: Agg backend, figures closed, seeded rng, real data."""
from __future__ import annotations

import os
from pathlib import Path

# One BLAS/OpenMP thread per test process: the tests' matrices are small (threads only add
# synchronisation), results are bitwise reproducible, and a busy machine is not oversubscribed.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# matplotlib after the thread settings above
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Tests never touch the network: the model hub is off, data come from disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _shared_data() -> Path | None:
    env = os.environ.get("NEUROENC_DATA")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (candidate / "alice-brennan2016").is_dir():
            return candidate.resolve()
    return None


@pytest.fixture(autouse=True)
def restore_logger():
    """The CLI's ``main`` sets the package logger's level and adds a handler (to the stderr of
    the moment, which pytest's capture closes after the test): undo it after each test."""
    import logging

    log = logging.getLogger("neuroenc")
    level, handlers = log.level, list(log.handlers)
    yield
    log.setLevel(level)
    log.handlers[:] = handlers


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real data sets (``../shared/data``); tests that need it skip without it."""
    path = _shared_data()
    if path is None:
        pytest.skip("real data not found: set NEUROENC_DATA or provide ../shared/data")
    return path


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
