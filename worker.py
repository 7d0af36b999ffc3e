"""The Celery application for ``celery -A worker worker -Q essential,bulk,periodic`` and beat."""

# Before anything imports prometheus-client: the main process and its pool share one folder
# of metric files, so a scrape adds them up (notify.observability.processes).
from notify.observability.processes import share_metrics_between_processes

share_metrics_between_processes()

from beat_schedule import build_schedule  # noqa: E402
from notify.celery_app import create_celery  # noqa: E402
from notify.config import load_settings_or_exit  # noqa: E402

settings = load_settings_or_exit()
app = create_celery(settings)
app.conf.beat_schedule = build_schedule(settings)
