
import pytest

from routing.task_detection import TASK_TYPES, detect_task_type


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Write a Python function that reverses a linked list.", "code"),
        ("Why does this raise a TypeError?\n```python\nlen(5)\n```", "code"),
        ("What is 17 * 23 + 4?", "math"),
        ("Solve the equation 3x + 5 = 20 for x.", "math"),
        ("Explain why the sky is blue, step by step.", "reasoning"),
        ("Summarize the following article in three bullet points: ...", "summarization"),
        ("Give me a TL;DR of this thread.", "summarization"),
        ("Extract all email addresses from this text and return them as JSON.", "extraction"),
        ("Translate this sentence into French: I love cheese.", "translation"),
        ("Classify the sentiment of this review: great product!", "classification"),
        ("Rewrite this paragraph to be more formal: hey guys, meeting moved.", "rewriting"),
        ("Write a poem about autumn leaves.", "creative"),
        ("What is the capital of Australia?", "chat"),
        ("Hi! How are you today?", "chat"),
    ],
)
def test_detects_task_type(prompt, expected):
    assert detect_task_type(prompt).name == expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # Dates, ranges, identifiers and ratios are not sums.
        ("What happened on 9/11?", "chat"),
        ("Reply to the customer about order 7-123.", "chat"),
        ("Explain the 80/20 rule.", "chat"),
        ("Summarize the meeting notes from 2024-05-01.", "summarization"),
        ("Write a haiku about the 1939-1945 war.", "creative"),
        # Sums are, spaced or not, when asked for.
        ("What is 12/4?", "math"),
        ("what's 7-3", "math"),
        ("What is 7 - 3?", "math"),
        ("Compute 3*4", "math"),
        ("Is 2+2=4?", "math"),
        ("Which is bigger, 3/4 or 2/3?", "math"),
        ("Add 1/2 and 1/3.", "math"),
        ("Convert 3/8 to a decimal.", "math"),
        ("Move the call from 5/1/2024 to 6/1/2024.", "chat"),
        ("Rate this movie from 1-10.", "chat"),
    ],
)
def test_hyphens_and_slashes_between_digits_are_maths_only_in_an_expression(prompt, expected):
    assert detect_task_type(prompt).name == expected


def test_confidence_is_bounded_and_low_without_cues():
    plain = detect_task_type("Hello there")
    strong = detect_task_type("Translate into German: good morning, translate it please")
    assert 0.0 <= plain.confidence <= 1.0
    assert strong.confidence > plain.confidence


def test_all_names_are_known_task_types():
    for p in ("def f(): pass", "2+2", "poem", "", "summarize"):
        assert detect_task_type(p).name in TASK_TYPES
