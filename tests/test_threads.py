"""Thread pools (:mod:`neuroenc._threads`): the default from affinity and cgroup quota, the
``NEUROENC_THREADS`` variable and ``--threads`` option, restoring limits, provenance."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from neuroenc import _threads, cli
from neuroenc._threads import (
    ENV_VAR,
    available_cores,
    cgroup_cpu_quota,
    current_threads,
    resolve_threads,
    thread_limits,
    worker_threads,
)


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """An 8-CPU affinity on an idle 16-CPU machine, no NEUROENC_THREADS, and the cgroup files under ``tmp_path/cgroup``
    (none written yet: no quota)."""
    root = tmp_path / "cgroup"
    root.mkdir()
    monkeypatch.setattr(_threads, "CGROUP_ROOT", root)
    monkeypatch.setattr(_threads, "_cgroup_dirs", lambda r: [r])
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (0.5, 0.5, 0.5))  # an idle machine
    monkeypatch.setattr(_threads, "LOADAVG", tmp_path / "loadavg")  # no count of runnable tasks (written by tests)
    for name in (ENV_VAR, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    return root


def _pools() -> dict[str, int]:
    return {(info["user_api"], info["filepath"]): info["num_threads"] for info in threadpool_info()}


def test_default_is_the_affinity_over_the_processes(machine):
    setting = resolve_threads()
    assert (setting.threads, setting.source, setting.affinity, setting.quota) == (8, "default", 8, None)
    assert resolve_threads(processes=3).threads == 2
    assert resolve_threads(processes=20).threads == 1  # never 0
    assert available_cores() == 8


def test_the_load_caps_the_default(machine, monkeypatch):
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (12.6, 9.0, 9.0))  # 3.4 cores idle
    setting = resolve_threads()
    assert (setting.threads, setting.source, setting.load) == (3, "load", 12.6)
    assert resolve_threads(processes=4).threads == 2  # the share is below the idle cores
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (40.0, 9.0, 9.0))  # oversubscribed
    assert resolve_threads().threads == 1
    assert resolve_threads(2).threads == 2  # an explicit number is not capped
    monkeypatch.setenv(ENV_VAR, "4")
    assert resolve_threads().threads == 4


def test_tasks_runnable_now_cap_the_default_before_the_average_sees_them(machine, monkeypatch, tmp_path):
    """Two jobs started together: the load average is still low, the count of runnable tasks
    is not (the kernel's fourth field of /proc/loadavg, less the reading task)."""
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 12/412 4242\n")
    assert _threads.runnable_now() == 11
    setting = resolve_threads()
    assert (setting.threads, setting.source, setting.load) == (5, "load", 11.0)  # 16 CPUs - 11
    # a task that runs for a moment is not a busy machine: the fewest of the reads counts
    reads = iter(["0.50 0.40 0.30 12/412 1", "0.50 0.40 0.30 1/412 1", "0.50 0.40 0.30 9/412 1"])
    monkeypatch.setattr(_threads, "_read", lambda path: next(reads))
    assert _threads.runnable_now() == 0
    # an average above the count wins
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 2/412 4242\n")
    monkeypatch.setattr(_threads, "_read", lambda path: path.read_text().strip())
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (12.6, 9.0, 9.0))
    assert _threads.system_load() == 12.6
    (tmp_path / "loadavg").write_text("garbled")
    assert _threads.runnable_now() is None and _threads.system_load() == 12.6


