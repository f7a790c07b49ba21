"""Alice and Natural Stories loaders on the real data, data-dir resolution, fetching."""
import functools
import http.server
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from neuroenc.datasets import DatasetError, get_data_dir, load_alice, load_naturalstories
from neuroenc.datasets._base import read_checksums
from neuroenc.stimuli.textgrid import SILENCE_MARKS, read_textgrid_tiers


def test_get_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROENC_DATA", str(tmp_path))
    assert get_data_dir() == tmp_path
    assert get_data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("NEUROENC_DATA")
    assert get_data_dir() == Path("~/neuroenc_data").expanduser()


def test_load_alice(data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        ds = load_alice(data_dir)
    assert len(ds.subjects) == 27
    assert "s33" not in ds.subjects and "all values are zero" in ds.excluded["s33"]
    assert "excluding subject s33" in caplog.text
    t = ds.transcripts["alice"]
    assert t.words[:7] == ("Alice", "was", "beginning", "to", "get", "very", "tired")
    assert t.onsets[0] == pytest.approx(20.06, abs=0.01)
    tiers = read_textgrid_tiers(data_dir / "alice-brennan2016/stimuli/DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    n_words = sum(label.strip().lower() not in SILENCE_MARKS for _, _, label in tiers["word"])
    assert len(t) == n_words == 2127
    for sid in ds.subjects:
        r = ds.responses[sid]["alice"]
        assert r.data.shape == (362, 6) and r.tr == 2.0 and r.start == 20.0
        assert r.names == ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
        c = ds.confounds[sid]["alice"]
        assert c.data.shape == (362, 8) and c.names[:2] == ["word_rate", "sound_power"]
    # the response grid covers the story: row 0 at 20 s, last row ends after the last word
    assert ds.responses["s18"]["alice"].end >= t.end
    # values are the file's, untouched
    raw = np.loadtxt(data_dir / "alice-brennan2016/fmri/10mm/s18-timecourses.txt")
    np.testing.assert_array_equal(ds.responses["s18"]["alice"].data, raw)
    # motion files keep the 10 discarded volumes; the loader drops them
    motion = np.loadtxt(data_dir / "alice-brennan2016/fmri/s18-rp_epiRTwm2_scan_0004__003.txt")
    np.testing.assert_array_equal(ds.confounds["s18"]["alice"].data[:, 2:], motion[10:])
    assert ds.info["predictors"].data.shape == (362, 12)


def test_load_alice_options(data_dir):
    ds = load_alice(data_dir, resolution="6mm", subjects=["s18", "s22"])
    assert ds.subjects == ["s18", "s22"]
    raw = np.loadtxt(data_dir / "alice-brennan2016/fmri/6mm/s22-timecourses.txt")
    np.testing.assert_array_equal(ds.responses["s22"]["alice"].data, raw)
    with pytest.raises(ValueError, match=r"no subject\(s\) \['s99'\]"):
        load_alice(data_dir, subjects=["s99"])
    with pytest.raises(ValueError, match="Invalid value for 'resolution'"):
        load_alice(data_dir, resolution="8mm")
    with pytest.raises(DatasetError, match=r"every requested subject was excluded: \{'s33': "
                                           r"'fmri/10mm/s33-timecourses\.txt: all values are zero'\}"):
        load_alice(data_dir, subjects=["s33"])


def test_load_alice_data_problems_are_dataset_errors(data_dir, tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(data_dir / "alice-brennan2016", local / "alice-brennan2016")
    root = local / "alice-brennan2016"
    tc = root / "fmri/10mm/s18-timecourses.txt"
    lines = tc.read_text().splitlines()
    tc.write_text("\n".join(lines[:-1]) + "\n")  # one row short
    with pytest.raises(DatasetError, match=r"s18-timecourses\.txt' has shape \(361, 6\); expected \(362, 6\)"):
        load_alice(local, subjects=["s18"], download=False)
    tc.write_text("\n".join(lines[:5] + ["1.0 2.0 oops 4.0 5.0 6.0"] + lines[6:]) + "\n")
    with pytest.raises(DatasetError, match=r"s18-timecourses\.txt' is not a numeric table .*delete it and load again"):
        load_alice(local, subjects=["s18"], download=False)
    tc.write_text("\n".join(lines) + "\n")
    rate = root / "fmri/s18-rate.txt"
    rate.write_text("\n".join(rate.read_text().splitlines()[:100]) + "\n")
    with pytest.raises(DatasetError, match=r"s18-rate\.txt' has 100 rows; expected 362 \(or 372 with the 10 "
                                           r"discarded volumes\)"):
        load_alice(local, subjects=["s18"], download=False)


def test_load_naturalstories(data_dir):
    ds = load_naturalstories(data_dir)
    assert ds.runs == [f"story-{i}" for i in range(1, 11)]
    for i in range(1, 11):
        tiers = read_textgrid_tiers(data_dir / f"naturalstories/audio/{i}_aligned.TextGrid")
        labels = [label.strip() for _, _, label in tiers["words"]]
        n = sum(bool(lab) and lab.lower() not in SILENCE_MARKS + ("<s",) for lab in labels)
        assert len(ds.transcripts[f"story-{i}"]) == n
    s1 = ds.transcripts["story-1"]
    assert s1.words[:5] == ("If", "you", "were", "to", "journey")  # case from words.tsv
    assert ds.info["codes"]["story-1"][:2] == ["1.1", "1.2"]
    assert {"word", "zone", "item", "meanItemRT"} <= set(ds.info["reading_times"].columns)
    with pytest.raises(ValueError, match="stories 1-10"):
        load_naturalstories(data_dir, stories=[11])


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DatasetError, match=r"missing under .*alice-brennan2016.*NEUROENC_DATA"):
        load_alice(tmp_path, download=False)


@pytest.fixture
def http_mirror(tmp_path, data_dir):
    """A local HTTP server on 127.0.0.1 that serves a copy of the public files."""
    remote = tmp_path / "remote"
    shutil.copytree(data_dir / "alice-brennan2016", remote / "alice")
    handler = functools.partial(_QuietHandler, directory=str(remote))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_fetch_from_http_mirror(http_mirror, tmp_path):
    remote, url = http_mirror
    local = tmp_path / "local"
    ds = load_alice(local, subjects=["s18", "s22"], base_url=f"{url}/alice")
    assert ds.subjects == ["s18", "s22"]
    assert (local / "alice-brennan2016/fmri/10mm/s18-timecourses.txt").exists()
    assert ds.transcripts["alice"].words[0] == "Alice"
    # present files are not fetched again: a dead server is fine now
    ds2 = load_alice(local, subjects=["s18"], base_url="http://127.0.0.1:9/none", verify=True)
    np.testing.assert_array_equal(ds2.responses["s18"]["alice"].data, ds.responses["s18"]["alice"].data)


def test_fetch_rejects_bad_checksum(http_mirror, tmp_path):
    remote, url = http_mirror
    target = remote / "alice/fmri/10mm/s23-timecourses.txt"
    target.write_text(target.read_text().replace("1", "2", 1))
    with pytest.raises(DatasetError, match="does not match its known sha256"):
        load_alice(tmp_path / "local", subjects=["s23"], base_url=f"{url}/alice")
    assert not (tmp_path / "local/alice-brennan2016/fmri/10mm/s23-timecourses.txt").exists()


def test_verify_detects_corrupt_local_file(data_dir, tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(data_dir / "alice-brennan2016", local / "alice-brennan2016")
    path = local / "alice-brennan2016/fmri/10mm/s18-timecourses.txt"
    path.write_text(path.read_text()[:-10])
    with pytest.raises(DatasetError, match="s18-timecourses.txt' does not match its known sha256"):
        load_alice(local, subjects=["s18"], verify=True, download=False)


def test_fetch_unreachable_server(tmp_path):
    with pytest.raises(DatasetError, match="could not download http://127.0.0.1:9/"):
        load_alice(tmp_path, subjects=["s18"], base_url="http://127.0.0.1:9")


def test_checksums_cover_the_files():
    sums = read_checksums("alice-brennan2016")
    assert sum(k.startswith("fmri/10mm/") for k in sums) == 28
    assert all(len(v) == 64 for v in sums.values())
