
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


def test_confidence_is_bounded_and_low_without_cues():
    plain = detect_task_type("Hello there")
    strong = detect_task_type("Translate into German: good morning, translate it please")
    assert 0.0 <= plain.confidence <= 1.0
    assert strong.confidence > plain.confidence


def test_all_names_are_known_task_types():
    for p in ("def f(): pass", "2+2", "poem", "", "summarize"):
        assert detect_task_type(p).name in TASK_TYPES
