import json

from routing.difficulty import (
    ARTIFACT_PATH,
    GENERAL_FEATURES,
    DifficultyModel,
    default_model,
    general_features,
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
