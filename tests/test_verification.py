"""EER and minDCF against an independent brute-force threshold sweep on random scores."""
import numpy as np
import pytest

from utils.verification import eer, min_dcf


def brute_force(scores, labels, p_target=0.01):
    """Loop over every threshold, counting by hand."""
    targets = [s for s, l in zip(scores, labels) if l == 1]
    nontargets = [s for s, l in zip(scores, labels) if l == 0]
    best_gap, eer_value, best_cost = None, None, None
    for t in sorted(set(scores)) + [float("inf")]:
        p_miss = sum(1 for s in targets if s < t) / len(targets)
        p_fa = sum(1 for s in nontargets if s >= t) / len(nontargets)
        gap = abs(p_miss - p_fa)
        if best_gap is None or gap < best_gap:
            best_gap, eer_value = gap, 100 * (p_miss + p_fa) / 2
        cost = p_miss * p_target + p_fa * (1 - p_target)
        best_cost = cost if best_cost is None else min(best_cost, cost)
    return eer_value, best_cost / min(p_target, 1 - p_target)


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(labels * 1.5, 1.0), 2)  # rounding makes ties, which must be handled too
    expected_eer, expected_dcf = brute_force(scores.tolist(), labels.tolist())
    assert eer(scores, labels) == pytest.approx(expected_eer)
    assert min_dcf(scores, labels) == pytest.approx(expected_dcf)


def test_perfect_and_inverted_systems():
    labels = np.array([1, 1, 0, 0])
    assert eer([0.9, 0.8, 0.1, 0.2], labels) == 0.0 and min_dcf([0.9, 0.8, 0.1, 0.2], labels) == 0.0
    assert eer([0.1, 0.2, 0.9, 0.8], labels) == 100.0
    assert min_dcf([0.1, 0.2, 0.9, 0.8], labels) == pytest.approx(1.0)  # no better than rejecting all


def test_needs_both_kinds_of_trial():
    with pytest.raises(ValueError):
        eer([0.1, 0.2], [1, 1])
