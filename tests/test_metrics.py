"""epx.metrics: Pass@k by hand and by law, Maj@n on clusters and ties, Acc@n."""

from __future__ import annotations

import math
import random
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epx.metrics import ProblemSamples, accuracy, bench_metrics, majority_vote, pass_at_k


def test_pass_at_k_hand_values():
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(8, 3, 4) == pytest.approx(1 - 5 / 70)  # C(5,4)=5, C(8,4)=70
    assert pass_at_k(5, 0, 3) == 0.0  # no correct sample
    assert pass_at_k(5, 5, 3) == 1.0  # all correct
    assert pass_at_k(5, 1, 5) == 1.0  # k = n with one correct
    assert pass_at_k(5, 0, 5) == 0.0  # k = n, none correct
    assert pass_at_k(5, 4, 2) == 1.0  # n - c = 1 < k: every pair holds a correct one


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 500) overflows a float; the product form does not need it.
    value = pass_at_k(1000, 1, 500)
    assert value == pytest.approx(0.5)  # one correct among 1000, draw half: 500/1000


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(0, 0, 1), (3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4), (3.0, 1, 1), (3, True, 1)],
)
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(n, c, k)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_1_is_fraction_correct(nc):
    n, c = nc
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_matches_enumeration(nck):
    n, c, k = nck
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    expected = sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_accuracy_is_mean_correct():
    assert accuracy([True, False, False, True]) == 0.5
    with pytest.raises(ValueError):
        accuracy([])


def test_majority_vote_largest_cluster_wins():
    vote = majority_vote(
        ["7", "5", "5", None, None, None], [False, True, True, False, False, False]
    )
    # three unparsed samples never win: "5" has two, "7" one
    assert (vote.key, vote.count, vote.correct) == ("5", 2, True)


def test_majority_vote_tie_goes_to_earliest_first_occurrence():
    assert majority_vote(["a", "b", "b", "a"], [True, False, False, True]).key == "a"
    assert majority_vote(["b", "a", "a", "b"], [False, True, True, False]).key == "b"
    assert majority_vote(["b", "a", "a", "b"], [False, True, True, False]).correct is False


def test_majority_vote_without_answers_is_wrong():
    vote = majority_vote([None, None], [False, False])
    assert (vote.key, vote.count, vote.correct) == (None, 0, False)


def test_majority_vote_length_mismatch():
    with pytest.raises(ValueError):
        majority_vote(["1"], [True, False])


keys_strategy = st.lists(st.one_of(st.none(), st.sampled_from("abcd")), min_size=1, max_size=10)


@given(keys_strategy, st.randoms(use_true_random=False))
def test_majority_vote_invariant_to_order_except_ties(keys, rng):
    correct = [key == "a" for key in keys]  # a cluster's members agree on correctness
    vote = majority_vote(keys, correct)
    order = list(range(len(keys)))
    rng.shuffle(order)
    shuffled_keys = [keys[i] for i in order]
    shuffled = majority_vote(shuffled_keys, [correct[i] for i in order])
    counts = {k: keys.count(k) for k in set(keys) if k is not None}
    top = max(counts.values(), default=0)
    leaders = [k for k, count in counts.items() if count == top]
    assert shuffled.count == vote.count == top
    if len(leaders) <= 1:
        assert (shuffled.key, shuffled.correct) == (vote.key, vote.correct)
    else:  # the documented tie rule: the leader seen first in the (new) order
        assert shuffled.key == next(k for k in shuffled_keys if k in leaders)


def test_bench_metrics_by_hand():
    problems = [
        # 2 of 4 correct, the majority ("1", twice) is correct, one unparsed
        ProblemSamples(
            ("1", "1", "2", None),
            (True, True, False, False),
            ("correct", "correct", "wrong", "unparsed"),
            (10, 20, 30, 40),
        ),
        # none correct, one timeout
        ProblemSamples(
            ("3", "4", None, "4"),
            (False, False, False, False),
            ("wrong", "wrong", "timeout", "wrong"),
            (1, 1, 1, 1),
            (True, False, False, True),  # two cut off by the token limit (scored all the same)
        ),
    ]
    metrics = bench_metrics(problems, n=4)
    assert metrics["truncated"] == pytest.approx(2 / 8)  # the first problem: all ended
    assert metrics["acc"] == pytest.approx((0.5 + 0.0) / 2)
    assert metrics["maj"] == pytest.approx((1 + 0) / 2)
    assert metrics["pass@1"] == pytest.approx(metrics["acc"])  # pass@1 is mean correctness
    assert metrics["pass@4"] == pytest.approx((1 + 0) / 2)
    assert metrics["unparsed"] == pytest.approx(1 / 8)
    assert metrics["timeouts"] == 1
    assert metrics["tokens_mean"] == pytest.approx((100 + 4) / 8)
    assert (metrics["problems"], metrics["samples"]) == (2, 8)


def test_bench_metrics_rejects_ragged_problems():
    with pytest.raises(ValueError):
        bench_metrics([ProblemSamples(("1",), (True,), ("correct",), (1,))], n=2)


def test_majority_vote_random_reference():
    # a slow obvious reference: count, then scan in order for the first key with the top count
    rng = random.Random(0)
    for _ in range(200):
        keys = [rng.choice([None, "x", "y", "z"]) for _ in range(rng.randint(1, 9))]
        correct = [k == "y" for k in keys]
        parsed = [k for k in keys if k is not None]
        expected = None
        if parsed:
            top = max(parsed.count(k) for k in parsed)
            expected = next(k for k in parsed if parsed.count(k) == top)
        assert majority_vote(keys, correct).key == expected
