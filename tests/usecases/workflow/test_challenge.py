"""When Model Maintenance promotes a challenger over the serving champion, and when not."""

from __future__ import annotations

import pytest

from usecases.workflow.challenge import Scores, decide


def _decide(test: tuple[float, float], samples: tuple[float, float], n: int = 10,
            gate: bool = True, tolerance: float = 0.01) -> tuple[bool, str]:
    return decide(Scores(100, *test), Scores(n, *samples), gate, tolerance)


def test_better_on_the_new_samples_and_as_good_on_the_test_set_is_promoted() -> None:
    promoted, reason = _decide((0.90, 0.90), (0.40, 0.80))
    assert promoted and "better on the new samples (0.8000 > 0.4000)" in reason


def test_a_small_loss_on_the_test_set_within_the_tolerance_is_accepted() -> None:
    assert _decide((0.900, 0.895), (0.4, 0.8))[0]


@pytest.mark.parametrize(("test", "samples", "n", "gate", "why"), [
    ((0.90, 0.87), (0.4, 0.9), 10, True, "worse on the test set: 0.8700 < 0.9000 - 0.01"),
    ((0.90, 0.95), (0.8, 0.8), 10, True, "not better on the new samples: 0.8000 <= 0.8000"),
    ((0.90, 0.95), (0.4, 0.9), 10, False, "did not pass its gate"),
], ids=["worse-on-test", "equal-on-samples", "gate-failed"])
def test_otherwise_the_champion_stays(test: tuple[float, float], samples: tuple[float, float],
                                      n: int, gate: bool, why: str) -> None:
    promoted, reason = _decide(test, samples, n, gate)
    assert not promoted and why in reason


def test_without_held_out_samples_there_is_nothing_to_compare() -> None:
    promoted, reason = decide(Scores(100, 0.9, 0.95), Scores(0, None, None), True, 0.01)
    assert not promoted and "no newly labeled served input is held out" in reason