def test_the_pools_own_variables_cap_the_default(machine, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert (resolve_threads().threads, resolve_threads().source) == (3, "OPENBLAS_NUM_THREADS")
    assert (resolve_threads(processes=4).threads, resolve_threads(processes=4).source) == (2, "default")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert (resolve_threads().threads, resolve_threads().source) == (1, "OMP_NUM_THREADS")
    monkeypatch.setenv(ENV_VAR, "4")  # neuroenc's own variable is not capped
    assert resolve_threads().threads == 4
    with thread_limits(2, option="--threads"):
        assert resolve_threads().threads == 2


@pytest.mark.parametrize("text, quota, threads", [("250000 100000", 2.5, 2), ("max 100000", None, 8),
                                                 ("50000 100000", 0.5, 1)])
def test_default_respects_a_cgroup_v2_quota(machine, text, quota, threads):
    (machine / "cpu.max").write_text(text + "\n")
    assert cgroup_cpu_quota() == quota
    setting = resolve_threads()
    assert (setting.threads, setting.quota) == (threads, quota)
    assert available_cores() == threads


def test_default_respects_a_cgroup_v1_quota(machine):
    (machine / "cpu").mkdir()
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (machine / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota() == 3.0
    assert resolve_threads().threads == 3
    assert resolve_threads(processes=2).threads == 1
    (machine / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cgroup_cpu_quota() is None
    assert resolve_threads().threads == 8


def test_the_environment_variable_and_the_argument_win(machine, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "3")
    setting = resolve_threads(processes=4)
    assert (setting.threads, setting.source) == (3, ENV_VAR)
    setting = resolve_threads(5, option="--threads")
    assert (setting.threads, setting.source) == (5, "--threads")
    with thread_limits(2, option="--threads"):  # an enclosing setting beats the variable
        assert (resolve_threads().threads, resolve_threads().source) == (2, "--threads")


def test_an_enclosing_default_is_worked_out_again_for_the_processes(machine):
    with thread_limits() as outer:
        assert outer.threads == 8
        assert resolve_threads(processes=4).threads == 2


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_invalid_values_name_the_option(machine, monkeypatch, value):
    with pytest.raises(ValueError, match=rf"Invalid value for --threads: '{value}'\. Give a whole number"):
        resolve_threads(value, option="--threads")
    if value:
        monkeypatch.setenv(ENV_VAR, value)
        with pytest.raises(ValueError, match=rf"Invalid value for NEUROENC_THREADS: '{value}'.*NEUROENC_THREADS=1"):
            resolve_threads()
    with pytest.raises(ValueError, match="Invalid value for threads: True"):
        resolve_threads(True)


def test_the_context_manager_sets_and_restores_the_pools(machine, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    torch_before = torch.get_num_threads()
    with threadpool_limits(limits=2):
        torch.set_num_threads(2)
        try:
            before = _pools()
            assert set(before.values()) == {2}
            with thread_limits(1) as setting:
                assert setting.threads == 1
                assert set(_pools().values()) == {1}
                assert torch.get_num_threads() == 1
                assert current_threads()["torch"] == 1
                assert _threads.os.environ["OMP_NUM_THREADS"] == "1"
            assert _pools() == before
            assert torch.get_num_threads() == 2
            assert _threads.os.environ["OMP_NUM_THREADS"] == "7"
            assert _threads._ACTIVE.get() is None  # no setting left active
            with pytest.raises(RuntimeError, match="boom"), thread_limits(1):
                raise RuntimeError("boom")
            assert _pools() == before
            assert torch.get_num_threads() == 2
        finally:
            torch.set_num_threads(torch_before)


def _capture(monkeypatch):
    """Make ``neuroenc report`` record the threads it runs with, instead of its work."""
    from neuroenc.commands import report

    seen = {}

    def run(args):
        seen["setting"] = resolve_threads()
        seen["pools"] = current_threads()
        return 0

    monkeypatch.setattr(report, "run", run)
    return seen


@pytest.mark.parametrize("argv", [["--threads", "1", "report", "--results", "x.h5", "--out", "r.html"],
                                  ["report", "--results", "x.h5", "--out", "r.html", "--threads", "1"],
                                  ["--threads", "3", "report", "--results", "x.h5", "--out", "r.html",
                                   "--threads", "1"]])
def test_the_threads_option_wins_before_or_after_the_command(machine, monkeypatch, argv):
    monkeypatch.setenv(ENV_VAR, "2")
    seen = _capture(monkeypatch)
    assert cli.main(argv) == 0
    assert (seen["setting"].threads, seen["setting"].source) == (1, "--threads")
    assert seen["pools"]["blas"] == 1


def test_the_command_uses_the_variable_else_the_default(machine, monkeypatch):
    seen = _capture(monkeypatch)
    assert cli.main(["report", "--results", "x.h5", "--out", "r.html"]) == 0
    assert (seen["setting"].threads, seen["setting"].source) == (8, "default")
    monkeypatch.setenv(ENV_VAR, "1")
    assert cli.main(["report", "--results", "x.h5", "--out", "r.html"]) == 0
    assert (seen["setting"].threads, seen["setting"].source) == (1, ENV_VAR)
    assert seen["pools"]["blas"] == 1


def test_bad_threads_on_the_command_line(machine, monkeypatch, capsys):
    _capture(monkeypatch)
    with pytest.raises(SystemExit) as err:
        cli.main(["report", "--results", "x.h5", "--out", "r.html", "--threads", "0"])
    assert err.value.code == 2
    assert "argument --threads: Invalid value for --threads: '0'" in capsys.readouterr().err
    monkeypatch.setenv(ENV_VAR, "many")
    assert cli.main(["report", "--results", "x.h5", "--out", "r.html"]) == 1
    assert "error: Invalid value for NEUROENC_THREADS: 'many'" in capsys.readouterr().err


def test_worker_threads_share_the_workers_cores(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert worker_threads(8) == 1  # a dask-jobqueue worker: one thread per core, one task per thread
    monkeypatch.setenv(ENV_VAR, "4")  # the local cluster's share for each worker
    assert worker_threads(1) == 4
    assert worker_threads(2) == 2
    monkeypatch.setenv(ENV_VAR, "x")
    with pytest.raises(ValueError, match="NEUROENC_THREADS"):
        worker_threads(1)


def test_dask_tasks_set_the_workers_share(monkeypatch):
    import distributed

    from neuroenc.pipeline import dask_worker

    monkeypatch.setenv(ENV_VAR, "2")
    monkeypatch.setattr(distributed, "get_worker", lambda: types.SimpleNamespace(nthreads=1))
    with threadpool_limits(limits=1):
        with dask_worker._task_threads():
            setting = resolve_threads()
            assert (setting.threads, setting.source) == (2, "worker")
            assert current_threads()["blas"] == 2
        assert current_threads()["blas"] == 1
        with dask_worker.local_worker(dask_worker.WorkerCache()), dask_worker._task_threads():
            assert current_threads()["blas"] == 1  # the serial executor: the command's setting holds


def test_the_local_cluster_gives_each_worker_its_share(machine, monkeypatch):
    import distributed

    from neuroenc.pipeline import dask_cluster
    from neuroenc.pipeline.config import ExecutorConfig

    made = {}

    class FakeCluster:
        def __init__(self, **kwargs):
            made.update(kwargs)

    class FakeClient:
        def __init__(self, cluster):
            pass

        def close(self):
            pass

    monkeypatch.setattr(distributed, "LocalCluster", FakeCluster)
    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(dask_cluster, "close_cluster", lambda cluster: None)
    monkeypatch.setattr(dask_cluster, "dashboard", lambda client: None)
    monkeypatch.setattr(_threads.os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    with dask_cluster.connect(ExecutorConfig(kind="local:3")):
        pass
    assert made["env"] == {ENV_VAR: "2"}
    assert made["threads_per_worker"] == 1
    with thread_limits(1, option="--threads"), dask_cluster.connect(ExecutorConfig(kind="local:3")):
        pass
    assert made["env"] == {ENV_VAR: "1"}


def test_provenance_records_the_setting(tmp_path):
    from neuroenc.encoding import fit_encoding
    from neuroenc.encoding.results import EncodingResults
    from neuroenc.encoding.simulate import simulate_layers

    layers, Y = simulate_layers(n_samples=120, n_targets=4, noise=(1.0, np.inf), signal=1.0, random_state=0)
    with thread_limits(1, option="--threads"):
        results = fit_encoding(layers, Y, n_permutations=10, verbose=False)
    threads = results.provenance["threads"]
    assert threads["setting"]["threads"] == 1
    assert threads["setting"]["source"] == "--threads"
    assert threads["setting"]["affinity"] >= 1
    assert threads["pools"]["blas"] == 1
    results.save(tmp_path / "r.h5")
    loaded = EncodingResults.load(tmp_path / "r.h5")
    assert json.loads(json.dumps(loaded.provenance["threads"])) == json.loads(json.dumps(threads))


def test_parts_fitted_with_other_threads_merge(tmp_path):
    """A part's threads follow its worker and the load: parts that differ only there merge, and
    the merged provenance keeps each part's setting."""
    from neuroenc.encoding import fit_encoding
    from neuroenc.encoding.merge import merge_results
    from neuroenc.encoding.simulate import simulate_layers

    layers, Y = simulate_layers(n_samples=120, n_targets=4, noise=(1.0, np.inf), signal=1.0, random_state=0)
    parts = []
    for n, cols in ((1, slice(0, 2)), (2, slice(2, 4))):
        with thread_limits(n, option="--threads"):
            names = [f"t{j}" for j in range(4)][cols]
            parts.append(fit_encoding(layers, Y[:, cols], targets=names, n_permutations=10, random_state=0,
                                      verbose=False))
    whole = fit_encoding(layers, Y, targets=[f"t{j}" for j in range(4)], n_permutations=10, random_state=0,
                         verbose=False)
    merged = merge_results(parts, axis="targets")
    np.testing.assert_allclose(merged.r, whole.r, atol=1e-10)
    assert [t["setting"]["threads"] for t in merged.provenance["threads"]] == [1, 2]
