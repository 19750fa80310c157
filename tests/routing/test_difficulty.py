import dataclasses
import json

import pytest

from routing.difficulty import (
    ARTIFACT_PATH,
    GENERAL_FEATURES,
    OPTION_SIMILARITY,
    DifficultyModel,
    default_model,
    general_features,
    option_similarity,
    predict_difficulty,
)


def test_artifact_is_small_and_loads():
    assert ARTIFACT_PATH.stat().st_size < 2 * 1024 * 1024
    model = default_model()
    assert len(model.general_coef) == len(GENERAL_FEATURES)
    assert "base_rate" in model.metadata


def test_predictions_are_probabilities():
    for p in ("", "hi", "What is 2+2?", "x" * 50000, "Prove Fermat's last theorem. " * 100):
        d = predict_difficulty(p)
        assert 0.0 <= d <= 1.0


def test_json_round_trip_preserves_predictions():
    model = default_model()
    again = DifficultyModel.from_json(json.loads(json.dumps(model.to_json())))
    prompt = "Which of the following statements about entropy is NOT true?\nA. x\nB. y"
    assert abs(again.predict(prompt) - model.predict(prompt)) < 1e-4


def test_general_features_shape():
    feats = general_features("Which is larger?\nA. 10\nB. 20\nC. 30\nD. 40\nAnswer:")
    assert len(feats) == len(GENERAL_FEATURES)
    assert feats[GENERAL_FEATURES.index("has_options")] == 1.0


def test_option_similarity_is_the_closest_pair_of_options():
    assert option_similarity([]) == 0.0
    assert option_similarity([("A", "Paris")]) == 0.0  # nothing to compare
    assert option_similarity([("A", "Paris"), ("B", "paris")]) == pytest.approx(1.0)  # case aside
    near = option_similarity([("A", "3 and 4"), ("B", "3 and 5"), ("C", "a red bicycle")])
    far = option_similarity([("A", "Paris"), ("B", "a red bicycle"), ("C", "photosynthesis")])
    assert 0.5 < near < 1.0 and far < 0.3
    prompt = "Which pair?\nA. 3 and 4\nB. 3 and 5\nC. a red bicycle"
    assert general_features(prompt)[OPTION_SIMILARITY] == pytest.approx(near)


def test_alike_options_raise_difficulty_and_prompts_without_options_ignore_the_term():
    model = default_model()
    assert model.option_weight > 0
    alike = "Which value is right?\nA. 0.25 m/s\nB. 0.26 m/s\nC. 0.27 m/s\nD. 0.28 m/s"
    unalike = "Which value is right?\nA. 0.25 m/s\nB. a horse\nC. the French navy\nD. never"
    assert model.predict(alike) > model.predict(unalike)
    coef = list(model.general_coef)
    coef[OPTION_SIMILARITY] = 0.0
    without = dataclasses.replace(model, option_weight=0.0, general_coef=tuple(coef))
    for chat in ("Summarize this memo in one line.", "Write a haiku about rain."):
        assert model.raw_score(chat) == pytest.approx(without.raw_score(chat))
    assert model.raw_score(alike) != pytest.approx(without.raw_score(alike))
