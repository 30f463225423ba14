"""The ASGI application: the HTTP gateway for outside systems (issue 10) and, given its users, the staff
workbench (issue 11, starter/gateway/workbench.py) with its API for API tokens: one application. Built from a connected Temporal client and the settings, so a
test builds it in-process."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from domain.bounds import problem_lines, within
from domain.decisions import DecisionKind
from starter.client import DEFAULT_TASK_QUEUE, Signer, SpotcheckClient
from starter.gateway import routes, workbench
from starter.gateway.settings import GatewaySettings
from starter.gateway.workbench import Workbench

TITLE = "Spotcheck gateway"
KINDS = frozenset(k.value for k in DecisionKind)


def build_app(
    client: Client, settings: GatewaySettings, *, task_queue: str = DEFAULT_TASK_QUEUE, signer: Signer | None = None,
    workbench: Workbench | None = None,
) -> FastAPI:
    """`signer`: the deployment key the gateway signs decisions with, where the deployment requires signed
    decisions (docs/design.md §9); the actor it signs for is the caller it proved, or the workbench's
    signed-in user. `workbench`: serve the workbench too (it needs the users' database)."""
    # No /docs or /redoc: they load their scripts from a CDN, and the gateway needs no network but Temporal.
    app = FastAPI(title=TITLE, version="1", docs_url=None, redoc_url=None,
                  description="Signed calls from outside systems: start samples, send decisions, read status, "
                  "callbacks. Every call is signed (see the SpotcheckSignature scheme).")
    app.state.gateway_settings = settings
    app.state.spotcheck = SpotcheckClient(client, task_queue, signer)
    app.include_router(routes.router)
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(routes.RequestProblem, _refused_payload)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(TemporalError, _temporal)
    if workbench is not None:
        _add_workbench(app, workbench)
    return app


def _add_workbench(app: FastAPI, bench: Workbench) -> None:
    # Starlette's signed cookie (itsdangerous, with its time: expired after `session_seconds`), HttpOnly and
    # SameSite=Lax; the CSRF token lives in it and is checked on every form (workbench.check_csrf).
    app.add_middleware(SessionMiddleware, secret_key=bench.session_secret, session_cookie=workbench.SESSION_COOKIE,
                       max_age=bench.session_seconds, same_site="lax", https_only=bench.https_only)
    app.state.workbench = bench
    app.include_router(workbench.router)
    app.include_router(workbench.api)
    app.add_exception_handler(workbench.FormProblem, workbench.form_problem)
    app.add_exception_handler(workbench.SignInNeeded, workbench.sign_in_needed)
    app.mount("/workbench/static", StaticFiles(directory=workbench.TEMPLATES / "static"), name="static")


async def _malformed(request: Request, exc: Any) -> JSONResponse:
    """422 naming each field (`data.report_no: Field required`), never its value (pydantic's `input`)."""
    lines = within(problem_lines(_located(e) for e in exc.errors()))
    return routes.problem(422, "malformed: " + "; ".join(lines), lines)


def _located(error: dict[str, Any]) -> dict[str, Any]:
    """A FastAPI error with its field as the body's (`data.x`, not `body.data.x`, nor `body.lab_report.data.x`
    where a callback's shape is chosen by its kind); JSON that does not parse is about the body as a whole."""
    where, *loc = error.get("loc") or ("body",)
    if error.get("type") == "json_invalid":
        return {"loc": ("body",), "msg": "not valid JSON", "type": "json_invalid"}
    if loc and loc[0] in KINDS:
        loc = loc[1:]
    return {**error, "loc": tuple(loc) or (where,)}


async def _refused_payload(request: Request, exc: Any) -> JSONResponse:
    return routes.problem(422, "malformed: " + str(exc), exc.problems)


async def _http(request: Request, exc: Any) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's own, for a body that is not even text: malformed like bad JSON
        return routes.problem(422, "malformed: body: not valid JSON", ["body: not valid JSON"])
    return routes.problem(exc.status_code, str(exc.detail), **(exc.headers or {}))


async def _temporal(request: Request, exc: Any) -> JSONResponse:
    # Temporal's message can name internals; the caller learns only that it should try again.
    return routes.problem(503, "Temporal did not answer; try again (the request is idempotent)")
