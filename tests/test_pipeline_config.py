"""Run configs: defaults, validation, overrides."""
import numpy as np
import pytest

from neuroenc.pipeline import ConfigError, config_from_dict, load_config


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
        ({"dataset": {"loader": "alice"}, "executor": {"kind": "mpi"}}, "Invalid value for 'executor.kind'"),
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
