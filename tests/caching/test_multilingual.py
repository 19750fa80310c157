"""The semantic tier is right in every script: the multilingual regression set never produces a
false hit, the text comparisons are Unicode-aware, and the reported wrong answers stay fixed end to
end (a Russian, Japanese or Arabic question never gets another question's answer)."""

from __future__ import annotations

import numpy as np
import pytest

from caching.semantic.coverage import outside
from caching.semantic.decision import _same_text, decide
from caching.semantic.features import analyze, guard_violation
from tests.caching.multilingual_set import MUST_MISS, PAIRS
from tests.inference.conftest import client_for


def _served(languages: str) -> list[tuple[str, str, str, str, bool]]:
    """Each pair with whether the tier, as shipped (local embedder, calibrated thresholds), would
    serve the stored prompt's answer for the new one."""
    from caching.semantic.embedders import get_local_embedder

    embedder = get_local_embedder()
    out = []
    for lang, kind, stored, new in PAIRS:
        a, b = embedder.embed([stored, new])
        similarity = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        hit = decide(query=new, candidate=stored, similarity=similarity,
                     languages=languages).hit
        out.append((lang, kind, stored, new, hit))
    return out


def test_the_multilingual_set_has_no_false_hit() -> None:
    served = _served("en")
    false_hits = [row for row in served if row[1] in MUST_MISS and row[4]]
    assert false_hits == []
    paraphrases = [row for row in served if row[1] == "paraphrase"]
    hits = [row for row in paraphrases if row[4]]
    print(f"\nmultilingual set (languages=en): {len(hits)}/{len(paraphrases)} paraphrases hit, "
          f"0 false hits of {sum(r[1] in MUST_MISS for r in served)} near misses")
    # The English controls still hit: the gate keeps the tier working where it is calibrated.
    assert {row[3] for row in hits} >= {
        r[3] for r in PAIRS if r[0] == "en" and r[1] == "paraphrase"} - {
        "What's the capital city of France?"}


def test_every_language_outside_the_calibration_is_named() -> None:
    for lang, _kind, stored, new in PAIRS:
        if lang == "mixed":  # English with a foreign word: covered or not, by its letters
            continue
        for text in (stored, new):
            reason = outside(text)
            if lang == "en":
                assert reason is None, text
            else:
                assert reason is not None and "outside the semantic tier" in reason, text
    assert outside("Что такое кошка?", "all") is None


@pytest.mark.parametrize("text", [
    "What is the value of π in radians?", "How does café culture differ in Paris?",
    "What is the population of Zürich?", "Solve 3x + y = 7 for y.",
])
def test_english_with_a_few_foreign_letters_stays_covered(text: str) -> None:
    assert outside(text) is None


@pytest.mark.parametrize(("a", "b"), [
    ("Что такое кошка?", "Что такое собака?"),
    ("東京の人口は何人ですか？", "大阪の天気はどうですか？"),
    ("ما هي عاصمة فرنسا؟", "ما هي عاصمة ألمانيا؟"),
    ("كم يساوي ١٥ ضرب ٤؟", "كم يساوي ١٦ ضرب ٤؟"),
])
def test_texts_in_other_scripts_are_not_the_same_text(a: str, b: str) -> None:
    assert not _same_text(a, b)


def test_same_text_is_case_and_width_insensitive_in_every_script() -> None:
    assert _same_text("ЧТО ТАКОЕ КОШКА?", "что такое кошка")
    assert _same_text("Wie groß ist die Straße?", "wie gross ist die strasse")  # casefold
    assert _same_text("日本の首都はどこですか？", "日本の首都はどこですか?")  # full-width "？"
    assert not _same_text("?!", "...")  # punctuation-only texts compare whole
    assert _same_text("?!", "?!")


def test_guard_words_keep_their_letters() -> None:
    assert "zürich" in analyze("Wie viele Einwohner hat Zürich?").names
    assert guard_violation("How many people live in Zürich?", "How many people live in Munich?")
    assert analyze("كم يساوي ١٥ ضرب ٤؟").numbers == frozenset({"15", "4"})
    reason = guard_violation("Translate French → Japanese: bonjour",
                             "Translate Japanese → French: bonjour")
    assert reason is not None and reason.startswith("direction swapped")
    assert analyze("Ist Kaffee nicht gesund?").negated
    assert analyze("为什么猫不喜欢喝牛奶？").negated


def test_with_the_gate_off_the_language_blind_guards_still_refuse_the_set() -> None:
    """ASAHI_SEMANTIC_LANGUAGES=all (meant for a multilingual embedder) with the English one:
    the word-order and one-word guards for unlisted scripts refuse every near miss here. They
    were written against this set, so this pins them; it is no held-out measurement."""
    served = _served("all")
    false_hits = [row for row in served if row[1] in MUST_MISS and row[4]]
    paraphrase_hits = [row for row in served if row[1] == "paraphrase" and row[4]]
    print(f"\nmultilingual set (languages=all, local embedder): {len(false_hits)} false hits, "
          f"{len(paraphrase_hits)}/{sum(r[1] == 'paraphrase' for r in served)} paraphrases hit")
    assert false_hits == []


@pytest.mark.redis
@pytest.mark.usefixtures("warm_embedder")
@pytest.mark.parametrize(("stored", "asked"), [
    ("Что такое кошка?", "Что такое собака?"),
    ("Что такое кошка?", "東京の人口は何人ですか？"),
    ("ما هي عاصمة فرنسا؟", "ما هي عاصمة ألمانيا؟"),
])
def test_the_gateway_never_serves_another_languages_answer(gateway, live_tenant, stored,
                                                           asked) -> None:
    client = client_for(gateway, live_tenant.infer.raw)

    def ask(text: str):  # type: ignore[no-untyped-def]
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}])

    first = ask(stored)
    assert first.headers["x-asahi-cache"] == "miss"
    assert first.headers["x-asahi-cache-reason"].startswith("semantic tier off: ")
    again = ask(stored)  # the exact tier still serves a repeat
    assert again.headers["x-asahi-cache"] == "exact"
    other = ask(asked)
    assert other.headers["x-asahi-cache"] == "miss", other.headers
    assert "script is outside the semantic tier" in other.headers["x-asahi-cache-reason"]
    assert other.parse().choices[0].message.content != first.parse().choices[0].message.content
    from caching.models import SemanticEntry

    assert not SemanticEntry.objects.filter(organization=live_tenant.org).exists()
