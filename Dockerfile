# The Spotcheck image: the worker (`spotcheck worker`) and the HTTP gateway (`spotcheck gateway`).
# The builder makes the project's wheel exactly as tests/test_deploy.py does (`pip wheel --no-deps`), and
# the runtime installs that one wheel with its pinned dependencies, as a non-root user.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker.py detached_runner.py telemetry.py codec.py settings.py monitoring.py ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY migrations migrations
COPY rules rules
COPY templates templates
COPY calendar calendar
COPY planning planning
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=builder /wheels/spotcheck-0.1.0-py3-none-any.whl /tmp/
RUN pip install "spotcheck[otlp] @ file:///tmp/spotcheck-0.1.0-py3-none-any.whl" \
    && rm /tmp/spotcheck-0.1.0-py3-none-any.whl \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/spotcheck spotcheck \
    && mkdir -p /var/lib/spotcheck/calendar && chown -R spotcheck /var/lib/spotcheck
USER 10001
WORKDIR /var/lib/spotcheck
# health/readiness, the Prometheus endpoint, the gateway
EXPOSE 8081 9464 8288
CMD ["spotcheck", "worker"]
