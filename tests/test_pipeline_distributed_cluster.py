"""Executors: parsing ``executor.kind``, unreachable schedulers, SLURM options and job scripts
(dask-jobqueue's generated script, and its submission to a stand-in ``sbatch``)."""
from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue")

from neuroenc.pipeline import ConfigError, run_pipeline
from neuroenc.pipeline.config import (
    ExecutorConfig,  # noqa: E402
    config_from_dict,
)
from neuroenc.pipeline.dask_cluster import (  # noqa: E402
    ExecutorSpec,
    check_slurm_options,
    connect,
    parse_executor,
    slurm_cluster,
    worker_memory,
)
from neuroenc.pipeline.distributed import run_distributed  # noqa: E402

SLURM = {"cores": 8, "memory": "30GB", "gpus": 1, "walltime": "02:00:00", "queue": "gpu",
         "account": "lab", "jobs": 2, "job_script_prologue": ["module load cuda"],
         "scheduler_options": {"host": "127.0.0.1"}}


def _config(kind: str, **executor):
    return config_from_dict({"dataset": {"loader": "alice"}, "executor": {"kind": kind, **executor}})


@pytest.mark.parametrize("kind, spec", [
    ("serial", ExecutorSpec("serial")),
    ("local:2", ExecutorSpec("local", n_workers=2)),
    ("local:16", ExecutorSpec("local", n_workers=16)),
    ("dask:tcp://10.0.0.5:8786", ExecutorSpec("dask", address="tcp://10.0.0.5:8786")),
    ("dask:tls://scheduler.lab.org:8786", ExecutorSpec("dask", address="tls://scheduler.lab.org:8786")),
    ("slurm", ExecutorSpec("slurm")),
])
def test_parse_executor(kind, spec):
    assert parse_executor(kind) == spec


@pytest.mark.parametrize("kind, match", [
    ("local:0", r"N in 'local:N' must be a whole number of worker processes >= 1, e.g. 'local:2'"),
    ("local:two", r"Invalid executor 'local:two'"),
    ("local:", r"Invalid executor 'local:'"),
    ("local:-1", r"must be a whole number"),
    ("dask:", r"give the scheduler's address as 'dask:tcp://host:port'"),
    ("dask:localhost:8786", r"Invalid executor 'dask:localhost:8786'.*dask:tcp://10.0.0.5:8786"),
    ("dask:tcp://host", r"dask:tcp://host:port"),
    ("dask:http://host:8786", r"dask:tcp://host:port"),
    ("sge", r"Allowed values are 'serial', 'local:N', 'dask:tcp://host:port', 'slurm', but got 'sge'"),
])
def test_bad_executor_strings(kind, match):
    with pytest.raises(ConfigError, match=match):
        parse_executor(kind)


