"""A memory budget for one fit (``memory=``), and the phase timing of the solver."""
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuroenc._validation import InvalidParameterError
from neuroenc.encoding import LayerSweep, _ridge, fit_encoding
from neuroenc.encoding.memory import fit_budget, parse_memory
from neuroenc.encoding.simulate import simulate_layers

SWEEP = dict(n_permutations=30, permutation="refit", alphas=np.logspace(-1, 4, 8), dtype="float64",
             random_state=3)


@pytest.fixture(scope="module")
def data():
    return simulate_layers(n_samples=300, n_features=30, n_targets=300, noise=(1.0, 2.0), random_state=0)


def test_parse_memory():
    assert parse_memory("4GB") == 4 * 10**9
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("1.5 kB") == 1500
    assert parse_memory(1234) == 1234
    for bad in ("4 gigs", "0GB", 0, -5, "GB"):
        with pytest.raises(ValueError, match="memory must be a positive number of bytes"):
            parse_memory(bad)


def test_fit_under_a_small_budget_gives_the_same_results(data):
    layers, Y = data
    free = LayerSweep(**SWEEP).fit(layers, Y)
    budgeted = LayerSweep(memory="9MB", **SWEEP).fit(layers, Y)
    plan = budgeted.budget_
    # the budget cut the targets and the refit null's draws into smaller batches than the defaults
    assert plan.memory == 9 * 10**6 and 1 <= plan.n_targets_batch < Y.shape[1]
    assert plan.refit_batch_bytes < _ridge.REFIT_BATCH_BYTES
    assert free.budget_ is None
    for name in ("r_", "r2_", "r_pooled_", "fold_alphas_", "pvalues_", "pvalues_best_", "refit_alphas_"):
        assert_allclose(getattr(budgeted, name), getattr(free, name), rtol=0, atol=1e-10, err_msg=name)
    assert free.comparison_.source == budgeted.comparison_.source == "residual"
    assert_allclose(budgeted.comparison_.delta_r, free.comparison_.delta_r, atol=1e-10)
    assert_allclose(budgeted.comparison_.pvalues, free.comparison_.pvalues, atol=1e-10)
    for layer in free.coefs_:
        assert_allclose(budgeted.coefs_[layer]["coef"], free.coefs_[layer]["coef"], atol=1e-10)


def test_fit_peak_stays_under_the_budget(data):
    """The fit's own allocations (traced; the inputs and imports were allocated before) stay under the budget,
    and without it the default batches go well over it."""
    layers, Y = data
    kw = dict(SWEEP, refit=False)

    def peak(**extra):
        tracemalloc.start()
        try:
            LayerSweep(**kw, **extra).fit(layers, Y[:, :100])
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    budget = 3 * 10**6
    LayerSweep(**kw).fit(layers, Y[:, :5])  # lazy imports and caches, allocated once per process
    assert peak(memory=budget) <= budget
    assert peak() > 5 * budget


def test_fit_encoding_takes_the_budget(data):
    layers, Y = data
    kw = dict(n_permutations=10, alphas=np.logspace(-1, 4, 8), verbose=False)
    free = fit_encoding(layers, Y[:, :50], **kw)
    budgeted = fit_encoding(layers, Y[:, :50], memory="2MB", **kw)
    assert_allclose(budgeted.r, free.r, atol=1e-10)
    assert_allclose(budgeted.pvalues, free.pvalues, atol=1e-10)
    assert budgeted.settings["memory"] == "2MB"


def test_budget_too_small_says_what_is_needed(data):
    layers, Y = data
    with pytest.raises(ValueError, match=r"memory='100kB' is too small for this fit .* at least .* GiB"):
        LayerSweep(memory="100kB", **SWEEP).fit(layers, Y)
    with pytest.raises(InvalidParameterError, match=r"memory must be .*a size such as '4GB'.*got '4 gigs'"):
        LayerSweep(memory="4 gigs", **SWEEP).fit(layers, Y)


def test_fit_budget_chunks_more_under_less_memory():
    shape = dict(n_samples=3000, n_features=2304, n_targets=80000, n_layers=31, n_folds=5, inner_cv=5,
                 n_validation=480, n_test=600, n_alphas=10, n_permutations=0)
    big, small = fit_budget("64GB", **shape), fit_budget("8GB", **shape)
    assert small.n_targets_batch < big.n_targets_batch
    assert small.fixed_bytes == big.fixed_bytes
    assert small.fixed_bytes + small.n_targets_batch * small.per_target_bytes <= 8 * 10**9
    assert fit_budget("64GB", **shape, n_targets_batch=100).n_targets_batch == 100


def test_memory_is_a_config_and_cli_option():
    from neuroenc.commands.fit import encoding_settings

    for kind in ("story", "stimuli"):
        setting = encoding_settings(kind)["memory"]
        assert setting.default is None and "memory budget" in setting.doc


def test_record_phases_times_each_phase_and_counts_all_flops(data):
    layers, Y = data
    with _ridge.record_phases() as phases:
        sweep = LayerSweep(**dict(SWEEP, refit=False)).fit(layers, Y[:, :40])
    assert set(phases) == {"kernels", "decompositions", "penalty search", "scores", "permutations",
                           "comparisons"}
    assert all(v["seconds"] >= 0 and v["calls"] > 0 for v in phases.values())
    assert sum(v["flops"] for v in phases.values()) == pytest.approx(sweep.flops_, rel=1e-12)
    assert phases["permutations"]["flops"] > phases["penalty search"]["flops"] > 0
    # off outside the context: nothing more is recorded
    assert _ridge._phases is None
    before = {k: dict(v) for k, v in phases.items()}
    LayerSweep(**dict(SWEEP, refit=False, n_permutations=0)).fit(layers, Y[:, :10])
    assert phases == before
