import pytest

from routing.feedback import PRIOR_WEIGHT, FeedbackItem, fold_feedback

PRIORS = {"small": {"default": 3.0, "code": 3.5}, "large": {"default": 4.5}}


def test_good_ratings_raise_estimate_with_shrinkage():
    items = [FeedbackItem(model="small", task_type="chat", rating=5) for _ in range(10)]
    out = fold_feedback(items=items, priors=PRIORS)
    est = out[("small", "chat")]
    assert est.count == 10
    assert est.mean == pytest.approx((PRIOR_WEIGHT * 3.0 + 50) / (PRIOR_WEIGHT + 10))
    assert 3.0 < est.mean < 5.0


def test_task_specific_prior_is_used():
    out = fold_feedback(items=[FeedbackItem("small", "code", thumbs="down")], priors=PRIORS)
    assert out[("small", "code")].mean < 3.5


def test_thumbs_and_invalid_items():
    items = [
        FeedbackItem("large", "chat", thumbs="up"),
        FeedbackItem("large", "chat", rating=9),  # invalid: skipped
        FeedbackItem("large", "chat"),  # empty: skipped
    ]
    out = fold_feedback(items=items, priors=PRIORS)
    assert out[("large", "chat")].count == 1


def test_incremental_folding_equals_batch():
    a = [FeedbackItem("small", "chat", rating=r) for r in (1, 2, 5)]
    b = [FeedbackItem("small", "chat", rating=r) for r in (4, 4)]
    once = fold_feedback(items=a + b, priors=PRIORS)
    first = fold_feedback(items=a, priors=PRIORS)
    twice = fold_feedback(items=b, priors=PRIORS, current=first)
    assert twice[("small", "chat")].mean == pytest.approx(once[("small", "chat")].mean)
    assert twice[("small", "chat")].count == 5


def test_many_ratings_dominate_prior():
    items = [FeedbackItem("large", "math", rating=2) for _ in range(2000)]
    assert fold_feedback(items=items, priors=PRIORS)[("large", "math")].mean == pytest.approx(
        2.0, abs=0.05
    )
