"""Intervention specs: the grammar, dicts, plans and their error messages."""
from __future__ import annotations

import json

import pytest

from neuroenc.features.interventions import (
    Intervention,
    Step,
    check_context_policy,
    parse_intervention,
)
from neuroenc.features.interventions_patch import intervention_plan_table


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("skip:10-14", Intervention("skip", 10, 14)),
        ("skip:3", Intervention("skip", 3, 3)),
        ("repeat:12x3", Intervention("repeat", 12, None, n=3)),
        ("repeat:2", Intervention("repeat", 2, None, n=2)),
        ("reverse:8-15", Intervention("reverse", 8, 15)),
        ("shuffle:8-15", Intervention("shuffle", 8, 15, seed=0)),
        ("shuffle:8-15:seed=7", Intervention("shuffle", 8, 15, seed=7)),
        ("swap:7,3", Intervention("swap", 3, 3, other=7)),
        ("swap:10-19,20-29", Intervention("swap", 10, 19, other=20)),
        ("swap:20-29,10", Intervention("swap", 10, 19, other=20)),
        ("parallel:10-13", Intervention("parallel", 10, 13)),
        ("no-attention:20", Intervention("no-attention", 20, None)),
        ("no_attention:2-3", Intervention("no-attention", 2, 3)),
        ("freeze-context:15", Intervention("freeze-context", 15)),
        ("random-context:15", Intervention("random-context", 15, seed=0)),
        (" Random-Context:15:seed=4 ", Intervention("random-context", 15, seed=4)),
    ],
)
def test_parse_string(spec, expected):
    iv = parse_intervention(spec)
    assert iv == expected
    # str() is canonical and parses back to the same intervention, and so does to_dict().
    assert parse_intervention(str(iv)) == iv
    as_dict = iv.to_dict()
    assert parse_intervention(json.loads(json.dumps(as_dict))) == iv
    assert as_dict["spec"] == str(iv)


def test_str_and_dict_forms():
    assert str(parse_intervention("skip:3-3")) == "skip:3"
    assert str(parse_intervention("shuffle:1-4")) == "shuffle:1-4:seed=0"
    assert parse_intervention("repeat:5x4").to_dict() == {"kind": "repeat", "start": 5, "n": 4, "spec": "repeat:5x4"}
    assert parse_intervention("freeze-context:2").to_dict() == {
        "kind": "freeze-context", "start": 2, "spec": "freeze-context:2"}
    # random-context records how its vectors are drawn, so other draws never share a cache key.
    assert parse_intervention("random-context:2").to_dict() == {
        "kind": "random-context", "start": 2, "seed": 0, "noise": "per-prefix",
        "spec": "random-context:2:seed=0"}
    assert parse_intervention({"kind": "random-context", "start": 2, "seed": 1}).to_dict()["noise"] == "per-prefix"
    shuffled = parse_intervention("shuffle:0-3:seed=1").to_dict()
    assert sorted(shuffled["order"]) == [0, 1, 2, 3]
    assert parse_intervention({"kind": "skip", "start": 2}) == Intervention("skip", 2, 2)
    assert parse_intervention({"kind": "repeat", "start": 1}) == Intervention("repeat", 1, n=2)


def test_none_and_passthrough():
    assert parse_intervention(None) is None
    assert parse_intervention("none") is None
    assert parse_intervention({"kind": "none"}) is None
    iv = Intervention("skip", 1, 2)
    assert parse_intervention(iv) is iv


