"""Prometheus metrics of the reward server (``GET /metrics``), in a registry of their own so that
several apps (tests) never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rewardlab_requests", "HTTP requests answered, by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.items = Counter("rewardlab_items", "Items scored, by endpoint", ["endpoint"], registry=r)
        self.errors = Counter("rewardlab_errors", "Refused or failed requests, by kind", ["kind"], registry=r)
        self.truncated = Counter("rewardlab_truncated_items",
                                 "Items over the model's max length, by what truncation did", ["status"], registry=r)
        self.latency = Histogram("rewardlab_request_latency_seconds", "Request latency (receipt to answer)",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_items = Histogram("rewardlab_batch_items", "Items per scoring call", buckets=BATCH_BUCKETS,
                                     registry=r)
        self.batch_requests = Histogram("rewardlab_batch_requests", "Requests merged per scoring call",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("rewardlab_batch_seconds", "Time of one scoring call",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("rewardlab_in_flight_requests", "Requests received and not yet answered",
                               registry=r)
        self.queued_items = Gauge("rewardlab_queued_items", "Items waiting for a scoring call", registry=r)

    def on_batch(self, n_items: int, n_requests: int, seconds: float) -> None:
        self.batch_items.observe(n_items)
        self.batch_requests.observe(n_requests)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
