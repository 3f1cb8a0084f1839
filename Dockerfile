# One image for every shadowcanary process in docker-compose.yml and deploy/k8s (migrate,
# simulator, gateway, worker, beat, controller); the command picks the role. Installs no
# embedded servers (the `embedded` extra): production uses real Postgres and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Sources first, then one install. Editable (-e): shadowcanary finds migrations/ next to
# its package (shadowcanary/store/db.py, MIGRATIONS_DIR), so the code must run from /app,
# not from a copy in site-packages; `shadowcanary migrate` and the controller's own
# migration at start depend on it. No extras: the embedded servers are not needed here.
COPY . /app
RUN pip install --no-compile -e . \
    && useradd --create-home --uid 10001 --user-group shadowcanary \
    && mkdir -p /app/.shadowcanary /var/lib/shadowcanary/runbooks \
    && chown shadowcanary:shadowcanary /app/.shadowcanary /var/lib/shadowcanary/runbooks

# Never run the services as root.
USER shadowcanary

EXPOSE 8080 8765 9100
CMD ["shadowcanary", "--help"]
