import numpy as np
import pytest
import torch

from pipeline.metrics import accuracy, classification_metric, mean_average_precision


def brute_force_ap(scores: np.ndarray, positive: np.ndarray) -> float:
    """sklearn's definition: AP = sum_k (R_k - R_{k-1}) P_k over thresholds at each
    distinct score, highest first (tied items enter together)."""
    ap, prev_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        selected = scores >= threshold
        tp = int((selected & positive).sum())
        precision, recall = tp / int(selected.sum()), tp / int(positive.sum())
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def brute_force_map(scores: np.ndarray, targets: np.ndarray) -> float:
    positive = targets.astype(bool)
    aps = [
        brute_force_ap(scores[:, c], positive[:, c])
        for c in range(scores.shape[1])
        if positive[:, c].any()
    ]
    return float(np.mean(aps))


def test_accuracy() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(scores, np.array([1, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor(scores), torch.tensor([1, 0, 1])) == 1.0
    # a tie goes to the first index
    assert accuracy(np.array([[0.5, 0.5]]), np.array([0])) == 1.0


def test_accuracy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="integer"):
        accuracy(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        accuracy(np.zeros((2, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="NaN"):
        accuracy(np.array([[np.nan, 1.0]]), np.array([0]))


def test_map_hand_computed_with_a_class_without_positives() -> None:
    scores = np.array(
        [
            [0.9, 0.2, 0.5],
            [0.8, 0.7, 0.1],
            [0.3, 0.6, 0.9],
            [0.1, 0.4, 0.3],
        ]
    )
    targets = np.array(
        [
            [1, 0, 0],
            [0, 0, 0],
            [1, 1, 0],
            [0, 1, 0],
        ]
    )
    # class 0 ranked .9(+) .8(-) .3(+) .1(-): precision at positives 1/1, 2/3 -> AP 5/6
    # class 1 ranked .7(-) .6(+) .4(+) .2(-): precision at positives 1/2, 2/3 -> AP 7/12
    # class 2 has no positives: skipped, not counted as 0
    expected = (5 / 6 + 7 / 12) / 2  # 17/24
    assert mean_average_precision(scores, targets) == pytest.approx(expected)
    assert brute_force_map(scores, targets) == pytest.approx(expected)


def test_map_ties_are_grouped_independent_of_row_order() -> None:
    # .5(-) and .5(+) tie: the positive at .5 gets precision 1/2 whichever row comes
    # first; the positive at .2 gets 2/3 -> AP = 7/12
    scores = np.array([[0.5], [0.5], [0.2]])
    targets = np.array([[0], [1], [1]])
    assert mean_average_precision(scores, targets) == pytest.approx(7 / 12)
    assert mean_average_precision(scores[[1, 0, 2]], targets[[1, 0, 2]]) == pytest.approx(7 / 12)


@pytest.mark.parametrize("seed", range(5))
def test_map_matches_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(40, 7)) / 5.0  # coarse scores: many ties
    targets = (rng.random((40, 7)) < 0.3).astype(np.int64)
    targets[:, 3] = 0  # a class with no positives
    assert mean_average_precision(scores, targets) == pytest.approx(
        brute_force_map(scores, targets), rel=1e-12
    )


def test_map_perfect_and_tensor_input() -> None:
    targets = torch.tensor([[1, 0], [0, 1], [1, 0]])
    scores = targets.to(torch.bfloat16) * 0.9 + 0.05
    assert mean_average_precision(scores, targets) == 1.0


def test_map_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(np.random.rand(3, 2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="0/1"):
        mean_average_precision(np.random.rand(3, 2), np.full((3, 2), 2))
    with pytest.raises(ValueError, match="match scores"):
        mean_average_precision(np.random.rand(3, 2), np.ones((3, 3)))


def test_classification_metric_names() -> None:
    scores = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert classification_metric(scores, np.array([1, 0]), multi_label=False) == ("accuracy", 1.0)
    name, value = classification_metric(scores, np.array([[0, 1], [1, 0]]), multi_label=True)
    assert (name, value) == ("mAP", 1.0)