def test_plans():
    n = 6
    intact = [Step("chain", (p,)) for p in range(n)]
    assert parse_intervention("skip:1-2").plan(n) == (
        [intact[0], Step("chain", ()), Step("chain", ()), *intact[3:]])
    assert parse_intervention("repeat:4x3").plan(n)[4] == Step("chain", (4, 4, 4))
    assert [s.blocks for s in parse_intervention("reverse:1-4").plan(n)] == [(0,), (4,), (3,), (2,), (1,), (5,)]
    assert [s.blocks for s in parse_intervention("swap:0,5").plan(n)] == [(5,), (1,), (2,), (3,), (4,), (0,)]
    assert [s.blocks for s in parse_intervention("swap:0-1,3-4").plan(n)] == [(3,), (4,), (2,), (0,), (1,), (5,)]
    assert parse_intervention("swap:3-4,0").blocks(n) == [0, 1, 3, 4]
    par = parse_intervention("parallel:2-4").plan(n)
    assert par[2:5] == [Step("chain", ()), Step("chain", ()), Step("mean", (2, 3, 4))]
    assert parse_intervention("parallel:3").plan(n) == [*intact[:3], Step("mean", (3,)), *intact[4:]]
    order = [s.blocks[0] for s in parse_intervention("shuffle:1-4:seed=3").plan(n)]
    assert order[0] == 0 and order[5] == 5 and sorted(order[1:5]) == [1, 2, 3, 4]
    assert order[1:5] == parse_intervention("shuffle:1-4:seed=3").to_dict()["order"]
    for spec in ("no-attention:2", "freeze-context:1", "random-context:4"):
        assert parse_intervention(spec).plan(n) == intact
    assert parse_intervention("no-attention:2").blocks(n) == [2, 3, 4, 5]
    assert parse_intervention("no-attention:2-3").blocks(n) == [2, 3]
    assert parse_intervention("freeze-context:4").blocks(n) == [4, 5]


def test_shuffle_is_seeded_and_never_the_intact_order():
    for seed in range(20):
        assert parse_intervention(f"shuffle:3-4:seed={seed}").to_dict()["order"] == [4, 3]
        assert parse_intervention(f"shuffle:0-2:seed={seed}").to_dict()["order"] != [0, 1, 2]
    a = parse_intervention("shuffle:0-9:seed=1").to_dict()["order"]
    b = parse_intervention("shuffle:0-9:seed=1").to_dict()["order"]
    c = parse_intervention("shuffle:0-9:seed=2").to_dict()["order"]
    assert a == b and a != c


def test_plan_table():
    assert intervention_plan_table("parallel:1-2", 4) == [
        "0: block 0", "1: pass-through", "2: mean(blocks 1, 2)", "3: block 3"]
    assert intervention_plan_table("repeat:0x2", 2) == ["0: block 0 -> block 0", "1: block 1"]
    assert intervention_plan_table("no-attention:1", 2)[1] == "1: block 1 (MLP only)"
    assert intervention_plan_table(None, 2) == ["0: block 0", "1: block 1"]
    assert "frozen at hidden state 1" in intervention_plan_table("freeze-context:1", 3)[2]


