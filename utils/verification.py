"""Speaker-verification metrics over trial scores: EER (%) and normalised minDCF.

labels: 1 for target trials (same speaker), 0 for non-target. A trial is accepted when its
score >= threshold; every distinct score (and +inf, accept nothing) is a candidate threshold.
"""
import numpy as np


def error_rates(scores, labels):
    """(false-alarm rate, miss rate) at each candidate threshold, thresholds ascending."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_target, n_nontarget = labels.sum(), (~labels).sum()
    if n_target == 0 or n_nontarget == 0:
        raise ValueError("verification needs both target and non-target trials")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Candidate thresholds: each distinct score (accepting it and everything above), then +inf.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    targets_below = np.r_[0, np.cumsum(sorted_labels)][starts]          # targets rejected at that threshold
    nontargets_below = np.r_[0, np.cumsum(~sorted_labels)][starts]
    miss = np.r_[targets_below, n_target] / n_target
    false_alarm = np.r_[n_nontarget - nontargets_below, 0] / n_nontarget
    return false_alarm, miss


def eer(scores, labels) -> float:
    """Equal error rate in %, at the threshold where false alarms and misses are closest."""
    false_alarm, miss = error_rates(scores, labels)
    i = np.argmin(np.abs(false_alarm - miss))
    return float(100.0 * (false_alarm[i] + miss[i]) / 2)


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum of c_miss*P_miss*p_target + c_fa*P_fa*(1-p_target) over thresholds, divided by the
    cost of the best trivial system, min(c_miss*p_target, c_fa*(1-p_target))."""
    false_alarm, miss = error_rates(scores, labels)
    cost = c_miss * miss * p_target + c_fa * false_alarm * (1 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))
