"""Tier 3 workload: N documents x M questions, input tokens with vs without intermediate results.

Runs the real pipeline (governance, routing, ledger) in process against the bundled fake upstream,
for a throwaway organization. Both arms send the same requests; the baseline arm sends the full
document with every question (no `document_id`, `cache: no-store`), the tier-3 arm sets
`document_id`. Token counts are the upstream's own (`usage.prompt_tokens`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from django.core.management.base import BaseCommand

QUESTIONS = [
    "What does the section on {t} require?", "Who is responsible for {t}?",
    "Within how many days must {t} obligations be met?", "Summarize the {t} terms.",
    "Is there any exception for {t}?", "What happens if {t} rules are broken?",
    "Which party benefits from the {t} clause?", "How is notice about {t} given?",
    "What is the scope of {t}?", "Does {t} interact with payment?",
]
TOPICS = ["shipping", "payment", "warranty", "liability", "termination", "privacy", "support",
          "pricing", "delivery", "arbitration", "insurance", "audit"]


def document(seed: int, sections: int) -> str:
    paras = []
    for i in range(sections):
        topic = TOPICS[(i + seed) % len(TOPICS)]
        body = " ".join(f"Clause {i}.{j}: regarding {topic}, party {seed} shall act within "
                        f"{(j * 7 + seed) % 30 + 1} days after written notice, unless the "
                        f"{TOPICS[(i + j) % len(TOPICS)]} terms say otherwise." for j in range(8))
        paras.append(f"Section {i + 1} ({topic}).\n{body}")
    return "\n\n".join(paras)


class Command(BaseCommand):
    help = "Measure tier-3 token savings on a synthetic document-QA workload (fake upstream)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--docs", type=int, default=5)
        parser.add_argument("--questions", type=int, default=10)
        parser.add_argument("--sections", type=int, default=12)

    def handle(self, *args: Any, **opts: Any) -> None:
        from inference.fake_upstream import start_fake_upstream

        fake = start_fake_upstream(seed=7)
        os.environ.update({"OPENAI_API_KEY": "fake", "OPENAI_BASE_URL": fake.openai_base_url,
                           "ANTHROPIC_API_KEY": "fake", "ANTHROPIC_BASE_URL": fake.base_url,
                           "COHERE_API_KEY": "fake", "CO_API_URL": fake.base_url})
        try:
            from governance.selectors import authenticate_key
            from governance.services import api_key_issue, organization_create
            from inference.catalogue import seed_catalogue
            from inference.selectors import invalidate_catalogue

            seed_catalogue()
            invalidate_catalogue()
            org = organization_create(name=f"bench-t3-{uuid.uuid4().hex[:6]}", actor="bench")
            auth = authenticate_key(api_key_issue(organization=org, actor="bench",
                                                  scopes=["infer"]).raw)
            result = asyncio.run(self._run(auth, fake, opts))
        finally:
            from inference.ledger import ledger

            ledger.flush()
            fake.stop()
        for line in result:
            self.stdout.write(line)

    async def _run(self, auth: Any, fake: Any, opts: dict[str, Any]) -> list[str]:
        from caching.intermediate import infer_with_document
        from inference.pipeline import GatewayCall, complete
        from inference.providers.types import ChatMessage, ChatRequest

        def call(prompt: str, *, doc_id: str | None, cache: str) -> GatewayCall:
            chat = ChatRequest(model="auto", messages=[ChatMessage(role="user", content=prompt)])
            return GatewayCall(auth=auth, request_id=f"bench_{uuid.uuid4().hex[:16]}",
                               endpoint="infer", chat=chat, cache_mode=cache, document_id=doc_id)

        arms: dict[str, dict[str, float]] = {}
        for arm in ("full document", "tier 3"):
            fake.reset()
            tokens = 0
            cost = 0.0
            tiers: dict[int, int] = {}
            for d in range(opts["docs"]):
                doc = document(d + (100 if arm == "tier 3" else 0), opts["sections"])
                for q in range(opts["questions"]):
                    question = QUESTIONS[q % len(QUESTIONS)].format(t=TOPICS[(q + d) % len(TOPICS)])
                    prompt = f"<document>\n{doc}\n</document>\n{question}"
                    if arm == "tier 3":
                        resp = await infer_with_document(call(prompt, doc_id=f"doc-{d}",
                                                              cache="default"))
                    else:
                        resp = await complete(call(prompt, doc_id=None, cache="no-store"))
                    tokens += resp.result.usage.input_tokens
                    cost += float(resp.cost)
                    tiers[resp.cache_tier] = tiers.get(resp.cache_tier, 0) + 1
            arms[arm] = {"tokens": tokens, "calls": fake.stats()["total"], "cost": cost,
                         "tiers": tiers}  # type: ignore[dict-item]
        full, t3 = arms["full document"], arms["tier 3"]
        n = opts["docs"] * opts["questions"]
        saved = 100.0 * (1 - t3["tokens"] / full["tokens"]) if full["tokens"] else 0.0
        return [
            f"workload: {opts['docs']} documents x {opts['questions']} questions = {n} requests, "
            f"~{len(document(0, opts['sections'])) // 4} tokens per document",
            f"full document: input tokens {int(full['tokens'])}, upstream calls "
            f"{int(full['calls'])}, cost ${full['cost']:.6f}",
            f"tier 3:        input tokens {int(t3['tokens'])} (incl. digest extraction), upstream "
            f"calls {int(t3['calls'])}, cost ${t3['cost']:.6f}, responses by tier {t3['tiers']}",
            f"input tokens saved: {saved:.1f}%",
        ]
