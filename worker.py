"""The Celery application for ``celery -A worker worker -Q essential,bulk,periodic`` and beat."""

from beat_schedule import build_schedule
from notify.celery_app import create_celery
from notify.config import load_settings_or_exit

settings = load_settings_or_exit()
app = create_celery(settings)
app.conf.beat_schedule = build_schedule(settings)
