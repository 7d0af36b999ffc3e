"""Serving the metrics: the registry a scrape reads, and the worker's metrics port.

A process in multi-process mode (:mod:`notify.observability.processes`) reads every process's
files at each scrape; otherwise it reads its own memory. The web adds the database gauges
(:mod:`notify.observability.database_gauges`); workers do not query the database for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def shared_between_processes() -> bool:
    """Whether values live in files that every process of this service writes."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class _ThisProcess(Collector):
    """This process's own metrics, for a registry that is not the default one."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """What one scrape reads: every process's values (or this one's), then ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    if shared_between_processes():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape receives."""
    return generate_latest(scrape_registry(extra))


def serve_port(port: int, address: str) -> bool:
    """Serve ``/metrics`` for this process and the ones it forks on ``address:port`` from a
    thread; False (logged) when the port cannot be had, so a worker still starts."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=address, registry=scrape_registry())
    except OSError as error:
        log.warning("metrics: cannot listen on %s:%d: %s", address, port, error.strerror)
        return False
    log.info("metrics on http://%s:%d/metrics", address, port)
    return True
