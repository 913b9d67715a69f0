"""/metrics in the Prometheus text format, computed from the database at scrape time.

The endpoint needs a bearer API token like the REST API (any role: give Prometheus a read_only
token through its ``authorization.credentials_file``). The figures name apps and count accounts,
which is not for anyone on the network; a token keeps one port and one way to authenticate.
An app_admin token sees the series of its own apps only (``authz.app_scope``), and the oldest
queued task's age among them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from provisiond import __version__
from provisiond.authz import app_scope
from provisiond.runtime import Runtime
from provisiond.services import monitoring
from provisiond.services.context import Actor
from provisiond.services.monitoring import Histogram

TASK_STATUSES = ("queued", "running", "dead")
APP_STATES = ("flowing", "paused", "quarantined")


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in histogram.buckets]


class DatabaseCollector(Collector):
    """Reads every figure from the database in one short transaction per scrape."""

    def __init__(self, rt: Runtime, scope: frozenset[str] | None = None) -> None:
        self.rt = rt
        self.scope = scope  # None: every app; else only these apps' series

    def collect(self) -> Iterator[Metric]:
        scope = self.scope
        with self.rt.db.session() as session:
            names = monitoring.app_names(session)
            operations = monitoring.operations(session)
            retries = monitoring.retries(session)
            depth = monitoring.queue_depth(session)
            oldest = monitoring.oldest_queued_age_seconds(session, app_ids=scope)
            held = monitoring.accounts(session)
            latency = monitoring.deprovision_latency(session)
            durations = monitoring.run_durations(session)
            states = monitoring.app_states(session)
            quarantined = monitoring.quarantines(session)
        if scope is not None:
            # Filtered after the (grouped, small) queries: one place decides what is shown.
            names = {k: v for k, v in names.items() if k in scope}
            operations = [row for row in operations if row[0] in scope]
            retries = {k: v for k, v in retries.items() if k in scope}
            depth = {k: v for k, v in depth.items() if k[0] in scope}
            held = {k: v for k, v in held.items() if k[0] in scope}
            latency = {k: v for k, v in latency.items() if k in scope}
            durations = {k: v for k, v in durations.items() if k[0] in scope}
            states = {k: v for k, v in states.items() if k in scope}
            quarantined = {k: v for k, v in quarantined.items() if k in scope}

        def app(app_id: str | None) -> str:
            return names.get(app_id or "", app_id or "")

        info = GaugeMetricFamily("provisiond_info", "The running provisiond.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        ops = CounterMetricFamily(
            "provisiond_operations",
            "Provisioning attempts by app, operation and outcome (from the activity log).",
            labels=["app", "op", "outcome"],
        )
        for app_id, op, outcome, count in operations:
            ops.add_metric([app(app_id), op, outcome], count)
        yield ops

        retried = CounterMetricFamily(
            "provisiond_task_retries", "Failed attempts scheduled again, by app.", labels=["app"]
        )
        for app_id, count in retries.items():
            retried.add_metric([app(app_id)], count)
        yield retried

        state = GaugeMetricFamily(
            "provisiond_app_state",
            "1 for the state each app is in: flowing, paused (it answered 429) or quarantined.",
            labels=["app", "state"],
        )
        for app_id in sorted(names):
            now = states.get(app_id, "flowing")
            for name in APP_STATES:
                state.add_metric([app(app_id), name], 1 if name == now else 0)
        yield state

        held_back = CounterMetricFamily(
            "provisiond_app_quarantines",
            "Times each app was quarantined (its requests kept failing), from the activity log.",
            labels=["app"],
        )
        for app_id in sorted(names):
            held_back.add_metric([app(app_id)], quarantined.get(app_id, 0))
        yield held_back

        queue = GaugeMetricFamily(
            "provisiond_task_queue_depth", "Tasks by app and status.", labels=["app", "status"]
        )
        for app_id in sorted(names):
            for status in TASK_STATUSES:
                queue.add_metric([app(app_id), status], depth.get((app_id, status), 0))
        yield queue

        yield GaugeMetricFamily(
            "provisiond_task_oldest_queued_age_seconds",
            "Age of the oldest queued task (0 when none is queued).",
            value=oldest,
        )

        accounts = GaugeMetricFamily(
            "provisiond_accounts", "Accounts by app and status.", labels=["app", "status"]
        )
        for (app_id, status), count in sorted(held.items()):
            accounts.add_metric([app(app_id), status], count)
        yield accounts

        deprovision = HistogramMetricFamily(
            "provisiond_deprovision_latency_seconds",
            "From the directory change to the account deprovisioned in the app.",
            labels=["app"],
        )
        for app_id, histogram in latency.items():
            deprovision.add_metric([app(app_id)], _buckets(histogram), histogram.total)
        yield deprovision

        runs = HistogramMetricFamily(
            "provisiond_run_duration_seconds",
            "Duration of finished runs by app and kind.",
            labels=["app", "kind"],
        )
        for (app_id, kind), histogram in sorted(durations.items()):
            runs.add_metric([app(app_id), kind], _buckets(histogram), histogram.total)
        yield runs


def exposition(rt: Runtime, actor: Actor) -> tuple[bytes, str]:
    """The scrape body and its content type, as far as ``actor`` may see."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(rt, app_scope(actor)))
    return generate_latest(registry), CONTENT_TYPE_LATEST
