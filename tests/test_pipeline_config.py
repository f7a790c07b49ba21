"""Run configs: defaults, validation, overrides."""
import re

import numpy as np
import pytest

from neuroenc.pipeline import ConfigError, load_config
from neuroenc.pipeline.config import config_from_dict


def test_defaults_and_alpha_grid():
    cfg = config_from_dict({"dataset": {"loader": "alice"}})
    # delays: make_fmri_design's default (None: (1, 2, 3, 4), or (0,) with an HRF)
    assert cfg.model.name == "smollm2-135m" and cfg.alignment.delays is None
    np.testing.assert_allclose(cfg.encoding.alpha_grid(), np.logspace(-1, 7, 17))
    cfg = config_from_dict({"dataset": {"loader": "alice"}, "encoding": {"alphas": [1, 10]}})
    np.testing.assert_array_equal(cfg.encoding.alpha_grid(), [1.0, 10.0])
    assert cfg.to_dict()["dataset"]["loader"] == "alice"


@pytest.mark.parametrize(
    "values, match",
    [
        ({"dataset": {"loader": "alice"}, "model": {"contxt_tokens": 5}},
         "unknown key model.contxt_tokens.*did you mean model.context_tokens"),
        ({"dataset": {"loader": "alice"}, "modle": {}}, "unknown section 'modle'.*did you mean 'model'"),
        ({"dataset": {}}, "dataset.loader is required"),
        ({"dataset": {"loader": "alice"}, "model": {"pooling": "max"}}, "Invalid value for 'model.pooling'"),
        ({"dataset": {"loader": "alice"}, "alignment": {"trim": [1]}},
         r"alignment.trim must be an int >= 0 or a list of 2 ints >= 0; got \[1\]"),
        ({"dataset": {"loader": "alice"}, "encoding": {"alphas": [-1]}}, "a list of positive numbers; got \\[-1\\]"),
        ({"dataset": {"loader": "alice"}, "encoding": {"alphas": {"linspace": [1, 2, 3]}}}, "logspace"),
        ({"dataset": {"loader": "alice"}, "executor": {"kind": "mpi"}},
         r"executor.kind must be 'serial', 'slurm', 'dask', local:N or dask:tcp://host:port; got 'mpi' \(str\)"),
        ({"dataset": {"loader": "alice"}, "model": "big"}, "section 'model' must be a mapping"),
    ],
)
def test_invalid(values, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(values)


def test_load_yaml_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndataset:\n  loader: alice\noutput:\n  cache_dir: cache\n")
    cfg = load_config(path, overrides={"model.layers": [0, 3], "output.dir": "o"})
    assert cfg.name == "t" and cfg.model.layers == [0, 3] and cfg.output.dir == "o"
    assert cfg.resolve(cfg.output.cache_dir) == tmp_path / "cache"
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="could not parse .*bad.yaml"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


# ---------------------------------------------------------------------- issue 18 item 8
#: Values of the wrong type in the sections of the config's own (dataset, output, executor) and
#: the name: each error names the field, the value and the expected type.
WRONG_TYPES = [
    ({"dataset": {"loader": "alice", "group_mean": "false"}},
     r"dataset.group_mean.* must be true or false; got 'false' \(str\)"),
    ({"dataset": {"loader": "alice", "args": [1, 2]}}, r"dataset.args.* must be a mapping; got \[1, 2\] \(list\)"),
    ({"dataset": {"loader": 5}}, r"dataset.loader.* must be a string; got 5 \(int\)"),
    ({"dataset": {"loader": "alice", "subjects": {"a": 1}}},
     r"dataset.subjects.* must be null, a string, an int or a list of strings or ints; got \{'a': 1\} \(dict\)"),
    ({"dataset": {"loader": "alice", "transcript_encoding": 1252}},
     r"dataset.transcript_encoding.* must be null or a string; got 1252 \(int\)"),
    ({"dataset": {"loader": "alice"}, "output": {"report": 5}},
     r"output.report.* must be null or a string; got 5 \(int\)"),
    ({"dataset": {"loader": "alice"}, "output": {"cache_dir": True}},
     r"output.cache_dir.* must be null or a string; got True \(bool\)"),
    ({"dataset": {"loader": "alice"}, "output": {"dir": ["a"]}},
     r"output.dir.* must be a string; got \['a'\] \(list\)"),
    ({"dataset": {"loader": "alice"}, "executor": {"kind": 5}},
     r"executor.kind.* must be 'serial', 'slurm', 'dask', local:N or dask:tcp://host:port; got 5 \(int\)"),
    ({"dataset": {"loader": "alice"}, "executor": {"kind": "local:0"}}, r"executor.kind.* got 'local:0'"),
    ({"dataset": {"loader": "alice"}, "executor": {"retries": "2"}},
     r"executor.retries.* must be an int >= 0; got '2'"),
    ({"dataset": {"loader": "alice"}, "executor": {"memory_fraction": 1.5}},
     r"executor.memory_fraction.* must be a number in \(0, 1\]; got 1.5"),
    ({"dataset": {"loader": "alice"}, "executor": {"slurm": "big"}}, r"executor.slurm.* must be a mapping; got 'big'"),
    ({"dataset": {"loader": "alice"}, "executor": {"kind": "serial", "retires": 1}},
     r"unknown key executor.retires.*did you mean executor.retries\?"),
    ({"name": 7, "dataset": {"loader": "alice"}}, r"name.* must be a string; got 7 \(int\)"),
]


@pytest.mark.parametrize("values, match", WRONG_TYPES)
def test_own_sections_are_type_checked(values, match, tmp_path):
    """dataset, output, executor and name are checked from their declared constraints, from a
    dict and from a YAML file (the message names the file)."""
    import yaml

    with pytest.raises(ConfigError, match=match):
        config_from_dict(values)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    with pytest.raises(ConfigError, match=match.replace(".*", ".*run.yaml.*", 1) if ".*" in match else match):
        load_config(path)


@pytest.mark.parametrize("values, match", WRONG_TYPES)
def test_own_sections_type_errors_on_the_command_line(values, match, tmp_path, capsys, monkeypatch):
    """`neuroenc run` with such a config: one line naming the field, exit 1, no traceback,
    nothing written."""
    import yaml

    from neuroenc.cli import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuroenc run: error: ") and "Traceback" not in err
    assert re.search(match, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


def test_own_sections_accept_their_values():
    cfg = config_from_dict({"name": "x", "dataset": {"loader": "alice", "subjects": ["s18", 22], "runs": "all",
                                                       "group_mean": True, "args": {"resolution": "10mm"}},
                            "output": {"dir": "o", "cache_dir": None, "report": None},
                            "executor": {"kind": "local:2", "retries": 0, "memory_fraction": 1, "timeout": 5}})
    assert cfg.dataset.group_mean is True and cfg.output.report is None and cfg.executor.kind == "local:2"
    assert config_from_dict({"dataset": {"loader": "alice"}, "executor": {"kind": "dask:tcp://1.2.3.4:8786"}})
