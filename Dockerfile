# One image for the web service, the worker and the signing relay:
# `python main.py serve`, `python main.py worker` or `python main.py relay --listen 0.0.0.0:2525` (docs/mail-flow.md).
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/relais
COPY requirements.lock /tmp/requirements.lock
RUN /opt/relais/bin/pip install -r /tmp/requirements.lock

FROM python:3.11-slim-bookworm
ENV PATH=/opt/relais/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RELAIS_DATA_DIR=/var/lib/relais
RUN groupadd --system --gid 10001 relais \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/relais relais \
    && mkdir -p /var/lib/relais && chown 10001:10001 /var/lib/relais
COPY --from=build /opt/relais /opt/relais
WORKDIR /app
COPY main.py pyproject.toml ./
COPY service ./service
COPY signatures ./signatures
COPY newsletter ./newsletter
COPY portal ./portal
COPY advocacy ./advocacy
COPY templates ./templates
COPY translations ./translations
RUN pybabel --quiet compile -d translations -D messages
USER 10001:10001
EXPOSE 8000 2525
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
CMD ["python", "main.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
