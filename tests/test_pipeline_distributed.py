"""The distributed pipeline on a LocalCluster of 2 worker processes (loopback): results equal
to the serial path's, retries, a killed worker, reruns that recompute nothing complete, one
model load per worker."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from _pipeline_distributed_fixtures import ALICE, alice_overrides, max_abs_diff, one_thread  # noqa: E402

from neuroenc.encoding import EncodingResults  # noqa: E402
from neuroenc.pipeline import load_config, run_pipeline  # noqa: E402
from neuroenc.pipeline.distributed import run_distributed  # noqa: E402

pytestmark = pytest.mark.slow
N_FITS = 4  # 3 subjects + the group mean


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from neuroenc.testing import tiny_gpt2

    path = tmp_path_factory.mktemp("model") / "tiny-gpt2"
    tiny_gpt2(n_layer=2, path=path)
    return path


@pytest.fixture(scope="module")
def serial(model_dir, data_dir, tmp_path_factory) -> dict[str, EncodingResults]:
    """The serial path's results (the reference)."""
    out = tmp_path_factory.mktemp("serial")
    with one_thread():
        output = run_pipeline(ALICE, overrides=alice_overrides(model_dir, out, data_dir), verbose=False)
    assert output.tasks["fit_computed"] == N_FITS  # the same graph, run in this process
    return {s: EncodingResults.load(p) for s, p in output.results.items()}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _config(model_dir, data_dir, out, **extra):
    return load_config(ALICE, overrides=alice_overrides(model_dir, out, data_dir, **extra))


def _assert_same(results: dict[str, Path], serial: dict[str, EncodingResults], atol: float = 1e-6):
    assert sorted(results) == sorted(serial) == ["group", "s18", "s22", "s23"]
    for subject, path in results.items():
        got, ref = EncodingResults.load(path), serial[subject]
        assert got.targets == ref.targets
        np.testing.assert_array_equal(got.layers, ref.layers)
        for name, diff in max_abs_diff(got, ref).items():
            assert diff <= atol, (subject, name, diff)
        if ref.noise_ceiling is not None:
            np.testing.assert_allclose(got.noise_ceiling, ref.noise_ceiling, atol=atol)


def test_local_cluster_matches_serial(model_dir, data_dir, tmp_path, serial):
    """`executor: local:2` through run_pipeline: same results as serial, same cache keys."""
    output = run_pipeline(ALICE, executor="local:2", verbose=False,
                          overrides=alice_overrides(model_dir, tmp_path, data_dir))
    _assert_same(output.results, serial)
    assert output.tasks == {"skipped": 0, "submitted": 1 + N_FITS, "computed": 1 + N_FITS,
                            "extract_computed": 1, "fit_computed": N_FITS}
    ref_cache = {p.name for p in Path(serial["s18"].provenance["features_files"]["alice"]).parent.iterdir()}
    assert {p.name for p in (tmp_path / "cache").glob("*.h5")} == ref_cache
    assert output.group_table is not None and list(output.group_table.target) == serial["group"].targets
    assert set(output.timings) == {"load", "extract", "fit"}


def test_bands_and_chunks_merge_to_serial(model_dir, data_dir, tmp_path, serial, client):
    """Layer bands x target chunks, merged per subject: the serial results, the parts gone."""
    config = _config(model_dir, data_dir, tmp_path, **{"executor.kind": "local:2"})
    output = run_distributed(config, client=client, layers_per_task=2, target_chunk=4, verbose=False)
    _assert_same(output.results, serial)
    # 3 layers -> bands [0, 1], [2]; 6 ROIs -> chunks [0, 4), [4, 6)
    assert output.tasks["fit_computed"] == N_FITS * 2 * 2
    assert output.tasks["merge_computed"] == N_FITS
    assert not list((tmp_path / "results" / "parts").glob("*.h5"))
    merged = EncodingResults.load(output.results["s18"])
    assert merged.provenance["merged_parts"] == 2
    np.testing.assert_allclose(merged.qvalues, serial["s18"].qvalues, atol=1e-6)


def test_task_failing_once_is_retried(model_dir, data_dir, tmp_path, serial, client, monkeypatch):
    """A task that fails once (its data loader raises on the worker) is retried; same results."""
    monkeypatch.setenv("NEUROENC_ALLOW_CODE", "1")  # a loader named as module:function
    flag = tmp_path / "fail-once"
    flag.write_text("")
    config = _config(model_dir, data_dir, tmp_path / "out", **{
        "dataset.loader": "_pipeline_distributed_fixtures:load_alice_fail_once",
        "dataset.args": {"flag": str(flag), "resolution": "10mm", "data_dir": str(data_dir),
                         "download": False},
        "executor.retries": 1,
    })
    output = run_distributed(config, client=client, verbose=False)
    assert not flag.exists()  # the failure happened
    _assert_same(output.results, serial)
    assert output.tasks["fit_computed"] == N_FITS


