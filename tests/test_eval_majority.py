"""Maj@n with the real scorer's keys: equivalent forms are one cluster; ties follow the rule."""

from __future__ import annotations

from epx.metrics import majority_vote
from epx.scoring import score_many

GOLD = "\\frac{1}{2}"


def scored(answers: list[str]):
    return score_many([(f"The answer is $\\boxed{{{a}}}$.", GOLD) for a in answers], workers=1)


def test_equivalent_forms_share_one_key_and_win_together():
    scores = scored(["3", "0.5", "\\frac12", "3", "1/2"])
    keys = [s.key for s in scores]
    assert keys[1] == keys[2] == keys[4]  # 0.5, \frac12 and 1/2 are one cluster
    assert keys[0] == keys[3] != keys[1]
    # the scorer credits the cluster of the gold and only it
    assert [s.correct for s in scores] == [False, True, True, False, True]
    vote = majority_vote(keys, [s.correct for s in scores])
    assert (vote.key, vote.count, vote.correct) == (keys[1], 3, True)  # 3 beats "3" x2


def test_a_tie_goes_to_the_cluster_seen_first():
    scores = scored(["0.5", "3", "1/2", "3"])  # two against two
    keys, correct = [s.key for s in scores], [s.correct for s in scores]
    assert majority_vote(keys, correct).correct is True  # 0.5 came first
    assert majority_vote(keys[::-1], correct[::-1]).correct is False  # now 3 comes first


def test_unparsed_samples_never_win():
    scores = score_many(
        [("no answer here", GOLD), ("still nothing", GOLD), ("$\\boxed{7}$", GOLD)], workers=1
    )
    assert [s.status for s in scores][:2] == ["unparsed", "unparsed"]
    vote = majority_vote([s.key for s in scores], [s.correct for s in scores])
    assert vote.count == 1 and vote.correct is False  # the lone parsed "7" wins, and is wrong