def test_bad_executor_fails_before_loading_data(tmp_path):
    """run_pipeline with a malformed executor stops at once, naming the expected form."""
    config = config_from_dict({"dataset": {"loader": "no.such.module:load"},
                               "output": {"dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"Invalid executor 'local:zero'"):
        run_pipeline(config, executor="local:zero", verbose=False)
    with pytest.raises(ConfigError, match=r"executor.retries must be an int >= 0; got -1"):
        _config("local:2", retries=-1)  # refused as the config is read (its declared constraint)
    with pytest.raises(ConfigError, match=r"run_distributed needs a Dask executor"):
        run_distributed(_config("serial"), verbose=False)
    with pytest.raises(ValueError, match=r"memory_fraction must be in \(0, 1\], got 0"):
        run_distributed(_config("local:2"), memory_fraction=0, verbose=False)
    assert not list(tmp_path.iterdir())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectionError, match=rf"could not reach the Dask scheduler at '{address}' within 1 s"
                       r".*Start one with 'dask scheduler'"):
        with connect(ExecutorConfig(kind=f"dask:{address}"), timeout=1):
            pass
    with pytest.raises(ConnectionError, match=r"could not reach the Dask scheduler"):
        run_distributed(_config(f"dask:{address}"), timeout=1, verbose=False)


@pytest.mark.parametrize("options, match", [
    ({}, r"executor.slurm is missing 'cores', 'memory'"),
    ({"cores": 8, "jobs": 2}, r"executor.slurm is missing 'memory': .*e.g. executor: \{kind: slurm"),
    ({"cores": 8, "memory": "32GB"}, r"executor.slurm needs 'jobs' .* or 'maximum_jobs'"),
    ({"cores": 8, "memory": "32GB", "minimum_jobs": 1}, r"needs 'jobs'"),
    ({"cores": 8, "memory": "32GB", "jobs": 2, "maximum_jobs": 4}, r"either 'jobs' .* not both"),
    ({"cores": 8, "memory": "32GB", "minimum_jobs": 5, "maximum_jobs": 4}, r"minimum_jobs \(5\) is above"),
    ({"cores": 8, "memory": "32GB", "jobs": 2, "walltme": "1:00:00"},
     r"unknown option executor.slurm.walltme; did you mean executor.slurm.walltime\?"),
    ({"cores": 8, "memory": "32GB", "jobs": 2, "gpu": 1}, r"did you mean executor.slurm.gpus\?"),
    ({"cores": 0, "memory": "32GB", "jobs": 2}, r"executor.slurm.cores must be a whole number >= 1, got 0"),
    ({"cores": 8, "memory": "lots", "jobs": 2}, r"executor.slurm.memory must be a size such as '32GB', got 'lots'"),
    ({"cores": 8, "memory": "32GB", "jobs": 0}, r"executor.slurm.jobs must be a whole number >= 1"),
    ({"cores": 8, "memory": "32GB", "jobs": 1, "gpus": "one"}, r"executor.slurm.gpus must be"),
])
def test_bad_slurm_options(options, match):
    with pytest.raises(ConfigError, match=match):
        check_slurm_options(options)


def test_missing_slurm_options_fail_before_loading_data():
    with pytest.raises(ConfigError, match=r"executor.slurm is missing 'memory'"):
        run_distributed(_config("slurm", slurm={"cores": 4, "jobs": 1}), verbose=False)


def test_slurm_options_to_cluster_arguments():
    kwargs, scale = check_slurm_options(SLURM)
    assert scale == {"jobs": 2}
    assert kwargs["processes"] == 1  # one worker process (one model load) per job by default
    assert kwargs["job_extra_directives"] == ["--gres=gpu:1"]
    assert kwargs["worker_extra_args"] == ["--resources", "GPU=1"]
    assert "gpus" not in kwargs and "jobs" not in kwargs
    _, adaptive = check_slurm_options({"cores": 4, "memory": "8GB", "maximum_jobs": 10})
    assert adaptive == {"maximum_jobs": 10}
    shared, _ = check_slurm_options({"cores": 8, "memory": "64GB", "jobs": 1, "gpus": 4, "processes": 2})
    assert shared["worker_extra_args"] == ["--resources", "GPU=2"]  # the job's 4 GPUs, 2 per worker
    with pytest.raises(ConfigError, match=r"2 GPU\(s\) per job shared by 4 worker processes"):
        check_slurm_options({"cores": 8, "memory": "64GB", "jobs": 1, "gpus": 2, "processes": 4})


def test_slurm_job_script_asks_for_the_configured_resources():
    cluster = slurm_cluster(SLURM, scale=False)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH --cpus-per-task=8",
                      "#SBATCH --mem=28G",  # 30 GB = 27.9 GiB, rounded up
                      "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1"):
        assert directive in lines, directive
    assert "module load cuda" in lines
    worker = next(line for line in lines if "dask_worker" in line)
    assert "--nthreads 8" in worker and "--memory-limit 27.94GiB" in worker
    assert "--resources GPU=1" in worker and "--nworkers" not in worker


def test_slurm_jobs_are_submitted(tmp_path, monkeypatch):
    """``jobs: 2`` submits two copies of the job script with sbatch (a stand-in here)."""
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\ncat "$1" > "$FAKE_SLURM_JOBS/job-$$.sh"\n'
                                    'echo "Submitted batch job $$"\n')
    (bin_dir / "scancel").write_text('#!/bin/sh\necho "$@" >> "$FAKE_SLURM_JOBS/../cancelled"\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod((bin_dir / tool).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_JOBS", str(jobs))
    cluster = slurm_cluster(SLURM)
    try:
        deadline = time.time() + 20
        while len(list(jobs.glob("job-*.sh"))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        scripts = [p.read_text() for p in jobs.glob("job-*.sh")]
        assert len(scripts) == 2
        assert all("#SBATCH --gres=gpu:1" in s and "#SBATCH --mem=28G" in s for s in scripts)
        assert worker_memory(_NoWorkers(), _config("slurm", slurm=SLURM).executor) == int(30e9) // 8
    finally:
        cluster.close()
    cancelled = Path(tmp_path / "cancelled").read_text().split()
    assert len(cancelled) == 2


class _NoWorkers:
    """A client whose scheduler has no workers yet (SLURM jobs still queued)."""

    def scheduler_info(self, n_workers=-1):
        return {"workers": {}}


def test_worker_memory_per_thread():
    class _Client:
        def scheduler_info(self, n_workers=-1):
            return {"workers": {"a": {"memory_limit": 8 * 2**30, "nthreads": 2},
                                "b": {"memory_limit": 16 * 2**30, "nthreads": 1},
                                "c": {"memory_limit": 0, "nthreads": 4}}}

    assert worker_memory(_Client()) == 4 * 2**30
    assert worker_memory(_NoWorkers()) is None
    assert worker_memory(_NoWorkers(), _config("slurm", slurm={"cores": 4, "memory": "16GB", "processes": 2,
                                                               "jobs": 1}).executor) == int(16e9) // 2 // 2