def test_task_failing_without_retries_names_the_task(model_dir, data_dir, tmp_path, client, monkeypatch):
    monkeypatch.setenv("NEUROENC_ALLOW_CODE", "1")  # a loader named as module:function
    flag = tmp_path / "fail-once"
    flag.write_text("")
    config = _config(model_dir, data_dir, tmp_path / "out", **{
        "dataset.loader": "_pipeline_distributed_fixtures:load_alice_fail_once",
        "dataset.args": {"flag": str(flag), "resolution": "10mm", "data_dir": str(data_dir),
                         "download": False},
        "dataset.subjects": ["s18"], "dataset.group_mean": False, "executor.retries": 0,
    })
    from neuroenc.pipeline.distributed import TaskError

    with pytest.raises(TaskError, match=r"task 'fit s18' failed after 0 retries: OSError: simulated"):
        run_distributed(config, client=client, verbose=False)


def test_killed_worker_run_completes(model_dir, data_dir, tmp_path, serial, client):
    """A worker killed (SIGKILL) while the run goes on: its tasks are rescheduled; same results."""
    config = _config(model_dir, data_dir, tmp_path, **{"executor.kind": "local:2"})
    pids_before = set(client.run(os.getpid).values())
    killed = []

    def kill_a_busy_worker(record):
        if killed or record["task"] != "fit":
            return
        busy = [addr for addr, keys in client.processing().items() if keys] or list(client.processing())
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    output = run_distributed(config, client=client, target_chunk=2, callback=kill_a_busy_worker,
                             verbose=False)
    assert killed and killed[0] in pids_before
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in set(client.run(os.getpid).values())  # the nanny started a new one
    _assert_same(output.results, serial)


class _Interrupt(Exception):
    pass


def _wait_idle(client, timeout=60.0):
    deadline = time.time() + timeout
    while any(client.run(lambda dask_worker: dask_worker.state.executing_count).values()):
        assert time.time() < deadline, "workers still busy"
        time.sleep(0.2)


def test_rerun_after_interruption_recomputes_nothing_complete(model_dir, data_dir, tmp_path, serial,
                                                              client):
    """Interrupted after 2 of 12 part fits, then rerun: only what is missing is computed."""
    config = _config(model_dir, data_dir, tmp_path)
    done: list[dict] = []

    def interrupt_after_two_fits(record):
        if record["task"] == "fit":
            done.append(record)
            if len(done) == 2:
                raise _Interrupt

    with pytest.raises(_Interrupt):
        run_distributed(config, client=client, target_chunk=2, callback=interrupt_after_two_fits,
                        verbose=False)
    _wait_idle(client)  # a task running when interrupted still finishes its file
    parts = tmp_path / "results" / "parts"
    complete = {p: p.stat().st_mtime_ns for p in parts.glob("sub-*.h5")}
    assert {Path(r["output"]) for r in done} <= set(complete) and 2 <= len(complete) <= 4
    assert not list((tmp_path / "results").glob("sub-*.h5"))  # no subject was merged
    # a corrupt file under a final name and a stale temporary file are never read as done
    (tmp_path / "results" / "sub-s18.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (parts / ".sub-s22_all_t0-2.h5.x.tmp").write_bytes(b"partial")

    computed: list[str] = []
    output = run_distributed(config, client=client, target_chunk=2, verbose=False,
                             callback=lambda r: computed.append(r["output"]) if r["computed"] else None)
    _assert_same(output.results, serial)
    assert output.tasks["extract_skipped"] == 1 and "extract_computed" not in output.tasks
    assert output.tasks["fit_skipped"] == len(complete)
    assert output.tasks["fit_computed"] == N_FITS * 3 - len(complete)
    assert output.tasks["merge_computed"] == N_FITS
    assert not set(map(Path, computed)) & set(complete)  # nothing complete was computed again

    again = run_distributed(config, client=client, target_chunk=2, verbose=False)
    assert again.tasks == {"skipped": 1 + N_FITS, "submitted": 0, "computed": 0,
                           "extract_skipped": 1, "fit_skipped": N_FITS}


def test_one_model_load_per_worker(model_dir, tmp_path, client):
    """Six runs on two workers: each worker loads the model once, whatever the tasks it gets."""
    from neuroenc.pipeline.config import config_from_dict
    from neuroenc.pipeline.dask_worker import PLUGIN_NAME, WorkerCache, extract_task
    from neuroenc.testing import tiny_transcript

    config = config_from_dict({"dataset": {"loader": "alice"}, "model": {
        "name": str(model_dir), "context_tokens": 16, "stride": 8, "device": "cpu", "dtype": "float32"},
        "output": {"dir": str(tmp_path)}})
    client.register_plugin(WorkerCache(), name=PLUGIN_NAME)
    transcripts = [tiny_transcript(40 + 5 * i, name=f"run-{i}") for i in range(6)]
    futures = [client.submit(extract_task, config, t, pure=False, key=f"extract-{i}-{time.time()}")
               for i, t in enumerate(transcripts)]
    records = client.gather(futures)
    assert all(r["computed"] for r in records)
    loads = {}
    for r in records:
        loads[r["worker"]] = max(loads.get(r["worker"], 0), r["model_loads"])
    assert set(loads.values()) == {1}
    assert len(list(tmp_path.joinpath("cache").glob("*.h5"))) == 6
    again = client.gather([client.submit(extract_task, config, t, pure=False) for t in transcripts])
    assert not any(r["computed"] for r in again)
