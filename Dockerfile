# One image for every shadowcanary process in docker-compose.yml and deploy/k8s (migrate,
# simulator, gateway, worker, beat, controller); the command picks the role. Installs no
# embedded servers (the `embedded` extra): production uses real Postgres and Redis.
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
    && mkdir -p /app/.shadowcanary /var/lib/shadowcanary/runbooks \
    && chown shadowcanary:shadowcanary /app/.shadowcanary /var/lib/shadowcanary/runbooks

# Never run the services as root.
USER shadowcanary

EXPOSE 8080 8765 9100
CMD ["shadowcanary", "--help"]
