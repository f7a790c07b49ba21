"""Checks made before a model is loaded, so that a wrong device or an incomplete model folder
gives one clear message instead of an error from deep inside torch, transformers or
safetensors (``Torch not compiled with CUDA enabled``, ``cannot reshape tensor of 0
elements``, ``incomplete metadata, file not fully covered``), and an output folder that cannot
be written is found before the extraction or the fit, not after it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: Files that hold a tokenizer (transformers' fast and slow tokenizers, sentencepiece, tiktoken).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "vocab.model", "tokenizer.tiktoken")


def check_device(device: Any) -> None:
    """Raise a ValueError when ``device`` names an accelerator this machine does not have.

    ``"auto"``, ``"cpu"`` and torch devices other than ``cuda``/``mps`` pass; ``"cuda"`` or
    ``"cuda:N"`` need :func:`torch.cuda.is_available` (and N below the device count), ``"mps"``
    needs Apple's MPS.
    """
    if device is None:
        return
    text = str(device).strip().lower()
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}, but torch finds no CUDA device here (torch.cuda.is_available() "
                "is False: no NVIDIA GPU, no driver, or a CPU-only torch build). Use device='cpu' or "
                "device='auto'."
            )
        index = text.partition(":")[2]
        if index.isdigit() and int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}). Use device='cuda:0' or device='auto'."
            )
    elif text == "mps" or text.startswith("mps:"):
        import torch

        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={device!r}, but Apple's MPS is not available here. Use "
                             "device='cpu' or device='auto'.")


def check_safetensors(path: str | os.PathLike) -> None:
    """Raise a ValueError naming ``path`` when a ``.safetensors`` file is truncated or its
    header is damaged (its header says how many bytes the tensors take)."""
    path = Path(path)
    size = path.stat().st_size
    fix = "Copy or download the model again."
    with open(path, "rb") as fid:
        head = fid.read(8)
        if len(head) < 8:
            raise ValueError(f"weights file {str(path)!r} is truncated ({size} bytes, not even a "
                             f"header). {fix}")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ValueError(f"weights file {str(path)!r} is truncated: {size} bytes, but its header "
                             f"alone takes {n + 8}. {fix}")
        try:
            header = json.loads(fid.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"weights file {str(path)!r} has a damaged header ({err}). {fix}") from None
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        raise ValueError(f"weights file {str(path)!r} has a damaged header (no data_offsets). {fix}") from None
    if 8 + n + end > size:
        raise ValueError(f"weights file {str(path)!r} is truncated: {size} bytes, but its tensors end at "
                         f"byte {8 + n + end}. {fix}")


def check_model_source(model: Any, gguf_file: str | None = None) -> None:
    """Raise a ValueError when ``model`` is a local folder that cannot work: no tokenizer file,
    or a truncated ``.safetensors`` weights file. Aliases, hub ids, GGUF files and loaded
    models are left to :func:`~neuroenc.features.load_model`."""
    if not isinstance(model, (str, os.PathLike)):
        return
    folder = Path(model).expanduser()
    if not folder.is_dir() or gguf_file or any(folder.glob("*.gguf")):
        return  # a GGUF file carries its tokenizer
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(
            f"model folder {str(folder)!r} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} is "
            "in it. Save the tokenizer there too (tokenizer.save_pretrained(folder)), or copy those "
            "files from where the model came from."
        )
    for weights in sorted(folder.glob("*.safetensors")):
        check_safetensors(weights)


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Raise a ValueError when files cannot be written in ``folder``, or it cannot be made.

    Found by writing (and removing) a probe file, since permission bits do not tell (root
    writes anywhere; a read-only mount refuses everyone): in ``folder``, or, when it does not
    exist yet, in its nearest existing parent, which must be a folder. Nothing is created.

    Parameters
    ----------
    folder : path-like
        Where the command will write.
    what : str
        The option or setting that named it, for the message (``"--out"``, ``"output.dir"``).

    Raises
    ------
    ValueError
        Naming the option, the folder, what failed and the fix.
    """
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = f"give {what} a folder you can write to"
    if not existing.is_dir():
        raise ValueError(f"{what} {str(folder)!r} cannot be made: {str(existing)!r} is a file, not a folder; {fix}.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".neuroenc-write-test-", dir=existing)
    except OSError as err:
        raise ValueError(f"{what} {str(folder)!r} is not writable: writing a file in {str(existing)!r} fails "
                         f"({err.strerror or err}); {fix} (or fix its permissions).") from None
    os.close(fd)
    os.unlink(probe)


__all__ = ["TOKENIZER_FILES", "check_device", "check_model_source", "check_safetensors",
           "check_writable"]
