import random

import pytest

from routing.evaluation import (
    apgr,
    baseline_scores,
    cpt,
    evaluate_responses,
    evaluate_scores,
    router_curve,
)


def _data(n=1000, seed=1):
    rng = random.Random(seed)
    weak, strong = [], []
    for _ in range(n):
        s = rng.random() < 0.8
        w = rng.random() < (0.7 if s else 0.4)
        weak.append(w)
        strong.append(s)
    return weak, strong


def test_constant_router_is_exactly_half():
    weak, strong = _data()
    m = evaluate_scores(scores=[0.0] * len(weak), weak=weak, strong=strong)
    assert m.apgr == pytest.approx(0.5)
    assert m.cpt50 == pytest.approx(0.5)
    assert m.cpt80 == pytest.approx(0.8)


def test_random_router_is_near_half():
    weak, strong = _data(n=20000)
    rng = random.Random(7)
    m = evaluate_scores(scores=[rng.random() for _ in weak], weak=weak, strong=strong)
    assert m.apgr == pytest.approx(0.5, abs=0.03)


def test_oracle_matches_closed_form():
    # 10 prompts: 3 only-strong-right, 1 only-weak-right, 6 both equal.
    weak = [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    strong = [1, 1, 1, 0, 1, 1, 0, 0, 1, 1]
    scores = baseline_scores(name="oracle", prompts=[""] * 10, weak=weak, strong=strong)
    curve = router_curve(scores=scores, weak=weak, strong=strong)
    qw, qs = 0.4, 0.6
    gap = qs - qw
    # Closed form: PGR climbs 1/(n*gap) per only-strong prompt (3 of them, c in [0, .3]), stays flat
    # through ties (c in [.3, .9]; the block is linear), then drops for the only-weak prompt.
    peak = 3 / 10 / gap  # 1.5
    expected = 0.5 * 0.3 * peak + 0.6 * peak + 0.5 * 0.1 * (peak + 1.0)
    assert apgr(curve) == pytest.approx(expected)
    assert cpt(curve, target=0.5) == pytest.approx(0.1)  # one gained prompt = 0.5 PGR
    assert cpt(curve, target=1.0) == pytest.approx(0.2)


def test_perfectly_wrong_router_is_below_half():
    weak, strong = _data()
    oracle = baseline_scores(name="oracle", prompts=[""] * len(weak), weak=weak, strong=strong)
    worst = evaluate_scores(scores=[-x for x in oracle], weak=weak, strong=strong)
    best = evaluate_scores(scores=oracle, weak=weak, strong=strong)
    assert worst.apgr < 0.5 < best.apgr


def test_routellm_style_sampling_is_close_to_exact_curve():
    weak, strong = _data(n=5000)
    rng = random.Random(3)
    scores = [(int(s) - int(w)) + rng.gauss(0, 1.5) for w, s in zip(weak, strong)]
    exact = evaluate_scores(scores=scores, weak=weak, strong=strong)
    sampled = evaluate_scores(scores=scores, weak=weak, strong=strong, points=10)
    assert sampled.apgr == pytest.approx(exact.apgr, abs=0.02)


def test_equal_models_have_no_pgr():
    with pytest.raises(ValueError):
        evaluate_scores(scores=[1, 2], weak=[1, 0], strong=[0, 1])


def test_evaluate_responses_reads_csv(tmp_path):
    lines = ["prompt,weak-model,strong-model"]
    rng = random.Random(0)
    for i in range(200):
        long = i % 2 == 0
        prompt = ("Explain in detail " * (20 if long else 1)) + f"question {i}?"
        # Long prompts are the ones where only the strong model is right.
        lines.append(f'"{prompt}",{not long},{True if long else rng.random() < 0.9}')
    path = tmp_path / "responses.csv"
    path.write_text("\n".join(lines))
    report = evaluate_responses(path=str(path), strong="strong-model", weak="weak-model")
    rows = dict(report.rows)
    assert report.split == "all" and report.n == 200
    assert set(rows) == {"asahi-autopilot", "random", "length", "oracle"}
    assert rows["random"].apgr == pytest.approx(0.5)
    # Long prompts are exactly the ones that need the strong model, so length is near-oracle.
    assert rows["length"].apgr > 0.75
    assert rows["asahi-autopilot"].apgr > 0.7  # length is part of the predictor
    assert rows["oracle"].apgr >= rows["length"].apgr
    assert "APGR" in report.format()
