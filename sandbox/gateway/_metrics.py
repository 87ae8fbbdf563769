"""Prometheus metrics, in a registry of the gateway's own (several gateways may share a process)."""

from __future__ import annotations

from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["Metrics"]

_M = TypeVar("_M", bound=MetricWrapperBase)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # Labels name providers, models and key ids, never a credential.
        self.calls = Counter(
            "sandbox_gateway_calls", "LLM calls", ["api", "provider", "model", "status"], registry=r
        )
        self.refused = Counter(
            "sandbox_gateway_refused", "Calls refused before dispatch", ["reason"], registry=r
        )
        self.tokens = Counter("sandbox_gateway_tokens", "Tokens billed", ["model", "kind"], registry=r)
        self.cost = Counter("sandbox_gateway_cost_usd", "Cost in USD", ["model"], registry=r)
        self.latency = Histogram(
            "sandbox_gateway_latency_seconds", "Time to the last byte", ["api"], buckets=_BUCKETS, registry=r
        )
        self.ttfb = Histogram(
            "sandbox_gateway_ttfb_seconds", "Time to the first byte", ["api"], buckets=_BUCKETS, registry=r
        )
        self.inflight = Gauge("sandbox_gateway_inflight", "Calls in flight", registry=r)
        self.reserved = Gauge("sandbox_gateway_reserved_usd", "USD reserved by calls in flight", registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}

    def child(self, metric: _M, *labels: str) -> _M:
        """`metric.labels(*labels)`, looked up once: prometheus_client validates and locks on
        every labels() call, several times per LLM call."""
        key = (id(metric), labels)
        hit = self._children.get(key)
        if hit is None:
            hit = self._children[key] = metric.labels(*labels)
        return cast("_M", hit)

    def render(self) -> bytes:
        return generate_latest(self.registry)
