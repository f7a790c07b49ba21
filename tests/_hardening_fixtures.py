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
