"""The drift maths of Scoring Data: PSI, class shares and the verdict."""

from __future__ import annotations

import math

import pytest

from usecases.workflow.scoring import (
    DRIFT_PSI,
    MIN_REQUESTS_FOR_DRIFT,
    SHARE_FLOOR,
    drift,
    psi,
    shares,
    verdict,
)

EVEN = {"business": 0.5, "sport": 0.5}
SKEWED = {"business": 0.8, "sport": 0.2}


def test_identical_distributions_have_zero_psi() -> None:
    assert psi(EVEN, EVEN) == 0.0
    five = {label: 0.2 for label in ("a", "b", "c", "d", "e")}
    assert psi(five, dict(five)) == 0.0


def test_a_two_class_shift_has_the_hand_computed_psi() -> None:
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5) = 0.3 ln 1.6 + 0.3 ln 2.5 = 0.6 ln 2
    assert psi(EVEN, SKEWED) == pytest.approx(0.6 * math.log(2), rel=1e-12)


def test_psi_is_symmetric_and_weighs_a_shift_by_where_it_happens() -> None:
    assert psi(EVEN, SKEWED) == pytest.approx(psi(SKEWED, EVEN), rel=1e-12)
    missing = {"business": 1.0}
    assert psi(EVEN, missing) == pytest.approx(psi(missing, EVEN), rel=1e-12)
    # the same 0.1 shift weighs more where the expected share is small
    near_even = psi(EVEN, {"business": 0.6, "sport": 0.4})
    near_edge = psi({"business": 0.85, "sport": 0.15}, {"business": 0.95, "sport": 0.05})
    assert 0 < near_even < near_edge


def test_a_class_missing_on_one_side_is_floored_not_infinite() -> None:
    observed = {"business": 1.0}  # sport never predicted
    expected = 0.5 * math.log(1.0 / 0.5) + (SHARE_FLOOR - 0.5) * math.log(SHARE_FLOOR / 0.5)
    assert SHARE_FLOOR == 1e-4
    assert psi(EVEN, observed) == pytest.approx(expected, rel=1e-12)
    assert psi(EVEN, {"business": 1.0, "sport": 0.0}) == psi(EVEN, observed)


def test_shares_sum_to_one_and_empty_counts_have_none() -> None:
    assert shares({"business": 3, "sport": 1}) == {"business": 0.75, "sport": 0.25}
    assert shares({}) == {}
    assert shares({"business": 0}) == {}


@pytest.mark.parametrize(("value", "requests", "drifted"), [
    (DRIFT_PSI, MIN_REQUESTS_FOR_DRIFT, False),
    (DRIFT_PSI + 1e-9, MIN_REQUESTS_FOR_DRIFT, True),
    (DRIFT_PSI - 1e-9, 1000, False),
    (0.0, MIN_REQUESTS_FOR_DRIFT, False),
], ids=["at-threshold", "above", "below", "none"])
def test_verdict_against_the_threshold(value: float, requests: int, drifted: bool) -> None:
    assert verdict(value, requests) == (drifted, f"PSI > {DRIFT_PSI} means drift")


def test_no_verdict_below_the_minimum_of_requests() -> None:
    drifted, note = verdict(10.0, MIN_REQUESTS_FOR_DRIFT - 1)
    assert drifted is None
    assert note == f"fewer than {MIN_REQUESTS_FOR_DRIFT} requests: no verdict"


def test_drift_compares_served_classes_with_the_training_labels() -> None:
    result = drift({"business": 10, "sport": 10}, {"business": 32, "sport": 8})
    assert result == {"reference": "training labels", "psi": round(0.6 * math.log(2), 4),
                      "drifted": True, "note": f"PSI > {DRIFT_PSI} means drift"}
    few = drift({"business": 10, "sport": 10}, {"business": 8, "sport": 2})
    assert few["psi"] == result["psi"] and few["drifted"] is None


def test_drift_without_training_labels_has_no_reference() -> None:
    result = drift({}, {"business": 40})
    assert result["psi"] is None and result["drifted"] is None
    assert set(result) == {"reference", "psi", "drifted", "note"}
