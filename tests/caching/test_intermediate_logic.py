"""Tier 3's pure parts: the request convention, sectioning, the guard and excerpt selection."""

from __future__ import annotations

import pytest

from asahi_project.errors import InvalidRequest
from caching.intermediate import (
    needs_full_document,
    parse_document_prompt,
    question_prompt,
    relevant_sections,
    split_sections,
)


def test_prompt_convention_question_after_or_before_the_document() -> None:
    after = parse_document_prompt("<document>\nThe fee is 5 EUR.\n</document>\nWhat is the fee?")
    before = parse_document_prompt("What is the fee?\n<document>The fee is 5 EUR.</document>")
    assert after.document == before.document == "The fee is 5 EUR."
    assert after.question == before.question == "What is the fee?"


@pytest.mark.parametrize("prompt", [
    "no tags at all, what is the fee?",
    "<document>a</document><document>b</document> q?",
    "</document> reversed <document> q?",
    "<document>   </document> q?",
    "<document>text only</document>",
])
def test_prompt_convention_violations_are_400(prompt: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_document_prompt(prompt)
    assert err.value.code == "invalid_document_prompt" and err.value.param == "prompt"


def test_sections_keep_all_text_and_respect_the_size() -> None:
    paras = [f"Paragraph {i} " + "word " * (20 + 40 * (i % 3)) for i in range(30)]
    doc = "\n\n".join(paras)
    sections = split_sections(doc, max_chars=600)
    assert all(len(s) <= 600 for s in sections)
    assert len(sections) < len(paras)  # small paragraphs were merged
    assert "".join(sections).replace("\n", "").replace(" ", "") == doc.replace("\n", "").replace(
        " ", "")


def test_overlong_paragraph_is_cut() -> None:
    long = "This is one sentence. " * 200
    sections = split_sections(long, max_chars=500)
    assert len(sections) > 5 and all(len(s) <= 500 for s in sections)


@pytest.mark.parametrize("question", [
    "Quote the termination clause.", "What is the exact wording of section 2?",
    "Repeat the first paragraph verbatim.", "How many times does 'liability' appear?",
    "What is on line 12?", "Translate the document into French.",
])
def test_guard_sends_full_text_questions_to_the_full_document(question: str) -> None:
    assert needs_full_document(question) is not None


@pytest.mark.parametrize("question", [
    "Who pays the shipping costs?", "When does the contract end?", "Summarize the risks.",
])
def test_guard_lets_ordinary_questions_use_the_digest(question: str) -> None:
    assert needs_full_document(question) is None


def test_relevant_sections_prefer_rare_shared_words() -> None:
    sections = [
        "The supplier delivers widgets every Monday to the warehouse.",
        "Payment is due within thirty days of the invoice date.",
        "The warehouse in Lyon stores widgets and gadgets.",
        "Disputes are settled by arbitration in Geneva.",
    ]
    assert relevant_sections("Where are disputes settled?", sections, k=1) == [3]
    assert relevant_sections("When is payment of the invoice due?", sections, k=1) == [1]
    assert relevant_sections("Which warehouse stores gadgets?", sections, k=2) == [0, 2]
    assert relevant_sections("Zebra quantum?", sections) == []


def test_question_prompt_puts_the_stable_digest_first() -> None:
    a = question_prompt(digest="NOTES", excerpts=["X"], question="Q1?")
    b = question_prompt(digest="NOTES", excerpts=["Y"], question="Q2?")
    assert a.startswith("Notes condensed") and "NOTES" in a.split("<excerpts>")[0]
    assert a.endswith("Question: Q1?") and b.endswith("Question: Q2?")
