"""The analyses/<name>_layers.yaml run configs: accepted by the pipeline, and their data set
section loads a miniature copy of the real layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _bids_fixtures import layouts, mini_megmasc, mini_narratives  # noqa: F401

from neuroenc.datasets import load_lebel2023, load_lpp, load_megmasc, load_narratives, make_miniature
from neuroenc.pipeline import load_config

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
LOADERS = {"lebel2023": load_lebel2023, "narratives": load_narratives, "lpp": load_lpp,
           "megmasc": load_megmasc}


def _dataset(name: str, root: Path, **overrides):
    overrides = {f"dataset.args.{k}": v for k, v in overrides.items()}
    config = load_config(ANALYSES / f"{name}_layers.yaml",
                         overrides={"dataset.args.root": str(root), **overrides})
    assert config.dataset.loader == name and config.name == f"{name}_layers"
    return LOADERS[name](**config.dataset.args)


def test_configs_parse():
    for name in LOADERS:
        config = load_config(ANALYSES / f"{name}_layers.yaml")
        assert config.dataset.args["root"].startswith("$NEUROENC_DATA/")
        assert config.model.name == "smollm2-135m"


def test_lebel2023_config_loads_its_stories(layouts, tmp_path):
    config = load_config(ANALYSES / "lebel2023_layers.yaml")
    stories = config.dataset.args["stories"]
    root = make_miniature("lebel2023", tmp_path, subjects=["UTS03"], runs=stories, layouts=layouts,
                          n_voxels=4)
    ds = _dataset("lebel2023", root)
    assert sorted(ds.responses["UTS03"]) == sorted(stories)  # UTS03 has every one of them
    assert {r.tr for r in ds.responses["UTS03"].values()} == {2.0}
    assert ds.responses["UTS03"]["avatar"].n_samples == 387 - 20


def test_narratives_config_loads(mini_narratives):
    ds = _dataset("narratives", mini_narratives)
    assert {"001", "023"} <= set(ds.subjects)
    assert sorted(ds.responses["001"]) == ["pieman_run-1", "pieman_run-2"]
    assert all(r.tr == 1.5 for runs in ds.responses.values() for r in runs.values())


def test_lpp_config_loads_nine_sections(layouts, tmp_path):
    config = load_config(ANALYSES / "lpp_layers.yaml")
    root = make_miniature("lpp", tmp_path, subjects=config.dataset.args["subjects"], layouts=layouts,
                          n_voxels=4)
    ds = _dataset("lpp", root)
    assert ds.subjects == ["EN057", "EN058", "EN059"]
    assert ds.runs == [f"section-{k}" for k in range(1, 10)]
    assert ds.responses["EN058"]["section-5"].n_samples == 265


def test_megmasc_config_filters_and_resamples(mini_megmasc):
    ds = _dataset("megmasc", mini_megmasc, subject=["01", "12"], tasks=[0])
    resp = ds.responses["12"]["lw1_2"]
    assert resp.sfreq == 100.0  # resample: 100.0 in the config
    assert resp.start == pytest.approx(-0.5, abs=0.01)
    assert resp.n_samples == pytest.approx((ds.transcripts["lw1_2"].end + 1.5) * 100, abs=2)
    assert np.isfinite(resp.data).all()
