# One image for every shadowcanary process in docker-compose.yml (migrate, simulator,
# worker, scheduler); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Sources first, then one install: alembic.ini and migrations/ stay in /app because
# `alembic upgrade head` runs from here (migrations/ is not a Python package).
COPY . /app
RUN pip install --no-compile . \
    && useradd --create-home --uid 10001 --user-group shadowcanary \
    && mkdir -p /app/.shadowcanary \
    && chown shadowcanary:shadowcanary /app/.shadowcanary

# Never run the services as root.
USER shadowcanary

EXPOSE 8765
CMD ["shadowcanary", "--help"]
