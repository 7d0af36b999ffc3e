"""Metrics shared by the processes of one service (uvicorn's workers, Celery's pool).

prometheus-client picks how it stores values when it is first imported: in this process's
memory, or in files under ``PROMETHEUS_MULTIPROC_DIR`` that every process of the service
writes and a scrape adds up. A pool process that is replaced leaves its file behind, so its
counts are not lost. This module imports nothing of prometheus-client: entry points call
:func:`share_metrics_between_processes` before anything else imports it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics_between_processes() -> str:
    """Give this process and the ones it starts one folder of metric files; return it.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used as it is (it must be empty when the
    service starts). Otherwise a new temporary folder is made and removed when the process
    that made it exits; children inherit it through the environment."""
    existing = os.environ.get(VARIABLE)
    if existing:
        return existing
    folder = tempfile.mkdtemp(prefix="notify-metrics-")
    os.environ[VARIABLE] = folder
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder
