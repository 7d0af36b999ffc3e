# notify: one image for every process (web, workers per lane, beat, migrations).
# The command picks the role; docker-compose.yml runs one container per role.
FROM python:3.11-slim

# The code finds migrations/ and templates/ next to the package folder, and Celery loads
# worker.py and beat_schedule.py by module name: PYTHONPATH puts the source tree first, so the copy
# in /app is the one imported (pip installs the dependencies and the `notify` command).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

RUN groupadd --system --gid 10001 notify \
    && useradd --system --uid 10001 --gid notify --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin notify

# Dependencies first, so editing templates or migrations does not reinstall them.
COPY pyproject.toml ./
COPY notify/ ./notify/
RUN pip install . \
    && rm -rf build notify.egg-info

COPY templates/ ./templates/
# The message catalogues are compiled here, as `make install` does; nothing compiled is committed.
COPY translations/ ./translations/
RUN pybabel compile --statistics -d translations -D messages
COPY migrations/ ./migrations/
COPY alembic.ini worker.py beat_schedule.py ./

USER notify

EXPOSE 8000

CMD ["notify", "web", "--host", "0.0.0.0", "--port", "8000"]
