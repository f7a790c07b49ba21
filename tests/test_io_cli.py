"""Shared I/O helpers and the command line's handling of options and errors."""
import os
import stat

import pytest

from neuroenc._io import atomic_path
from neuroenc.cli import main as cli_main
from neuroenc.pipeline import ConfigError, load_config


def test_atomic_path_permissions_and_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        with open(tmp, "w") as fid:
            fid.write("done")
    assert target.read_text() == "done"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(tmp_path / "failed.txt") as tmp:
            with open(tmp, "w") as fid:
                fid.write("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no partial or temp file


def test_overrides_fill_empty_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  loader: alice\nmodel:\n")
    assert load_config(path, overrides={"model.layers": [0]}).model.layers == [0]
    path.write_text("dataset:\n  loader: alice\nmodel: big\n")
    with pytest.raises(ConfigError, match="cannot set 'model.layers': 'model' is 'big', not a section"):
        load_config(path, overrides={"model.layers": [0]})


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  loader: alice\n  args: {data_dir: " + str(tmp_path) + ", download: false}\n")
    assert cli_main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuroenc run: error:") and "missing under" in err
    assert cli_main(["-q", "run", str(path), "--set", "nokey"]) == 1
    assert "--set needs KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(Exception, match="missing under"):  # -v: the traceback, for debugging
        cli_main(["-v", "run", str(path)])
