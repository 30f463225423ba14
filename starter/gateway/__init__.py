"""The HTTP gateway: one ASGI application (FastAPI) over SpotcheckClient."""

from starter.gateway.app import build_app
from starter.gateway.settings import GatewaySettings, gateway_settings

__all__ = ["GatewaySettings", "build_app", "gateway_settings"]
