"""Helpers for the hardening tests (issue 13): a copy of a few Alice files in a temporary folder."""
from __future__ import annotations

import shutil
from pathlib import Path


def copy_alice(data_dir: Path, dest: Path, subjects=("s18",)) -> Path:
    """Copy the Alice files that ``load_alice(subjects=..., download=False)`` reads into
    ``dest/alice-brennan2016`` (never into the repository); returns that folder."""
    from neuroenc.datasets.alice import ALICE_DIRNAME, ALICE_PREDICTORS, ALICE_TEXTGRID

    src, dst = Path(data_dir) / ALICE_DIRNAME, Path(dest) / ALICE_DIRNAME
    rels = [ALICE_TEXTGRID, ALICE_PREDICTORS]
    for s in subjects:
        rels.append(f"fmri/10mm/{s}-timecourses.txt")
        rels += [str(p.relative_to(src)) for p in sorted((src / "fmri").glob(f"{s}-*.txt"))]
    for rel in rels:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)
    return dst


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes; links as their target), to show that
    a refused run changed nothing."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = b"-> " + str(p.readlink()).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = b"<dir>"
    return out


def write_events_stimuli(root: Path, subjects=("A", "B")) -> dict:
    """A BIDS events file whose sentence rows are stimuli (with fixation rows between them), and
    one response table per subject; returns the ``dataset.args`` of ``loader: stimuli``."""
    import numpy as np
    from _stimuli_fixtures import SENTENCES

    root.mkdir(parents=True, exist_ok=True)
    rows = ["onset\tduration\ttrial_type\tsentence\tid\tpassage"]
    for i, text in enumerate(SENTENCES):
        rows.append(f"{4 * i}\t0.5\tfixation\tn/a\tn/a\tn/a")
        rows.append(f"{4 * i + 1}\t3\tsentence\t{text}\ts{i + 1:02d}\tp{i // 3 + 1}")
    events = root / "sub-01_task-read_events.tsv"
    events.write_text("\n".join(rows) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    responses = {}
    for s in subjects:
        lines = ["id,lang"] + [f"s{i + 1:02d},{rng.standard_normal():.6f}" for i in range(len(SENTENCES))]
        responses[s] = root / f"sub-{s}.csv"
        responses[s].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"path": str(events), "text_column": "sentence", "group_column": "passage",
            "responses": {s: str(p) for s, p in responses.items()}}
