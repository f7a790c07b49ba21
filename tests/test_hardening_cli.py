"""Issue 13, items 8, 12 and 13: the command line refuses duplicate subjects, never overwrites
an input, and prints user errors on one line without a traceback (bugs keep theirs)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from _mapping_fixtures import make_results

from neuroenc.cli import main as cli_main
from neuroenc.cli import user_message


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from neuroenc.testing import tiny_gpt2

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(n_layer=1, n_embd=16, n_positions=64, path=path)
    return path


@pytest.fixture
def story(tmp_path) -> Path:
    path = tmp_path / "story.TextGrid"
    path.write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 2\ntiers? <exists>\n'
        'size = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n        name = "word"\n'
        "        xmin = 0\n        xmax = 2\n        intervals: size = 4\n"
        + "".join(f'        intervals [{i + 1}]:\n            xmin = {i * 0.5}\n            xmax = {(i + 1) * 0.5}\n'
                  f'            text = "{w}"\n' for i, w in enumerate(["one", "two", "three", "four"])),
        encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- item 8
def test_report_refuses_the_same_results_twice(tmp_path, capsys):
    a = make_results(None, seed=0).save(tmp_path / "a.h5")  # no subject in the provenance
    b = make_results(None, seed=1).save(tmp_path / "b.h5")
    shutil.copy(a, tmp_path / "copy.h5")
    out = str(tmp_path / "report.html")
    assert cli_main(["-q", "report", "--results", str(a), str(a), "--out", out]) == 1
    assert f"--results names the results file '{a}' twice (it would count as two subjects)" in _err(capsys)
    assert cli_main(["-q", "report", "--results", str(tmp_path), "--out", out]) == 1  # folder: a, b, copy
    assert (f"--results files '{a}' and '{tmp_path / 'copy.h5'}' are identical: the same results twice "
            "would count as two subjects") in _err(capsys)
    assert not Path(out).exists()
    assert cli_main(["-q", "report", "--results", str(a), str(b), "--out", out, "--n-boot", "20",
                     "--n-permutations", "20"]) == 0
    assert Path(out).exists()


# ----------------------------------------------------------------------------- item 12
def test_out_equal_to_an_input_is_refused(tmp_path, story, tiny_model, capsys):
    features = tmp_path / "features.h5"
    base = ["-q", "extract", "--model", str(tiny_model), "--transcript", str(story), "--context-tokens", "8",
            "--stride", "4", "--device", "cpu"]
    before = story.read_bytes()
    assert cli_main(base + ["--out", str(story)]) == 1
    assert (f"--out '{story}' is also an input of this command ('{story}'): writing it would overwrite "
            "that input. Give --out another file.") in _err(capsys)
    assert story.read_bytes() == before
    assert cli_main(base + ["--out", str(features)]) == 0
    capsys.readouterr()
    responses = tmp_path / "resp.txt"
    responses.write_text("\n".join(f"{i % 3} {i % 5}" for i in range(8)) + "\n")
    feat_bytes = features.read_bytes()
    fit = ["-q", "fit", "--features", str(features), "--responses", str(responses), "--tr", "0.5",
           "--delays", "0", "--n-permutations", "0"]
    for victim in (features, responses):
        assert cli_main(fit + ["--out", str(victim)]) == 1
        assert f"--out '{victim}' is also an input of this command" in _err(capsys)
    assert features.read_bytes() == feat_bytes
    assert cli_main(["-q", "metrics", "--features", str(features), "--out", str(features)]) == 1
    assert "is also an input of this command" in _err(capsys)
    # the same file through another path (a symbolic link) is the same file
    link = tmp_path / "link.h5"
    link.symlink_to(features)
    assert cli_main(fit + ["--out", str(link)]) == 1
    assert "is also an input of this command" in _err(capsys)
    a = make_results("s01").save(tmp_path / "a.h5")
    assert cli_main(["-q", "report", "--results", str(a), "--out", str(a)]) == 1
    assert "is also an input of this command" in _err(capsys)


def test_out_that_is_a_folder_is_a_clear_error(tmp_path, story, tiny_model, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    assert cli_main(["-q", "extract", "--model", str(tiny_model), "--transcript", str(story),
                     "--out", str(folder)]) == 1
    assert (f"--out '{folder}' is an existing folder; give the file to write, e.g. --out "
            f"'{folder / 'features.h5'}'") in _err(capsys)
    a = make_results("s01").save(tmp_path / "a.h5")
    assert cli_main(["-q", "report", "--results", str(a), "--out", str(folder)]) == 1
    assert f"e.g. --out '{folder / 'report.html'}'" in _err(capsys)


# ----------------------------------------------------------------------------- item 13
def test_os_errors_are_one_line(tmp_path, capsys):
    a = make_results("s01").save(tmp_path / "a.h5")
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    assert cli_main(["-q", "report", "--results", str(a), "--out", str(blocker / "sub" / "r.html")]) == 1
    err = _err(capsys)
    assert err.startswith("neuroenc report: error: Not a directory: ") and str(tmp_path) in err
    assert user_message(PermissionError(13, "Permission denied", "/srv/out")) == "Permission denied: '/srv/out'"


def test_a_bug_keeps_its_traceback(monkeypatch):
    from neuroenc.commands import metrics

    def buggy(args: argparse.Namespace) -> int:
        return {}["missing"]

    monkeypatch.setattr(metrics, "run", buggy)
    with pytest.raises(KeyError, match="missing"):
        cli_main(["-q", "metrics", "--features", "f.h5", "--out", "m.h5"])
    monkeypatch.setattr(metrics, "run", lambda args: len(None))
    with pytest.raises(TypeError):
        cli_main(["-q", "metrics", "--features", "f.h5", "--out", "m.h5"])


def test_truncated_results_given_to_report(tmp_path, capsys):
    a = make_results("s01").save(tmp_path / "a.h5")
    b = make_results("s02", seed=1).save(tmp_path / "b.h5")
    raw = b.read_bytes()
    b.write_bytes(raw[: len(raw) // 2])
    assert cli_main(["-q", "report", "--results", str(a), str(b), "--out", str(tmp_path / "r.html")]) == 1
    err = _err(capsys)
    assert f"results file '{b}' cannot be read (" in err and "it is truncated or damaged" in err
    not_results = tmp_path / "c.h5"
    import h5py

    with h5py.File(not_results, "w") as f:
        f["x"] = [1]
    assert cli_main(["-q", "report", "--results", str(a), str(not_results), "--out", str(tmp_path / "r.html")]) == 1
    assert "is not a neuroenc results file" in _err(capsys)


def test_device_cuda_without_cuda(tmp_path, story, tiny_model, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli_main(["-q", "extract", "--model", str(tiny_model), "--transcript", str(story), "--device", "cuda",
                     "--out", str(tmp_path / "f.h5")]) == 1
    err = _err(capsys)
    assert ("--device 'cuda', but torch finds no CUDA device here (torch.cuda.is_available() is False: no "
            "NVIDIA GPU, no driver, or a CPU-only torch build). Use --device 'cpu' or --device 'auto'.") in err
    from neuroenc.pipeline.preflight import check_device

    with pytest.raises(ValueError, match=r"device='cuda:1', but torch finds no CUDA device"):
        check_device("cuda:1")
    check_device("cpu")
    check_device("auto")


def test_model_folder_without_tokenizer_or_with_truncated_weights(tmp_path, story, tiny_model, capsys):
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, no_tok / name)
    argv = ["-q", "extract", "--transcript", str(story), "--device", "cpu", "--out", str(tmp_path / "f.h5")]
    assert cli_main(argv + ["--model", str(no_tok)]) == 1
    assert f"model folder '{no_tok}' has no tokenizer: none of tokenizer.json" in _err(capsys)
    cut = tmp_path / "truncated"
    shutil.copytree(tiny_model, cut)
    weights = cut / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    assert cli_main(argv + ["--model", str(cut)]) == 1
    assert (f"weights file '{weights}' is truncated: {size // 2} bytes, but its tensors end at byte {size}. "
            "Copy or download the model again.") in _err(capsys)
    weights.write_bytes(b"\x05")
    assert cli_main(argv + ["--model", str(cut)]) == 1
    assert "is truncated (1 bytes, not even a header)" in _err(capsys)


def test_run_config_model_checks_reach_the_pipeline(tmp_path, tiny_model, data_dir, capsys):
    """The same checks in `neuroenc run` (a local model folder in the config)."""
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    shutil.copy(tiny_model / "config.json", no_tok / "config.json")
    shutil.copy(tiny_model / "model.safetensors", no_tok / "model.safetensors")
    config = Path(__file__).resolve().parents[1] / "analyses" / "alice_layers.yaml"
    argv = ["-q", "run", str(config), "--out", str(tmp_path / "out"), "--set", f"model.name={no_tok}",
            "--set", "dataset.subjects=[s18]", "--set", "dataset.group_mean=false",
            "--set", "dataset.args={data_dir: " + str(data_dir) + ", download: false}"]
    assert cli_main(argv) == 1
    assert "has no tokenizer" in _err(capsys)


def test_hints_name_cli_options():
    from neuroenc.cli import user_message

    err = ValueError("run 'a': 3 of 9 words fall before ... If row 0 of the response is not stimulus time 5 s, "
                     "pass Response(..., start=1) (that start covers every word). Or pass "
                     "on_uncovered='warn' to go on without them (e.g. when the data provider trimmed the "
                     "responses).")
    fit = user_message(err, "fit")
    assert "pass --start 1 (that start covers every word)." in fit and "on_uncovered" not in fit
    assert "--set alignment.on_uncovered='warn'" in user_message(err, "run")
    assert "pass tier='word'" not in user_message(ValueError("pass tier='word'"), "extract")
    assert user_message(ValueError("pass tier='word'"), "extract") == "pass --tier 'word'"
