from routing.token_optimizer import (
    Message,
    normalize_text,
    optimize,
    remove_repeated_paragraphs,
)
from routing.tokens import count_tokens, estimate_tokens

CODE = "```python\ndef f(x):\n    return  x   *  2\n\n\n\n# end   \n```"


def test_code_blocks_untouched():
    text = f"Look   at this:\n\n\n\n{CODE}\n\nThanks   a lot."
    out = normalize_text(text)
    assert CODE in out
    assert "Look at this:" in out and "Thanks a lot." in out


def test_quotes_untouched():
    text = '> keep    this   quote   \nSay "exactly   these   words"   please.'
    out = normalize_text(text)
    assert "> keep    this   quote   " in out
    assert '"exactly   these   words"' in out
    assert "please." in out and "   please" not in out


def test_repeated_paragraph_removed_but_not_repeated_code():
    para = "This paragraph is long enough to be worth deduplicating, clearly."
    text = f"{para}\n\n{CODE}\n\n{para}\n\n{CODE}\n\nEnd."
    out = remove_repeated_paragraphs(text)
    assert out.count(para) == 1
    assert out.count(CODE) == 2
    assert out.endswith("End.")


def test_lossless_result_saves_tokens_and_has_zero_risk():
    msgs = [Message("user", "Hello      world   \n\n\n\n\n" * 30 + CODE)]
    r = optimize(messages=msgs, model="gpt-4o")
    assert r.tokens_after < r.tokens_before
    assert r.quality_risk == 0.0
    assert "history_trimming" not in r.techniques
    assert CODE in r.messages[0].content


def test_history_trimming_drops_oldest_non_system_first():
    msgs = [Message("system", "You are helpful.")]
    for i in range(10):
        msgs.append(Message("user", f"Question {i}: " + "words " * 50))
        msgs.append(Message("assistant", f"Answer {i}: " + "words " * 50))
    msgs.append(Message("user", "Final question?"))
    full = optimize(messages=msgs, model="gpt-4o").tokens_after
    r = optimize(messages=msgs, model="gpt-4o", token_budget=full // 2, quality_threshold=3.0)
    assert "history_trimming" in r.techniques
    assert r.fits and r.tokens_after <= full // 2
    assert r.messages[0].role == "system"
    assert r.messages[-1].content == "Final question?"
    assert r.messages[1].role == "user"  # no dangling assistant turn at the start
    kept = " ".join(m.content for m in r.messages)
    assert "Question 9" in kept and "Question 0" not in kept
    assert 0.0 < r.quality_risk <= 1.0


def test_high_quality_threshold_is_lossless_only():
    msgs = [Message("user", "word " * 400), Message("assistant", "ok"), Message("user", "next?")]
    r = optimize(messages=msgs, model="gpt-4o", token_budget=50, quality_threshold=4.5)
    assert "history_trimming" not in r.techniques
    assert not r.fits
    assert len(r.messages) == 3


def test_context_window_minus_reserve_is_the_limit():
    msgs = [Message("user", "older " * 300), Message("assistant", "reply"), Message("user", "q")]
    r = optimize(messages=msgs, model="gpt-4o", context_window=200, reserve_output_tokens=100)
    assert r.tokens_after <= 100


def test_token_counts_offline():
    # Exact BPE counts with no network: "hello world" is 2 tokens in cl100k and o200k.
    assert count_tokens("hello world", model="gpt-4o") == 2
    assert count_tokens("hello world", model="gpt-4") == 2
    assert count_tokens("hello world", model="claude-3-5-sonnet") >= 2
    assert estimate_tokens("") == 0
    text = "The quick brown fox jumps over the lazy dog. " * 20
    exact = count_tokens(text, model="gpt-4")
    assert abs(estimate_tokens(text) - exact) / exact < 0.25
