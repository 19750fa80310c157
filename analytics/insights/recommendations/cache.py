"""Cache rules: requests that bypass the cache, semantic near misses."""

from __future__ import annotations

from .types import (
    Confidence,
    Recommendation,
    RecommendationConfig,
    RecommendationInputs,
    RecommendationKind,
    money,
    monthly,
)


def cache_recommendations(
    *, inputs: RecommendationInputs, config: RecommendationConfig
) -> list[Recommendation]:
    """Cache bypasses (temperature, opt-out) and semantic near misses, priced at the miss cost.

    A bypassed request that became eligible is assumed to hit at the eligible requests' current hit
    rate; near misses are an upper bound (each would need to be a correct hit).
    """
    traffic = inputs.cache_traffic
    if traffic is None or traffic.total_requests <= 0:
        return []
    tiers = {t.tier: t for t in inputs.cache_tiers}
    semantic = tiers.get("semantic")
    eligible_hit_rate = (
        traffic.cache_hits / traffic.eligible_requests if traffic.eligible_requests else 0.0
    )
    found: list[Recommendation] = []

    hot_share = traffic.high_temperature_requests / traffic.total_requests
    if hot_share >= config.high_temperature_share:
        saving = monthly(
            traffic.high_temperature_requests * eligible_hit_rate * traffic.avg_miss_cost_usd,
            inputs=inputs,
            config=config,
        )
        semantic_rate = semantic.hits / semantic.lookups if semantic and semantic.lookups else None
        limit = f"{traffic.temperature_limit:g}"
        if semantic_rate is not None and semantic_rate < config.low_semantic_hit_rate:
            title = (
                f"semantic cache hit rate is low ({semantic_rate:.0%}) because {hot_share:.0%} of "
                f"requests have temperature > {limit}"
            )
        else:
            title = f"{hot_share:.0%} of requests skip the cache: temperature > {limit}"
        found.append(
            Recommendation(
                id=f"{RecommendationKind.CACHE_TEMPERATURE}",
                kind=RecommendationKind.CACHE_TEMPERATURE,
                title=title,
                detail=(
                    f"{traffic.high_temperature_requests:,} of {traffic.total_requests:,} requests "
                    f"used a temperature above the cache limit ({limit}) and always went upstream. "
                    f"Where the task is deterministic (classification, extraction, lookups), send "
                    f"temperature <= {limit}; at the eligible hit rate of {eligible_hit_rate:.1%} "
                    f"and {money(traffic.avg_miss_cost_usd)} per miss this saves about "
                    f"{money(saving)} per month."
                ),
                estimated_monthly_savings_usd=saving,
                confidence=Confidence.LOW,
                evidence={
                    "high_temperature_requests": traffic.high_temperature_requests,
                    "total_requests": traffic.total_requests,
                    "high_temperature_share": hot_share,
                    "temperature_limit": traffic.temperature_limit,
                    "semantic_hit_rate": semantic_rate,
                    "eligible_hit_rate": eligible_hit_rate,
                    "avg_miss_cost_usd": traffic.avg_miss_cost_usd,
                },
            )
        )

    opt_out_share = traffic.no_cache_requests / traffic.total_requests
    if opt_out_share >= config.no_cache_share:
        saving = monthly(
            traffic.no_cache_requests * eligible_hit_rate * traffic.avg_miss_cost_usd,
            inputs=inputs,
            config=config,
        )
        found.append(
            Recommendation(
                id=f"{RecommendationKind.CACHE_OPT_OUT}",
                kind=RecommendationKind.CACHE_OPT_OUT,
                title=f"{opt_out_share:.0%} of requests opt out of the cache (no-cache)",
                detail=(
                    f"{traffic.no_cache_requests:,} requests were sent with caching disabled. If "
                    f"they hit like eligible requests ({eligible_hit_rate:.1%}), enabling the "
                    f"cache saves about {money(saving)} per month."
                ),
                estimated_monthly_savings_usd=saving,
                confidence=Confidence.LOW,
                evidence={
                    "no_cache_requests": traffic.no_cache_requests,
                    "total_requests": traffic.total_requests,
                    "no_cache_share": opt_out_share,
                    "eligible_hit_rate": eligible_hit_rate,
                    "avg_miss_cost_usd": traffic.avg_miss_cost_usd,
                },
            )
        )

    if semantic is not None and semantic.lookups > 0:
        near_share = semantic.near_misses / semantic.lookups
        if near_share >= config.near_miss_share:
            saving = monthly(
                semantic.near_misses * traffic.avg_miss_cost_usd, inputs=inputs, config=config
            )
            threshold = (
                f" {traffic.semantic_threshold:g}" if traffic.semantic_threshold is not None else ""
            )
            band = (
                f" (similarity {traffic.near_miss_floor:g}-{traffic.semantic_threshold:g})"
                if traffic.near_miss_floor is not None and traffic.semantic_threshold is not None
                else ""
            )
            found.append(
                Recommendation(
                    id=f"{RecommendationKind.SEMANTIC_NEAR_MISSES}",
                    kind=RecommendationKind.SEMANTIC_NEAR_MISSES,
                    title=(
                        f"{semantic.near_misses:,} semantic near misses ({near_share:.0%} of "
                        f"lookups) scored just below the{threshold} threshold"
                    ),
                    detail=(
                        f"{semantic.near_misses:,} lookups found a cached prompt just below the "
                        f"threshold{band}. Review them and re-run the semantic-cache evaluation "
                        f"before lowering the threshold: if all were correct hits this saves up to "
                        f"{money(saving)} per month (an upper bound)."
                    ),
                    estimated_monthly_savings_usd=saving,
                    confidence=Confidence.LOW,
                    evidence={
                        "near_misses": semantic.near_misses,
                        "semantic_lookups": semantic.lookups,
                        "near_miss_share": near_share,
                        "semantic_threshold": traffic.semantic_threshold,
                        "near_miss_floor": traffic.near_miss_floor,
                        "avg_miss_cost_usd": traffic.avg_miss_cost_usd,
                        "upper_bound": True,
                    },
                )
            )
    return found
