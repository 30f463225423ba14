"""OpenTelemetry traces from client through workflow and activity (docs/design.md §6), off by default.

`SPOTCHECK_TRACING` chooses where spans go:

- `off` (default): nothing is configured and no interceptor is added;
- `console`: spans printed to stdout (no network needed);
- `otlp`: spans sent by OTLP (needs `pip install opentelemetry-exporter-otlp`; the standard
  `OTEL_EXPORTER_OTLP_*` variables set the endpoint, `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` picks HTTP).

Temporal's `TracingInterceptor` on the client is used by every worker built from that client as well, so
one span tree runs from the client's start/update calls through the workflow into its activities.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when tracing is on: the CLI starts quickly without it
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

ENV = "SPOTCHECK_TRACING"
MODES = ("off", "console", "otlp")

_provider: TracerProvider | None = None


def tracing_mode() -> str:
    """The mode asked for by SPOTCHECK_TRACING; an unknown value is a ValueError naming the allowed ones."""
    mode = os.environ.get(ENV, "off").strip().lower() or "off"
    if mode not in MODES:
        raise ValueError(f"{ENV}={os.environ.get(ENV)!r} is not one of {', '.join(MODES)}")
    return mode


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Set the global tracer provider for the mode in SPOTCHECK_TRACING; None when tracing is off.
    Idempotent: the first call in a process wins, later calls return the same provider."""
    global _provider
    mode = tracing_mode()
    if mode == "off":
        return None
    if _provider is not None:
        return _provider
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter = _otlp_exporter() if mode == "otlp" else ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracing_interceptors() -> list[Any]:
    """Interceptors for `Client.connect`: Temporal's TracingInterceptor when tracing is on, else none."""
    if tracing_mode() == "off":
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def _otlp_exporter() -> SpanExporter:
    http = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").startswith("http")
    try:
        if http:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as e:
        raise RuntimeError(
            f"{ENV}=otlp needs the OTLP exporter: pip install opentelemetry-exporter-otlp ({e})"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter
