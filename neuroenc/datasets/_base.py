"""Where data sets live, how missing files are fetched, and what loaders return."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._validation import DatasetError, _sha256_file, check_content
from ..responses import Response
from ..stimuli.transcript import Transcript

logger = logging.getLogger(__name__)

#: Environment variable that points at the folder holding the data sets.
DATA_ENV = "NEUROENC_DATA"


def get_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds neuroenc's data sets.

    As nilearn and mne do: the ``data_dir`` argument, else the ``NEUROENC_DATA`` environment
    variable, else ``~/neuroenc_data``. The folder is not created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/neuroenc_data").expanduser()


def read_checksums(name: str) -> dict[str, str]:
    """The known sha256 of each file of data set ``name`` (relative path -> hex digest)."""
    text = resources.files("neuroenc.datasets").joinpath("checksums", f"{name}.sha256").read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.strip().removeprefix("./")] = digest
    return out


def check_transcript(path: str | os.PathLike, run: str, fix: str, what: str = "transcript") -> Path:
    """The transcript file of run ``run``, checked as :func:`check_content` does.

    A missing file is a FileNotFoundError that says which run lacks its transcript, which
    file was expected and ``fix`` (how to get it, or to leave the run out).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"run {run!r} has no transcript: {str(path)!r} is missing. {fix}")
    return check_content(path, what)


def fetch_files(
    dataset_dir: Path,
    files: list[str],
    checksums: dict[str, str],
    base_url: str | None,
    download: bool = True,
    verify: bool = False,
    dataset: str = "",
) -> list[Path]:
    """Make sure ``files`` exist under ``dataset_dir``, downloading missing ones.

    Parameters
    ----------
    dataset_dir : Path
        The data set's folder (``<data_dir>/<name>``).
    files : list of str
        Paths relative to ``dataset_dir`` (and to ``base_url``).
    checksums : dict
        Known sha256 per relative path; every downloaded file is verified against it.
    base_url : str | None
        Where the files can be downloaded from (``base_url + "/" + relative path``).
    download : bool
        Download missing files (else a missing file is an error).
    verify : bool
        Also verify the sha256 of files that are already present.
    dataset : str
        The data set's name, for messages.

    Returns
    -------
    paths : list of Path
        The local paths, in the order of ``files``.
    """
    paths = [dataset_dir / rel for rel in files]
    missing = [rel for rel, p in zip(files, paths) if not p.exists()]
    if missing and (not download or base_url is None):
        raise DatasetError(
            f"{len(missing)} file(s) of data set {dataset!r} are missing under {str(dataset_dir)!r} "
            f"(first: {missing[0]!r}). Point data_dir= or ${DATA_ENV} at the folder that holds "
            f"'{dataset_dir.name}/', or pass download=True to fetch them."
        )
    if missing:
        import pooch

        logger.info("Downloading %d file(s) of %s from %s", len(missing), dataset, base_url)
        for rel in missing:
            target = dataset_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            known = checksums.get(rel)
            if known is None:
                raise DatasetError(f"no known sha256 for {rel!r} of data set {dataset!r}; refusing to download it unverified.")
            url = f"{base_url.rstrip('/')}/{rel}"
            try:
                pooch.retrieve(url, known_hash=f"sha256:{known}", fname=target.name,
                               path=target.parent, progressbar=False)
            except ValueError as err:  # pooch: hash mismatch
                raise DatasetError(f"downloaded {url} does not match its known sha256: {err}") from err
            except Exception as err:
                raise DatasetError(
                    f"could not download {url} into {str(target)!r}: {type(err).__name__}: {err}. "
                    f"Check the network, or copy the data set into {str(dataset_dir)!r}."
                ) from err
    if verify:
        for rel, path in zip(files, paths):
            known = checksums.get(rel)
            if known is not None and _sha256_file(path) != known:
                raise DatasetError(
                    f"{str(path)!r} does not match its known sha256 ({known[:12]}...). The file is "
                    "corrupt or another version; delete it and load again to re-download."
                )
    return paths


@dataclass
class EncodingDataset:
    """What every loader returns: transcripts and timed responses, per subject and run.

    Attributes
    ----------
    name : str
        The data set's short name (``"alice"``, ``"lebel2023"``...).
    transcripts : dict of str -> Transcript
        One transcript per run/story, keyed by run name.
    responses : dict of str -> dict of str -> Response
        ``responses[subject][run]``: brain data on its grid.
    confounds : dict of str -> dict of str -> Response
        ``confounds[subject][run]``: nuisance regressors on the same grid (word rate, sound
        power, motion...), named columns.
    excluded : dict of str -> str
        Subjects that were left out, with the reason.
    info : dict
        Citation, licence, source URL, TR, notes.
    """

    name: str
    transcripts: dict[str, Transcript]
    responses: dict[str, dict[str, Response]]
    confounds: dict[str, dict[str, Response]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """The subjects with responses."""
        return list(self.responses)

    @property
    def runs(self) -> list[str]:
        """The run/story names."""
        return list(self.transcripts)

    @property
    def target_names(self) -> list[str]:
        """Target (ROI/voxel/channel) names of the first response (empty without responses)."""
        for runs in self.responses.values():
            for response in runs.values():
                return list(response.names)
        return []

    def __repr__(self) -> str:
        return (
            f"<EncodingDataset {self.name!r} | {len(self.subjects)} subjects, {len(self.runs)} runs"
            f"{', ' + str(len(self.excluded)) + ' excluded' if self.excluded else ''}>"
        )
