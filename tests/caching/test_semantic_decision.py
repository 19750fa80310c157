"""Regression guard for the semantic cache's decision procedure (Tier 2).

Pure logic: no database, no Redis. The embedder tests load the packaged MiniLM weights (CPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from caching.semantic.data import (
    LabelledPair,
    read_mrpc,
    read_pairs,
    read_qqp,
    select_split,
    split_of,
)
from caching.semantic.decision import (
    DEFAULT_THRESHOLDS,
    TASK_TYPES,
    Decision,
    Thresholds,
    decide,
    get_verifier,
)
from caching.semantic.embedders import (
    CohereEmbedder,
    Embedder,
    OpenAIEmbedder,
    get_local_embedder,
    l2_normalize,
    truncate,
)
from caching.semantic.features import FEATURE_NAMES, analyze, features, guard_violation

# Prompts that share most words with a cached one but ask something else: never a hit.
MUST_MISS = [
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("Convert 100 km to miles", "Convert 100 miles to km"),
    (
        "Translate this sentence from English to French",
        "Translate this sentence from French to English",
    ),
    ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
    ("Is coffee good for your health?", "Is coffee not good for your health?"),
    ("Why can I sleep at night?", "Why can't I sleep at night?"),
    ("Give me 3 ideas for a birthday party", "Give me 5 ideas for a birthday party"),
    ("What is 15% of 200?", "What is 20% of 200?"),
    ("Write a 500 word essay on climate change", "Write a 1000 word essay on climate change"),
    ("How do I reverse a list in Python?", "How do I reverse a list in Java?"),
    ("How to read a file line by line in Rust", "How to read a file line by line in Go"),
    ("Sort a dictionary by value in JavaScript", "Sort a dictionary by value in Ruby"),
    ("Who won the World Cup in 2018?", "Who won the World Cup in 2022?"),
    ("What happened in the stock market in March?", "What happened in the stock market in April?"),
    ("What is the population of Paris?", "What is the population of London?"),
    ("What is the capital of Australia?", "What is the capital of Austria?"),
    ("Tell me about the history of Microsoft", "Tell me about the history of Apple"),
    ("How many miles is a marathon?", "How many kilometers is a marathon?"),
    ("How much is 5 pounds in dollars?", "How much is 5 pounds in euros?"),
    ("Why is the sky blue?", "When is the sky blue?"),
    ("Where was Albert Einstein born?", "When was Albert Einstein born?"),
    ("Why did the Roman Empire fall?", "When did the Roman Empire fall?"),
]

# Same question in other words, close enough that the shipped (strict) defaults serve them.
MUST_HIT = [
    ("How do I convert Celsius to Fahrenheit?", "how do i convert celsius to fahrenheit"),
    ("What is the capital of France?", "What's the capital city of France?"),
    ("What are the benefits of drinking green tea?", "What are the health benefits of green tea?"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
]

# Looser paraphrases: the strict defaults may miss them (recall is the price of precision), but
# each must score above a same-topic question that asks something else.
PARAPHRASE_VS_DECOY = [
    (
        "How can I learn Python quickly?",
        "What is the fastest way to learn Python?",
        "How can I learn Java quickly?",
    ),
    (
        "How do I lose weight fast?",
        "What is the quickest way to lose weight?",
        "How do I gain weight fast?",
    ),
    (
        "How can I improve my English speaking skills?",
        "How do I improve my spoken English?",
        "How can I improve my English writing skills?",
    ),
    (
        "What is the best way to learn guitar?",
        "How should I learn to play the guitar?",
        "What is the best way to sell a guitar?",
    ),
]


@pytest.fixture(scope="module")
def embedder():
    return get_local_embedder()


def _similarity(embedder, a: str, b: str) -> float:
    vectors = embedder.embed([a, b])
    return float(vectors[0] @ vectors[1])


# ----------------------------------------------------------------------------- full procedure


@pytest.mark.parametrize(("cached", "query"), MUST_MISS)
def test_tricky_non_paraphrases_are_misses(embedder, cached, query):
    decision = decide(
        query=query, candidate=cached, similarity=_similarity(embedder, cached, query)
    )
    assert not decision.hit, decision.reason


@pytest.mark.parametrize(("cached", "query"), MUST_MISS)
def test_tricky_non_paraphrases_are_vetoed_even_at_top_similarity(cached, query):
    # The guards must hold even if an embedder scored the pair as identical.
    decision = decide(query=query, candidate=cached, similarity=0.999)
    assert not decision.hit
    assert decision.reason.startswith("guard rejected"), decision.reason


@pytest.mark.parametrize(("cached", "query"), MUST_HIT)
def test_true_paraphrases_still_hit(embedder, cached, query):
    decision = decide(
        query=query, candidate=cached, similarity=_similarity(embedder, cached, query)
    )
    assert decision.hit, decision.reason


@pytest.mark.parametrize(("cached", "paraphrase", "decoy"), PARAPHRASE_VS_DECOY)
def test_paraphrase_outscores_same_topic_decoy(embedder, cached, paraphrase, decoy):
    para_sim = _similarity(embedder, cached, paraphrase)
    decoy_sim = _similarity(embedder, cached, decoy)
    assert para_sim > decoy_sim
    para = decide(query=paraphrase, candidate=cached, similarity=para_sim)
    other = decide(query=decoy, candidate=cached, similarity=decoy_sim)
    assert not other.hit, other.reason
    # Where both reach the verifier, it must prefer the paraphrase.
    if para.verifier_probability is not None and other.verifier_probability is not None:
        assert para.verifier_probability > other.verifier_probability


def test_decision_carries_similarity_and_reason():
    decision = decide(query="What is Rust?", candidate="What is Rust used for?", similarity=0.5)
    assert isinstance(decision, Decision)
    assert decision.similarity == pytest.approx(0.5)
    assert "0.500" in decision.reason


# ----------------------------------------------------------------------------- guards one by one


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            "Is it safe to swim after eating?",
            "Is it not safe to swim after eating?",
            "negation differs",
        ),
        ("List 3 fruits", "List 5 fruits", "numbers differ: 3 vs 5"),
        ("Best laptop under 30,000 rupees", "Best laptop under 40k rupees", "numbers differ"),
        ("Events in June", "Events in July", "dates differ: june vs july"),
        ("Weather in Paris today", "Weather in London today", "names differ: paris vs london"),
        ("How many miles is 10 km?", "How many feet is 10 km?", "units differ"),
        ("Celsius to Fahrenheit formula", "Fahrenheit to Celsius formula", "direction swapped"),
        ("Hello world in Python", "Hello world in Java", "programming language differs"),
        ("Why do cats purr?", "When do cats purr?", "different question: reason vs time"),
    ],
)
def test_each_guard_fires_with_a_readable_reason(a, b, expected):
    reason = guard_violation(a, b)
    assert reason is not None
    assert reason.startswith(expected.split(":")[0])
    assert expected in reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Best laptop under 30,000 rupees", "Best laptop under 30k rupees"),  # same number
        ("Which is better, Python or Java?", "Which is better, Java or Python?"),  # no direction
        ("What did Donald Trump say?", "What did Trump say?"),  # a name added, none replaced
        ("How can I avoid sleeping in class?", "How can I stay awake in class?"),
        ("What is the best way to learn C++?", "How do I learn C++ fast?"),  # same language
        ("What are valid reasons to vote for Trump?", "Why should I vote for Trump?"),
    ],
)
def test_guards_stay_quiet_on_harmless_differences(a, b):
    assert guard_violation(a, b) is None


def test_numbers_are_normalised():
    assert analyze("under 30,000 or 15k or three").numbers == frozenset({"30000", "15000", "3"})


def test_single_letter_language_needs_context():
    assert "c" in analyze("How do I write a loop in C?").languages
    assert "c" not in analyze("Is vitamin C good for colds?").languages


def test_features_vector_matches_names_and_is_finite():
    vector = features("How do I learn Python?", "Best way to learn Python?", 0.9)
    assert vector.shape == (len(FEATURE_NAMES),)
    assert np.isfinite(vector).all()
    assert vector[FEATURE_NAMES.index("similarity")] == pytest.approx(0.9)


# ----------------------------------------------------------------------------- thresholds


def test_default_thresholds_cover_every_task_type():
    for task in (*TASK_TYPES, "default"):
        limits = DEFAULT_THRESHOLDS[task]
        assert -1.0 <= limits.low <= limits.high <= 1.0
    # Code and maths answers are exact: they must never be looser than the default.
    assert DEFAULT_THRESHOLDS["code"].high >= DEFAULT_THRESHOLDS["default"].high
    assert DEFAULT_THRESHOLDS["math"].low >= DEFAULT_THRESHOLDS["default"].low


def test_below_low_is_a_miss_and_above_high_is_a_hit():
    limits = Thresholds(high=0.95, low=0.85, min_verifier_probability=0.5)
    a, b = "How do I learn to cook rice?", "How can I learn cooking rice?"
    low = decide(query=a, candidate=b, similarity=0.84, thresholds=limits)
    high = decide(query=a, candidate=b, similarity=0.96, thresholds=limits)
    assert not low.hit and "< 0.850" in low.reason
    assert high.hit and high.reason == "semantic hit: similarity 0.960 >= 0.950"


def test_grey_zone_is_decided_by_the_verifier():
    assert get_verifier() is not None, "caching/artifacts/semantic_verifier.npz is missing"
    limits = Thresholds(high=0.99, low=0.5, min_verifier_probability=0.5)
    same = decide(
        query="How can I improve my English?",
        candidate="How do I get better at English?",
        similarity=0.9,
        thresholds=limits,
    )
    other = decide(
        query="What is the best phone to buy?",
        candidate="What is the worst thing about owning a phone?",
        similarity=0.6,
        thresholds=limits,
    )
    assert same.verifier_probability is not None and other.verifier_probability is not None
    assert same.verifier_probability > other.verifier_probability
    assert same.reason.startswith("verifier")


def test_task_type_changes_the_band():
    a, b = "How can I learn piano?", "How do I learn to play piano?"
    sim = (DEFAULT_THRESHOLDS["creative"].high + DEFAULT_THRESHOLDS["code"].high) / 2
    if DEFAULT_THRESHOLDS["creative"].high == DEFAULT_THRESHOLDS["code"].high:
        pytest.fail("creative and code share a high threshold")
    creative = decide(query=a, candidate=b, similarity=sim, task_type="creative")
    assert creative.hit and creative.reason.startswith("semantic hit")
    code = decide(query=a, candidate=b, similarity=sim, task_type="code")
    assert not code.reason.startswith("semantic hit")


def test_unknown_task_type_falls_back_to_default():
    limits = DEFAULT_THRESHOLDS["default"]
    sim = limits.low - 0.01
    assert not decide(query="a b c", candidate="a b d", similarity=sim, task_type="nope").hit


def test_invalid_thresholds_are_rejected():
    with pytest.raises(ValueError):
        Thresholds(high=0.8, low=0.9)


# ----------------------------------------------------------------------------- embedders


def test_local_embedder_rows_are_unit_float32(embedder):
    vectors = embedder.embed(["hello world", "How do I bake bread?", ""])
    assert isinstance(embedder, Embedder)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)


def test_local_embedder_is_a_singleton(embedder):
    assert get_local_embedder() is embedder


def test_local_embedder_ranks_paraphrase_above_unrelated(embedder):
    base = "How do I bake sourdough bread?"
    para = _similarity(embedder, base, "What is the way to make sourdough bread?")
    other = _similarity(embedder, base, "Who won the football match yesterday?")
    assert para > other + 0.2


def test_onnx_fp32_matches_torch_and_int8_stays_close(tmp_path, monkeypatch):
    """The ONNX export (made on first load, in ASAHI_MODEL_CACHE) must be interchangeable with
    the torch model: both runtimes share one embedder version, so one set of stored vectors."""
    from caching.semantic.embedders import LocalMiniLMEmbedder

    monkeypatch.setenv("ASAHI_MODEL_CACHE", str(tmp_path))
    onnx = LocalMiniLMEmbedder(runtime="onnx", quantize=False)
    assert onnx.runtime == "onnx" and len(list(tmp_path.glob("*.onnx"))) == 1
    torch_model = LocalMiniLMEmbedder(runtime="torch")
    # Mixed lengths in one batch: the export must have kept batch and length dynamic.
    texts = ["short", "How do I convert Celsius to Fahrenheit?", "a longer prompt " * 30]
    assert onnx.version == torch_model.version
    assert np.allclose(onnx.embed(texts), torch_model.embed(texts), atol=1e-5)
    assert np.allclose(onnx.embed(texts[1:2]), torch_model.embed(texts[1:2]), atol=1e-5)
    with pytest.raises(ValueError, match="unknown runtime"):
        LocalMiniLMEmbedder(runtime="tpu")

    # The int8 variant (the default) is a second file and another embedder version, so its
    # vectors are never compared with fp32 ones; they stay close to them, not equal.
    int8 = LocalMiniLMEmbedder(runtime="onnx")
    assert int8.quantized and int8.version == onnx.version + "+int8"
    assert len(list(tmp_path.glob("*-int8.onnx"))) == 1
    agreement = (int8.embed(texts) * onnx.embed(texts)).sum(axis=1)
    assert agreement.min() > 0.98 and not np.allclose(int8.embed(texts), onnx.embed(texts))
    # torch has no int8 path here: asking for it gives the fp32 version, named as such.
    assert LocalMiniLMEmbedder(runtime="torch", quantize=True).version == onnx.version


def test_huge_prompts_are_truncated_before_embedding(embedder):
    head = "Explain how transformers use attention to model language. " * 20
    huge = head + "completely different tail about gardening " * 5000
    assert len(huge) > 100 * embedder.max_chars
    truncated = truncate(huge, max_chars=embedder.max_chars)
    assert len(truncated) <= embedder.max_chars
    assert np.allclose(embedder.embed([huge]), embedder.embed([truncated]), atol=1e-6)


def test_truncate_keeps_short_text_and_prefers_word_boundary():
    assert truncate("short", max_chars=10) == "short"
    assert truncate("alpha beta gamma delta", max_chars=18) == "alpha beta gamma"
    assert truncate("x" * 30, max_chars=10) == "x" * 10


def test_l2_normalize_handles_zero_rows():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_remote_embedders_normalise_sdk_responses():
    class FakeCohere:
        def embed(self, **kw):
            self.kw = kw
            return _Obj(embeddings=_Obj(float_=[[3.0, 4.0]] * len(kw["texts"])))

    class FakeOpenAIEmbeddings:
        def create(self, **kw):
            self.kw = kw
            # Out of order on purpose: the SDK returns an index per row.
            return _Obj(
                data=[_Obj(index=1, embedding=[0.0, 2.0]), _Obj(index=0, embedding=[5.0, 0.0])]
            )

    cohere_client = FakeCohere()
    vectors = CohereEmbedder(client=cohere_client, dim=2, max_chars=5).embed(["abcdefgh"])
    assert np.allclose(vectors, [[0.6, 0.8]])
    assert cohere_client.kw["texts"] == ["abcde"]
    openai_client = _Obj(embeddings=FakeOpenAIEmbeddings())
    vectors = OpenAIEmbedder(client=openai_client, dim=2).embed(["a", "b"])
    assert np.allclose(vectors, [[1.0, 0.0], [0.0, 1.0]])


# ----------------------------------------------------------------------------- data


def test_qqp_parsing(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        'question1,question2,is_duplicate\n"How, exactly, do I X?",How do I X?,1\nA?,B?,0\n,empty,1\n'
    )
    pairs = read_qqp(path)
    assert pairs == [
        LabelledPair("How, exactly, do I X?", "How do I X?", True),
        LabelledPair("A?", "B?", False),
    ]


def test_mrpc_parsing(tmp_path):
    path = tmp_path / "mrpc.tsv"
    path.write_text(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        '1\t1\t2\tHe said "yes.\tHe agreed.\n'
        "0\t3\t4\tThe cat sat.\tThe dog ran.\n"
    )
    pairs = read_pairs(path, fmt="mrpc")
    assert pairs == read_mrpc(path)
    assert pairs == [
        LabelledPair('He said "yes.', "He agreed.", True),
        LabelledPair("The cat sat.", "The dog ran.", False),
    ]


def test_split_is_deterministic_order_independent_and_balanced():
    pairs = [
        LabelledPair(f"question {i}?", f"other question {i * 7}?", i % 2 == 0) for i in range(2000)
    ]
    assert split_of(text_a="a", text_b="b") == split_of(text_a="b", text_b="a")
    tune, held = select_split(pairs, split="tune"), select_split(pairs, split="heldout")
    assert len(tune) + len(held) == len(pairs)
    assert not {id(p) for p in tune} & {id(p) for p in held}
    assert 0.4 < len(tune) / len(pairs) < 0.6
    assert select_split(pairs, split="tune") == tune


def test_tree_ensemble_reproduces_sklearn(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from caching.semantic.verifier import TreeEnsemble

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    x[::9, 2] = np.nan  # missing values take the learned branch
    y = x[:, 0] + np.nan_to_num(x[:, 2]) * x[:, 1] > 0
    clf = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=8, random_state=0).fit(x, y)
    TreeEnsemble.from_sklearn(clf).save(tmp_path / "v.npz")
    ensemble = TreeEnsemble.load(tmp_path / "v.npz")
    assert np.allclose(ensemble.predict_proba(x), clf.predict_proba(x)[:, 1], atol=1e-9)


def test_operating_point_prefers_precision_when_target_unreachable():
    from caching.semantic.training import choose_operating_point

    rng = np.random.default_rng(1)
    y = rng.random(2000) < 0.4
    sims = np.clip(0.85 + 0.1 * y + rng.normal(0, 0.05, 2000), -1, 1)
    probs = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 2000), 0, 1)
    guarded = np.zeros(2000, dtype=bool)
    easy = choose_operating_point(sims=sims, probs=probs, guarded=guarded, y=y, target=0.8)
    assert easy.precision >= 0.8
    hard = choose_operating_point(sims=sims, probs=probs, guarded=guarded, y=y, target=1.01)
    assert hard.recall >= 0.15 and hard.precision >= easy.precision
    assert hard.low <= hard.high
