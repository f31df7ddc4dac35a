"""Prometheus metrics of one app, in its own registry so tests can build many apps."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from model.router import Routing

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5,
                    10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests by route and status, latency, batch sizes, decisions, predicted labels, errors."""

    def __init__(self) -> None:
        # The *_created series double the output and no dashboard uses them (process-wide switch).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("huying_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("huying_http_request_duration_seconds",
                                 "Time from request start to response end", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("huying_batch_size", "Complaints per router call",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("huying_batch_duration_seconds", "Time of one router call",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("huying_queue_wait_seconds",
                                    "Time a complaint waited in the queue for its batch",
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("huying_queue_depth", "Complaints waiting for a batch",
                                 registry=r)
        self.decisions = Counter("huying_decisions", "Routed complaints by decision",
                                 ["decision"], registry=r)
        self.labels = Counter("huying_predictions", "Predicted top label per head",
                              ["head", "label"], registry=r)
        self.errors = Counter("huying_errors", "Errors by code (whole requests and single items)",
                              ["code"], registry=r)
        self.model = Gauge("huying_model_info", "1 for the model version being served",
                           ["version"], registry=r)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_routings(self, routings: Iterable[Routing]) -> None:
        for r in routings:
            self.decisions.labels(r.decision).inc()
            for head, prediction in r.heads.items():
                self.labels.labels(head, prediction.label).inc()

    def set_model(self, version: str | None) -> None:
        self.model.clear()
        if version is not None:
            self.model.labels(version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
