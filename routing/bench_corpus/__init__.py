"""A small, hand-written corpus of chat requests for measuring the token optimizer.

Cases model what real gateway traffic carries: pasted web/markdown text with layout noise, repeated
boilerplate, code blocks (which must survive byte-for-byte) and long multi-turn histories.
"""

from __future__ import annotations

from routing.token_optimizer import Message

_CODE = """```python
def moving_average(values, window):
    if window <= 0:
        raise ValueError("window must be positive")
    out = []
    for i in range(len(values) - window + 1):
        out.append(sum(values[i : i + window]) / window)
    return out
```"""

_DISCLAIMER = (
    "CONFIDENTIALITY NOTICE: This message and any attachments are intended only for the "
    "named recipient and may contain confidential information. If you received it in error, "
    "please notify the sender and delete it."
)

_WEB_PASTE = """
<!-- begin article -->
Quarterly   results     were   strong  across   all    regions.\u200b\u200b
&nbsp;&nbsp;Revenue grew    12%   year over year,   driven by   subscriptions.



==========================================================
Highlights
==========================================================

*   Net retention   reached   118%.
*   Gross margin    improved to  71%.



<!-- tracking pixel -->
Operating   expenses   rose   4%,   mostly   in   R&D.
"""


def _email_thread() -> str:
    mails = []
    for i in range(4):
        mails.append(
            f"From: team{i}@example.com\nHi all,   update {i}:   the migration step {i} "
            f"is   done.   \n\n{_DISCLAIMER}"
        )
    return "\n\n".join(mails)


def _long_history(turns: int) -> list[Message]:
    msgs = [Message("system", "You are a careful senior engineer. Answer concisely.")]
    for i in range(turns):
        msgs.append(
            Message(
                "user",
                f"Step {i}: here is the next part of the log I am debugging.\n"
                + "\n".join(
                    f"2026-01-0{i % 9 + 1} 12:00:{j:02d} INFO worker-{j} heartbeat ok"
                    for j in range(12)
                ),
            )
        )
        msgs.append(
            Message(
                "assistant",
                f"Looking at step {i}: the heartbeats are regular, so the worker pool is healthy; "
                "the stall must come from the queue consumer. Check its prefetch setting next.",
            )
        )
    msgs.append(Message("user", "Given all of that, what is the most likely root cause?"))
    return msgs


def corpus() -> dict[str, list[Message]]:
    """name -> messages."""
    return {
        "web_paste_summary": [
            Message("user", "Summarize   this   article   in two sentences:\n\n" + _WEB_PASTE)
        ],
        "email_thread_with_repeated_disclaimers": [
            Message("user", "Extract the action items from this thread:\n\n" + _email_thread())
        ],
        "code_review": [
            Message("system", "You review Python code."),
            Message("user", f"Can   you   review   this?    \n\n\n\n{_CODE}\n\n\n\nThanks!   "),
        ],
        "duplicated_context": [
            Message(
                "user",
                "Context:\n\n" + _WEB_PASTE + "\n\n" + _WEB_PASTE + "\n\nQ: did margin improve?",
            )
        ],
        "resent_message": [
            Message("user", "Please translate into German: " + _DISCLAIMER),
            Message("user", "Please translate into German: " + _DISCLAIMER),
        ],
        "clean_short_question": [Message("user", "What is the capital of Australia?")],
        "long_debug_history": _long_history(12),
    }
