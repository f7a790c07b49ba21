"""The HTML report: its numbers equal the results files', it is self-contained and escaped."""
from __future__ import annotations

import base64
import re
import struct
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import ROIS, make_group, make_results

from neuroenc.cli import main
from neuroenc.encoding.results import EncodingResults
from neuroenc.report import ReportSection, make_report
from neuroenc.report.html import format_number
from neuroenc.report.sections import intervention_effects, layer_science_section, metric_brain_correlations


class _Tables(HTMLParser):
    """Collect every ``<table data-table=...>``: rows of {column: (text, data-value)}; and images."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, tuple[str, str | None]]]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs["data-table"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = {}
        elif tag == "td" and self._row is not None:
            self._cell = [attrs["data-col"], "", attrs.get("data-value")]
        elif tag == "img":
            self.images.append(attrs)
        if "href" in attrs:
            self.links.append(attrs["href"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            col, text, value = self._cell
            self._row[col] = (text, value)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def _parse(path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _check_cell(cell, value, decimals=3):
    """The exact value is in data-value; the text is that value rounded."""
    text, exact = cell
    if np.isnan(value):
        assert exact == "nan" and text == "–"
        return
    assert float(exact) == value
    assert text == f"{value:.{decimals}f}"


@pytest.fixture(scope="module")
def group_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    for res in make_group(4, warnings=["responses were trimmed by 2 TRs"]):
        res.save(folder / f"{res.subject}.h5")
    out = make_report(folder, folder / "report" / "report.html", n_boot=200, n_permutations=1000)
    return folder, out


def test_report_numbers_equal_the_results_files(group_report):
    folder, out = group_report
    results = [EncodingResults.load(folder / f"s0{i}.h5") for i in range(1, 5)]
    page = _parse(out)
    # Per subject and target: the best layer and the scores there, straight from the files.
    best = page.tables["best"]
    assert len(best) == 4 * len(ROIS)
    for row in best:
        res = results[int(row["subject"][0][1:]) - 1]
        j = res.targets.index(row["target"][0])
        k = int(np.argmax(res.r[:, j]))
        assert row["best_layer"] == (str(res.layers[k]), str(res.layers[k]))
        _check_cell(row["r"], res.r[k, j])
        assert float(row["p"][1]) == res.pvalues[k, j]
        assert float(row["q"][1]) == res.qvalues[k, j]
        _check_cell(row["baseline_r"], res.baseline["r"][j])
        _check_cell(row["noise_ceiling"], res.noise_ceiling[j])
        _check_cell(row["gain_over_last"], res.r[k, j] - res.r[-1, j])
    # The group table: mean over subjects of the mean profile's best layer.
    r = np.stack([res.r for res in results])
    mean = r.mean(0)
    group = page.tables["group"]
    assert [row["target"][0] for row in group] == list(ROIS)
    for j, row in enumerate(group):
        k = int(np.argmax(mean[:, j]))
        assert row["best_layer"][1] == str(k)
        assert float(row["r"][1]) == pytest.approx(mean[k, j], abs=1e-15)
        assert row["r"][0] == f"{float(row['r'][1]):.3f}"
        assert float(row["r_last"][1]) == pytest.approx(mean[-1, j], abs=1e-15)
        assert float(row["best_depth"][1]) == pytest.approx(k / 8)
    # Significance: every subject beats the baseline -> exact sign-flip p = 1/16 with 4 subjects.
    for j, row in enumerate(page.tables["significance"]):
        assert float(row["p_vs_baseline"][1]) == pytest.approx(1 / 16)
        assert float(row["noise_ceiling"][1]) == pytest.approx(results[0].noise_ceiling[j])
    # Layer profiles: one row per layer, one column per target.
    profiles = page.tables["profiles"]
    assert len(profiles) == 9
    for row in profiles:
        k = int(row["layer"][1])
        for j, target in enumerate(ROIS):
            _check_cell(row[target], mean[k, j])


def test_report_contents_and_self_contained(group_report):
    folder, out = group_report
    html = out.read_text(encoding="utf-8")
    page = _parse(out)
    # provenance and settings
    facts = {row["key"][0]: row["value"][0] for row in page.tables["facts"]}
    assert facts["model"] == "tiny-model" and facts["data set"] == "synthetic"
    assert facts["subjects"] == "4: s01, s02, s03, s04"
    settings = {row["key"][0]: row["value"][0] for row in page.tables["settings"]}
    assert settings["delays"] == "[1, 2, 3, 4]"
    per_subject = page.tables["per-subject"]
    assert [row["subject"][0] for row in per_subject] == ["s01", "s02", "s03", "s04"]
    assert [row["features_sha256"][0] for row in per_subject] == [f"{i:064x}" for i in range(4)]
    # warnings of all subjects, once
    assert html.count("responses were trimmed by 2 TRs") == 1 and "(all subjects)" in html
    # self-contained: images are embedded PNGs whose size matches the attributes; no URL anywhere
    assert len(page.images) >= 4
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        data = base64.b64decode(img["src"].split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (int(img["width"]), int(img["height"]))
        assert img["alt"]
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "<script" not in html
    assert all(link.startswith(("#", "data:")) for link in page.links)


def test_report_of_one_subject(tmp_path):
    res = make_results("sub-07")
    out = make_report(res, tmp_path / "one.html", n_boot=100)
    page = _parse(out)
    rows = page.tables["best"]
    assert len(rows) == len(ROIS)
    for row in rows:
        j = res.targets.index(row["target"][0])
        k = int(row["best_layer"][1])
        assert k == int(np.argmax(res.r[:, j]))
        _check_cell(row["r"], res.r[k, j])
        _check_cell(row["r2"], res.r2[k, j])
        assert float(row["alpha"][1]) == res.alphas[k, j]
    sig = {row["target"][0]: row for row in page.tables["significance"]}
    assert float(sig["LPTL"]["p"][1]) == res.pvalues[5, ROIS.index("LPTL")]
    assert "permutation p-value" in out.read_text()


def test_report_escapes_names_and_warnings(tmp_path):
    targets = ["<b>A&B</b>", "x\"y"]
    res = make_results("s<1>", targets=targets, peaks={targets[0]: 1, targets[1]: 2},
                       warnings=["<script>alert(1)</script>"])
    out = make_report(res, tmp_path / "esc.html", n_boot=50, title="T <i>")
    html = out.read_text()
    assert "<script>" not in html and "<b>A&B</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in html and "<title>T &lt;i&gt;</title>" in html
    page = _parse(out)
    assert [row["target"][0] for row in page.tables["group"]] == targets


def test_report_with_voxels_has_brain_maps(tmp_path):
    data = np.zeros((5, 6, 4), dtype=np.uint8)
    data[1:4, 1:5, 1:4] = 1  # 36 voxels: more than a panel each, so the profile is their mean
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / "mask.nii.gz")
    targets = [f"v{i}" for i in range(int(data.sum()))]
    peaks = {t: i % 9 for i, t in enumerate(targets)}
    results = [make_results(f"s{i}", seed=i, targets=targets, peaks=peaks, n_folds=2,
                            provenance={"space": "volume", "mask": str(tmp_path / "mask.nii.gz")})
               for i in range(2)]
    out = make_report(results, tmp_path / "vox.html", n_boot=50, max_table_rows=10)
    html = out.read_text()
    assert 'id="brain"' in html
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert "Best-layer depth across targets." in captions
    assert _parse(out).tables["group"][0]["target"][0].startswith("v")
    assert "mean of 36 targets" in html
    assert "best layer (relative depth) (glass brain)." in captions
    assert "best-layer r (slices)." in captions
    page = _parse(out)
    assert len(page.tables["group"]) == 10 and "Showing 10 of 36 rows (highest r first)." in html
    # a mask that does not fit the targets is an error, not a silent empty map
    bad = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)), bad)
    with pytest.raises(ValueError, match="the mask has 8 voxels but the results have 36 targets"):
        make_report(results, tmp_path / "x.html", n_boot=50, mask_img=bad)


def test_extra_and_layer_science_sections(tmp_path):
    results = make_group(3)
    layers = np.arange(9)
    profile_lptl = np.stack([r.r[:, 2] for r in results]).mean(0)
    metrics = pd.DataFrame({"metric": "entropy", "layer": layers, "value": 2 * profile_lptl + 1})
    interventions = pd.concat([
        pd.DataFrame({"intervention": "intact", "target": "LPTL", "layer": layers, "r": profile_lptl}),
        pd.DataFrame({"intervention": "skip-middle", "target": "LPTL", "layer": layers, "r": profile_lptl - 0.1}),
    ])
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    extra = ReportSection("My analysis", text="First.\n\nSecond <b>.", figures=[("A line.", fig)],
                          tables=[("A table", pd.DataFrame({"name": ["a"], "value": [0.123456]}))])
    out = make_report(results, tmp_path / "extra.html", n_boot=50, sections=[extra], metrics=metrics,
                      interventions=interventions)
    html = out.read_text()
    assert "<h2>My analysis</h2>" in html and "<p>Second &lt;b&gt;.</p>" in html
    assert "<h2>Layer science</h2>" in html
    page = _parse(out)
    assert page.tables["extra-0-0"][0]["value"] == ("0.1235", "0.123456")
    corr = {(r["metric"][0], r["target"][0]): float(r["rho"][1]) for r in page.tables["extra-1-0"]}
    assert corr[("entropy", "LPTL")] == pytest.approx(1.0)
    effects = page.tables["extra-1-1"]
    skip = next(r for r in effects if r["intervention"][0] == "skip-middle")
    assert float(skip["delta_best"][1]) == pytest.approx(-0.1)
    assert float(skip["mean_delta"][1]) == pytest.approx(-0.1)


def test_metric_correlations_and_intervention_effects_known_answers():
    prof = pd.DataFrame({"target": "x", "layer": np.arange(5), "mean": [0.1, 0.2, 0.3, 0.2, 0.1]})
    metrics = pd.DataFrame({"metric": ["up"] * 5 + ["down"] * 5, "layer": list(range(5)) * 2,
                            "value": [1, 2, 3, 4, 5] + [5, 4, 3, 2, 1]})
    corr = metric_brain_correlations(metrics, prof).set_index("metric")
    assert corr.loc["up", "rho"] == pytest.approx(0.0) and corr.loc["up", "n_layers"] == 5
    prof2 = prof.assign(mean=[0.1, 0.2, 0.3, 0.4, 0.5])
    corr = metric_brain_correlations(metrics, prof2).set_index("metric")
    assert corr.loc["up", "rho"] == pytest.approx(1.0) and corr.loc["down", "rho"] == pytest.approx(-1.0)
    table = pd.DataFrame({"intervention": ["intact"] * 3 + ["noattn"] * 3, "target": "x",
                          "layer": [0, 1, 2] * 2, "r": [0.1, 0.3, 0.2, 0.05, 0.1, 0.25]})
    eff = intervention_effects(table).set_index("intervention")
    assert eff.loc["noattn", "best_layer"] == 2 and eff.loc["noattn", "best_depth"] == 1.0
    assert eff.loc["noattn", "delta_best"] == pytest.approx(0.25 - 0.3)
    assert eff.loc["noattn", "mean_delta"] == pytest.approx((-0.05 - 0.2 + 0.05) / 3)
    assert eff.loc["intact", "delta_best"] == 0
    assert np.isnan(intervention_effects(table, reference="none")["delta_best"]).all()


def test_section_bad_input():
    with pytest.raises(ValueError, match="needs a non-empty title"):
        ReportSection("  ")
    with pytest.raises(TypeError, match="figure 'f' of section 'S' is a str; pass matplotlib Figures"):
        ReportSection("S", figures=[("f", "not a figure")])
    with pytest.raises(TypeError, match="table 't' of section 'S' is a list; pass pandas DataFrames"):
        ReportSection("S", tables=[("t", [1, 2])])
    with pytest.raises(ValueError, match="needs a metrics table, an interventions table, or both"):
        layer_science_section()
    with pytest.raises(ValueError, match=r"the interventions table lacks column\(s\) \['intervention'\]"):
        layer_science_section(interventions=pd.DataFrame({"target": ["x"], "layer": [0], "r": [0.1]}))
    with pytest.raises(TypeError, match="sections must be ReportSection objects, got dict"):
        make_report(make_results(), "x.html", n_boot=10, sections=[{"title": "x"}])


def test_format_number():
    assert format_number(0.123456, "f3") == ("0.123", "0.123456")
    assert format_number(0.00001234, "p") == ("1.23e-05", "1.234e-05")
    assert format_number(0.0312, "p") == ("0.0312", "0.0312")
    assert format_number(np.int64(7), "d") == ("7", "7")
    assert format_number(np.nan, "f3") == ("–", "nan")
    assert format_number(pd.NA, "d") == ("–", "nan")
    assert format_number("LPTL", "s") == ("LPTL", None)


def test_cli_report(tmp_path, capsys):
    for res in make_group(2):
        res.save(tmp_path / f"{res.subject}.h5")
    out = tmp_path / "cli.html"
    code = main(["report", "--results", str(tmp_path / "*.h5"), "--out", str(out), "--n-boot", "50",
                 "--title", "CLI report"])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert f"Report written to {out.resolve()}" in printed
    assert ("tiny-model (9 layers) on 2 subjects and 6 targets:\n- LATL: the data cannot single out a best layer: "
            "layers 0–8 are indistinguishable from the best (layer 2)") in printed
    assert "<title>CLI report</title>" in out.read_text()
    # bad input: a message, no traceback, exit code 1
    code = main(["report", "--results", str(tmp_path / "missing.h5"), "--out", str(out)])
    assert code == 1
    assert "neuroenc report: error: results file not found" in capsys.readouterr().err
    code = main(["report", "--results", str(tmp_path), "--out", str(out), "--metrics", str(tmp_path / "m.json")])
    assert code == 1
    assert "metrics table not found" in capsys.readouterr().err


def test_cli_report_with_layer_science_tables(tmp_path, capsys):
    make_results("s01").save(tmp_path / "s01.h5")
    pd.DataFrame({"metric": "curvature", "layer": range(9), "value": np.linspace(1, 0, 9)}).to_csv(
        tmp_path / "metrics.csv", index=False)
    (tmp_path / "m.json").write_text("{}")
    out = tmp_path / "ls.html"
    assert main(["report", "--results", str(tmp_path / "s01.h5"), "--out", str(out), "--n-boot", "20",
                 "--metrics", str(tmp_path / "metrics.csv")]) == 0
    assert "<h2>Layer science</h2>" in out.read_text()
    # the HDF5 file that `neuroenc metrics` writes
    from neuroenc.features.metrics_layers import LayerMetrics

    LayerMetrics(layers=np.arange(9), values={"effective_rank": np.arange(9.0) + 2}).save(tmp_path / "m.h5")
    assert main(["report", "--results", str(tmp_path / "s01.h5"), "--out", str(out), "--n-boot", "20",
                 "--metrics", str(tmp_path / "m.h5")]) == 0
    assert "Representation metrics per layer: effective_rank." in out.read_text()
    assert main(["report", "--results", str(tmp_path / "s01.h5"), "--out", str(out),
                 "--metrics", str(tmp_path / "m.json")]) == 1
    assert "must be a .h5 (neuroenc metrics), .csv or .tsv file, got '.json'" in capsys.readouterr().err


def test_report_banded_split_scores_and_unscored_targets(tmp_path):
    results = make_group(2)
    for i, res in enumerate(results):
        res.split_scores = {"r2": np.full((2, len(ROIS)), 0.1 * (i + 1))}
        res.settings["bands"] = ["layer 5", "word rate"]
        res.r[:, 0] = np.nan           # a target the encoding model could not score
        res.pvalues[:, 0] = np.nan
    out = make_report(results, tmp_path / "banded.html", n_boot=50, n_permutations=100)
    page = _parse(out)
    split = page.tables["split-r2"]
    assert [row["band"][0] for row in split] == ["layer 5", "word rate"]
    assert float(split[0]["LPTL"][1]) == pytest.approx(0.15)
    latl = page.tables["group"][0]
    assert latl["target"][0] == "LATL" and latl["best_layer"] == ("–", "nan") and latl["r"] == ("–", "nan")
    assert "LATL: no finite score" in out.read_text()
    results[1].split_scores = {"r2": np.zeros((3, len(ROIS)))}
    with pytest.raises(ValueError, match="split scores 'r2' have shapes .* across subjects"):
        make_report(results, tmp_path / "bad.html", n_boot=50, n_permutations=100)


def test_report_surface_maps_and_unmapped_space(tmp_path):
    names = [f"L{i}" for i in range(0, 300, 10)] + [f"R{i}" for i in range(0, 300, 10)]
    res = make_results("s01", targets=names, peaks={t: i % 9 for i, t in enumerate(names)}, n_folds=2,
                       provenance={"space": "fsaverage5"})
    html = make_report(res, tmp_path / "surf.html", n_boot=20).read_text()
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert "best layer (relative depth) (fsaverage5)." in captions
    assert "best-layer r (fsaverage5)." in captions
    # a free-text space with no mask, affine or mesh: no maps, and the report says why
    res = make_results("s01", provenance={"space": "subject volume (pycortex)"})
    html = make_report(res, tmp_path / "free.html", n_boot=20).read_text()
    assert 'id="brain"' not in html
    assert "in space &#39;subject volume (pycortex)&#39;, but the results name no mask" in html


def test_report_without_a_mesh_still_renders(tmp_path, monkeypatch):
    import nilearn.datasets

    def offline(mesh):
        raise ConnectionError("no network")

    monkeypatch.setattr(nilearn.datasets, "load_fsaverage", offline)
    res = make_results("s01", targets=["L1", "R2"], peaks={"L1": 1, "R2": 3}, provenance={"space": "fsaverage6"})
    html = make_report(res, tmp_path / "nomesh.html", n_boot=20).read_text()
    assert 'id="brain"' not in html
    assert "No surface maps: the fsaverage6 mesh is not available" in html


def test_intervention_effects_compare_within_policy():
    import pandas as pd

    from neuroenc.report.sections import intervention_effects

    rows = []
    for name, policy, base in [("intact", "strided", 0.5), ("skip:1", "strided", 0.3),
                               ("intact (window)", "window", 0.4), ("freeze-context:1", "window", 0.35)]:
        for layer in range(3):
            rows.append({"intervention": name, "policy": policy, "target": "LPTL", "layer": layer,
                         "r": base + 0.01 * layer})
    effects = intervention_effects(pd.DataFrame(rows)).set_index("intervention")
    assert effects.loc["skip:1", "mean_delta"] == pytest.approx(-0.2)
    assert effects.loc["freeze-context:1", "mean_delta"] == pytest.approx(-0.05)  # vs intact (window)
    assert effects.loc["intact (window)", "delta_best"] == pytest.approx(0.0)


def test_report_labels_p_values_corrected_for_the_layer_choice(tmp_path):
    """With max-over-layers p-values, the best-layer tables show them, labelled as such, and the
    text says they are corrected for choosing the best layer; best-layer r is called biased."""
    import dataclasses

    res = make_results("sub-07")
    res = dataclasses.replace(res, pvalues_best=np.linspace(0.001, 0.2, len(ROIS)))
    out = make_report(res, tmp_path / "one.html", n_boot=50)
    page = _parse(out)
    text = out.read_text()
    for table in ("best", "significance"):
        rows = {row["target"][0]: row for row in page.tables[table]}
        for j, target in enumerate(ROIS):
            assert float(rows[target]["p_max"][1]) == res.pvalues_best[j]
            assert float(rows[target]["q_max"][1]) == res.qvalues_best[j]
            assert "p" not in rows[target]
    assert ">p vs chance (max over layers)<" in text and ">q vs chance (max over layers)<" in text
    assert "corrected for choosing the best of the layers" in text
    assert "optimistically biased" in text and "leave-one-subject-out" in text
    # a group where only some results have them: plain p/q labels, and a column saying which
    other = make_results("sub-08", seed=3)
    out = make_report([res, other], tmp_path / "two.html", n_boot=50, n_permutations=100)
    rows = _parse(out).tables["best"]
    methods = {(row["subject"][0], row["p_method"][0]) for row in rows}
    assert methods == {("sub-07", "max over layers"), ("sub-08", "best layer only")}
    for row in rows:
        j = ROIS.index(row["target"][0])
        expected = res.pvalues_best[j] if row["subject"][0] == "sub-07" else other.pvalues[int(row["best_layer"][1]), j]
        assert float(row["p"][1]) == expected
