"""Issue 13, item 14: leftovers. Stale temporary files of a killed writer are removed on the
next write of the same file; atomic writes never touch the umask and fsync around os.replace;
a failed download leaves no empty folders."""
from __future__ import annotations

import http.server
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from neuroenc._io import STALE_AFTER, _host, atomic_path, remove_stale_temporaries
from neuroenc.datasets._base import DatasetError, fetch_files


def _kill_a_writer(target) -> list:
    """Run a process that starts an atomic write of ``target`` and is killed (SIGKILL) in the
    middle; returns the temporary files it left."""
    code = textwrap.dedent(f"""
        import os, signal
        from neuroenc._io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as fid:
                fid.write(b"x" * 100000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -9
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


def test_stale_temporary_of_a_killed_writer_is_removed_on_the_next_write(tmp_path, caplog):
    target = tmp_path / "features.h5"
    left = _kill_a_writer(target)
    assert len(left) == 1 and left[0].stat().st_size == 100000 and not target.exists()
    # a live writer's temporary file (this test's own process) and another file's are kept
    live = tmp_path / f".features.h5.{_host()}.{os.getpid()}.abcd1234.tmp"
    live.write_bytes(b"busy")
    other = tmp_path / ".other.h5.host.1.abcd1234.tmp"
    other.write_bytes(b"")
    with caplog.at_level("INFO", logger="neuroenc"):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as fid:
                fid.write("done")
    assert target.read_text() == "done"
    assert not left[0].exists()
    assert live.exists() and other.exists()
    assert "removed a stale temporary file of features.h5" in caplog.text
    # a file whose writer cannot be checked (another host, an older neuroenc) goes once it has
    # not been written to for STALE_AFTER seconds
    foreign = tmp_path / ".features.h5.otherhost.12345.abcd1234.tmp"
    legacy = tmp_path / ".features.h5.k3j4h5g6.tmp"
    recent = tmp_path / ".features.h5.otherhost.12346.abcd1234.tmp"
    for p in (foreign, legacy, recent):
        p.write_bytes(b"")
    old = time.time() - STALE_AFTER - 10
    for p in (foreign, legacy):
        os.utime(p, (old, old))
    removed = remove_stale_temporaries(target)
    assert sorted(removed) == sorted([foreign, legacy])
    assert recent.exists() and live.exists()


def test_atomic_path_never_sets_the_umask(tmp_path, monkeypatch):
    mask = os.umask(0o022)
    os.umask(mask)

    def no_umask(*args):
        raise AssertionError("atomic_path changed the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        # while it is written, the file already has its final permissions: never world-writable
        assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o666 & ~mask
        with open(tmp, "w") as fid:
            fid.write("x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert not stat.S_IMODE(target.stat().st_mode) & stat.S_IWOTH


def test_atomic_path_fsyncs_the_file_before_and_the_folder_after_the_replace(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open
    names = {}

    def spy_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        names[fd] = str(path)
        return fd

    def spy_fsync(fd):
        events.append(("fsync", names.get(fd)))
        return real_fsync(fd)

    def spy_replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    target = tmp_path / "r.h5"
    with atomic_path(target) as tmp:
        with open(tmp, "w") as fid:
            fid.write("x")
    assert events == [("fsync", tmp), ("replace", str(target)), ("fsync", str(tmp_path))]


class _Server:
    """A local HTTP server on 127.0.0.1 (tests never touch the network): 404 for every path but
    ``/ok.txt``."""

    def __enter__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.endswith("/ok.txt"):
                    body = b"not the expected content\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/data"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("rel, match", [
    ("stimuli/missing.TextGrid", r"could not download .*missing.TextGrid"),  # 404
    ("stimuli/deep/ok.txt", r"does not match its known sha256"),  # wrong content
])
def test_failed_download_leaves_no_empty_folders(tmp_path, rel, match):
    root = tmp_path / "nonexistent" / "alice-brennan2016"
    with _Server() as url:
        with pytest.raises(DatasetError, match=match):
            fetch_files(root, [rel], {rel: "0" * 64}, url, dataset="alice")
    assert list(tmp_path.iterdir()) == []  # not even tmp_path/nonexistent


def test_failed_download_keeps_folders_that_were_there(tmp_path):
    root = tmp_path / "alice-brennan2016"
    (root / "stimuli").mkdir(parents=True)
    with _Server() as url:
        with pytest.raises(DatasetError):
            fetch_files(root, ["stimuli/a/missing.txt"], {"stimuli/a/missing.txt": "0" * 64}, url)
    assert (root / "stimuli").is_dir() and not (root / "stimuli" / "a").exists()
