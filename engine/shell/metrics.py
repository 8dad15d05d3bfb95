"""Prometheus metrics of the HTTP service (prometheus-client), safe under several uvicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``loyalty serve`` sets it to a fresh directory before the
workers start), every worker writes its samples to files there and ``GET /metrics`` adds them up
across workers (``prometheus_client.multiprocess.MultiProcessCollector``); without it the process's
own registry is scraped. The metric objects are made once a process, at import.

Names (all prefixed ``loyalty_``):

- ``events_total{type, outcome}``: events by type (``order.placed`` ...; ``?`` when unreadable) and
  outcome (``applied``, ``skipped``, ``rejected``);
- ``refusals_total{code, rule}``: refusals by reason code (the refused field, list indexes folded:
  ``lines[].qty``; ``event`` when no field; ``fault`` when the engine failed) and rule id (``""``);
- ``quote_seconds`` and ``apply_seconds``: histograms of the engine time of a quote and of one event;
- ``store_errors_total{operation}`` and ``store_retries_total{operation}``;
- ``http_requests_total{route, status}``;
- ``shopify_webhooks_total{topic, outcome}``;
- ``program_info{program, version, digest}``: 1 for the program each worker serves.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional, Union

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY

from engine.model.errors import Refusal

# seconds: a quote takes about 0.3 ms in process, an event with its durable commit 1-30 ms
# (the 1-2.5-5 series from 0.5 ms to 2.5 s)
BUCKETS = tuple(step * 10.0 ** power for power in range(-4, 1) for step in (1, 2.5, 5))[2:-1]

EVENTS = Counter("loyalty_events", "Events received, by type and outcome", ["type", "outcome"])
REFUSALS = Counter("loyalty_refusals", "Refused events, by reason code (the field) and rule id", ["code", "rule"])
QUOTE_SECONDS = Histogram("loyalty_quote_seconds", "Engine time of one POST /quote", buckets=BUCKETS)
APPLY_SECONDS = Histogram("loyalty_apply_seconds", "Engine time of one event, commit included", buckets=BUCKETS)
GROUP_REQUESTS = Histogram("loyalty_group_requests", "POST /events requests applied together in one transaction "
                           "(group commit; 1: alone)", buckets=(1, 2, 4, 8, 16, 32, 64))
GROUPS_UNDONE = Counter("loyalty_groups_undone", "Groups undone by a fault and applied again one request at a time")
STORE_ERRORS = Counter("loyalty_store_errors", "Store failures, by operation", ["operation"])
STORE_RETRIES = Counter("loyalty_store_retries", "Store operations retried after a failure", ["operation"])
REQUESTS = Counter("loyalty_http_requests", "HTTP requests answered, by route and status", ["route", "status"])
WEBHOOKS = Counter("loyalty_shopify_webhooks", "Shopify webhooks, by topic and outcome", ["topic", "outcome"])
PROGRAM = Gauge("loyalty_program_info", "The program this worker serves (value 1)", ["program", "version", "digest"],
                multiprocess_mode="max")

_INDEX = re.compile(r"\[\d+\]")


def refusal_code(refusal: Union[Refusal, Mapping[str, Any]]) -> str:
    """A refusal's reason code: its field with list indexes folded (low cardinality), else a kind."""
    if refusal.get("repeat"):
        return "repeat"
    field = refusal.get("field")
    if field:
        return _INDEX.sub("[]", str(field))[:80]
    if "could not apply" in str(refusal.get("reason", "")):
        return "fault"
    return "event"


def count_refusal(refusal: Union[Refusal, Mapping[str, Any]]) -> None:
    REFUSALS.labels(refusal_code(refusal), refusal.get("rule") or "").inc()


def set_program(program_id: str, version: Optional[int], digest: str) -> None:
    PROGRAM.labels(program_id, str(version if version is not None else ""), digest).set(1)


def render() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (or this process's)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