@pytest.mark.parametrize(
    "spec, match",
    [
        ("skp:1-2", r"unknown kind 'skp'.*Allowed kinds are 'skip'"),
        ("skip", r"'skip' takes the form 'skip:I\[-J\]'"),
        ("skip:a-b", r"'skip' takes the form"),
        ("skip:5-3", r"ends \(block 3\) before it starts \(block 5\); write skip:3-5"),
        ("reverse:4", r"'reverse' takes the form 'reverse:I-J'"),
        ("reverse:4-4", r"needs a range of at least two blocks"),
        ("shuffle:2-2", r"needs a range of at least two blocks"),
        ("repeat:3x0", r"must run at least once"),
        ("swap:2,2", r"the swapped ranges 2-2 and 2-2 overlap"),
        ("swap:0-3,2-5", r"the swapped ranges 0-3 and 2-5 overlap"),
        ("swap:0-2,4-5", r"two ranges of the same length, got 3 and 2 blocks"),
        ("swap:4-2,6", r"ends \(block 2\) before it starts \(block 4\)"),
        ("freeze-context:5-2", r"ends \(block 2\) before it starts \(block 5\)"),
        ("freeze-context:2:x", r"'freeze-context' takes the form 'freeze-context:K\[-J\]'"),
        ("random-context:2:keep-sink:keep-sink", r"an option is given twice"),
        ("swap-context:2", r"'swap-context' takes the form 'swap-context:K\[-J\]:text=WORDS'"),
        ("swap-context:2:file=x", r"got source 'file=x'"),
        ("order:0-2,a", r"'order' takes the form 'order:B\[,B...\]"),
        ("freeze-context:2:keep-sink", r"'freeze-context' takes the form"),
        ("skip:1:keep-sink", r"'skip' takes the form"),
        ("random-context:2:seed=x", r"'random-context' takes the form"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_intervention(spec)


def test_bad_dicts_and_types():
    with pytest.raises(ValueError, match="needs a 'kind' key"):
        parse_intervention({"start": 1})
    with pytest.raises(ValueError, match="Invalid value for 'intervention kind'"):
        parse_intervention({"kind": "drop", "start": 1})
    with pytest.raises(ValueError, match="it needs a 'start' block"):
        parse_intervention({"kind": "skip"})
    with pytest.raises(ValueError, match=r"unknown keys \['blocks'\]"):
        parse_intervention({"kind": "skip", "start": 1, "blocks": 3})
    with pytest.raises(TypeError, match="'start' must be an integer, got '1'"):
        parse_intervention({"kind": "skip", "start": "1"})
    with pytest.raises(ValueError, match="block start must be >= 0, got -1"):
        parse_intervention({"kind": "skip", "start": -1})
    with pytest.raises(ValueError, match="'swap' needs 'other', the start of the second range"):
        parse_intervention({"kind": "swap", "start": 1})
    real = parse_intervention("shuffle:0-2").to_dict()["order"]
    wrong = real[::-1]  # a permutation of distinct blocks never equals its reverse
    with pytest.raises(ValueError, match=r"recorded block order .* differs from the order its seed gives"):
        parse_intervention({"kind": "shuffle", "start": 0, "stop": 2, "seed": 0, "order": wrong})
    with pytest.raises(TypeError, match="must be a spec string"):
        parse_intervention(3)
    with pytest.raises(ValueError, match=r"the recorded noise 'per-batch' is not how this version draws "
                       r"random contexts \('per-prefix', for 'random-context' only\).*Re-extract them"):
        parse_intervention({"kind": "random-context", "start": 1, "seed": 0, "noise": "per-batch"})
    with pytest.raises(ValueError, match="the recorded noise 'per-sequence' is not how"):
        parse_intervention({"kind": "skip", "start": 1, "noise": "per-sequence"})
    # features drawn per sequence (before the paired passes) are refused: re-extract them
    with pytest.raises(ValueError, match=r"the recorded noise 'per-sequence' is not how .*Re-extract them"):
        parse_intervention({"kind": "random-context", "start": 1, "seed": 0, "noise": "per-sequence"})


def test_check_blocks():
    assert parse_intervention("skip:1-3").check(4).stop == 3
    assert parse_intervention("swap:0-1,4").last_block() == 5
    assert parse_intervention("freeze-context:2").last_block() == 2
    assert parse_intervention("no-attention:3").last_block() == 3
    with pytest.raises(ValueError, match=r"needs block 9 but the model has 4 blocks \(0..3\)"):
        parse_intervention("skip:2-9").check(4)
    with pytest.raises(ValueError, match="needs block 4 but the model has 4 blocks"):
        parse_intervention("swap:4,0").check(4)
    with pytest.raises(ValueError, match="needs block 5 but the model has 4 blocks"):
        parse_intervention("swap:0-1,4").check(4)
    with pytest.raises(ValueError, match="needs block 5"):
        parse_intervention("freeze-context:5").blocks(4)


def test_check_context_policy():
    check_context_policy(None, "strided", "mean")
    check_context_policy(parse_intervention("skip:1"), "strided", "mean")
    check_context_policy(parse_intervention("freeze-context:1"), "window", "last")
    assert parse_intervention("random-context:1").needs_last_token
    assert not parse_intervention("no-attention:1").needs_last_token
    # strided: a paired pass reads every token as the current one (any pooling)
    check_context_policy(parse_intervention("freeze-context:1"), "strided", "last")
    check_context_policy(parse_intervention("freeze-context:1"), "strided", "mean")
    with pytest.raises(ValueError, match=r"with policy='window' .* needs pooling='last' \(got pooling='mean'\)"):
        check_context_policy(parse_intervention("random-context:1"), "window", "mean")
