"""The staff workbench (issue 11): sign-in, the inbox of awaited decisions, decision forms, the sample page, and
the same decisions as a JSON API for the CLI's API token. Server-rendered (jinja2, templates/workbench/); part
of the gateway's application (`build_app(..., workbench=...)`).

Every decision made here carries the signed-in user as its actor and is signed like the gateway's own
(SpotcheckClient's signer). It is refused before it is sent when the user does not hold a role that decides
the kind, the sample lies outside the user's regions, or an enterprise user acts for another enterprise
(domain/users.py `act_problem`); the refusal is shown and written to the sample's audit trail (`via` =
`workbench`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from temporalio.service import RPCError

from activities.calendar import CHINA
from activities.db import insert_once
from domain.bounds import Data, Text, error_lines, one_line, quoted, within
from domain.decisions import MAX_EVIDENCE, PAYLOADS, DecisionKind, EvidenceRef, Receipt, Role
from domain.jurisdiction import area_prefix
from domain.models import SAMPLE_NO_PATTERN, SampleOrder, workflow_id_for
from domain.status import Awaiting, SampleStatus
from domain.systems import decisions_of
from domain.users import User, act_problem
from starter.client import DecisionRejected, NoSuchWorkflow, SpotcheckClient, quote_value
from starter.users import UserStore

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "workbench"
SESSION_COOKIE = "spotcheck_session"
SESSION_HOURS = 8
MAX_EVIDENCE_BYTES = 20 * 1024 * 1024  # one file; a photo or a scanned report
INBOX_LIMIT = 100  # workflows listed; the status query is asked only for these
MAX_BULK = 50  # items of one bulk decision: each is sent as its own decision, one after another


@dataclass
class Workbench:
    """What the workbench needs beside the gateway's client: the users, the session key, the evidence folder."""

    users: UserStore
    session_secret: str = field(repr=False)
    evidence_dir: Path
    session_seconds: int = SESSION_HOURS * 3600
    https_only: bool = False  # set behind TLS: the cookie is then never sent in clear


def evidence_path(evidence_dir: Path, sha256: str) -> Path:
    return evidence_dir / sha256


async def store_evidence(evidence_dir: Path, upload: UploadFile) -> EvidenceRef:
    """Keep an uploaded file under its SHA-256 (content-addressed: the same file twice is one file)."""
    content = await upload.read(MAX_EVIDENCE_BYTES + 1)
    if len(content) > MAX_EVIDENCE_BYTES:
        raise FormProblem([f"evidence: a file is larger than {MAX_EVIDENCE_BYTES // (1 << 20)} MiB"])
    sha = hashlib.sha256(content).hexdigest()
    await asyncio.to_thread(_keep, evidence_dir, sha, content)
    name = one_line(PurePath(upload.filename or "evidence").name, 120) or "evidence"
    return EvidenceRef(name=name, sha256=sha)


def _keep(evidence_dir: Path, sha: str, content: bytes) -> None:
    target = evidence_path(evidence_dir, sha)
    if target.exists():
        return
    evidence_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=evidence_dir, prefix=".upload-")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(tmp, target)  # whole or not at all: a reader never sees half a file under its hash


class FormProblem(Exception):
    """A decision the workbench will not send: each problem names its field."""

    def __init__(self, problems: list[str], status: int = 422) -> None:
        self.problems = within(problems)
        self.status = status
        super().__init__("; ".join(self.problems))


class DecisionInput(BaseModel):
    """A decision as a signed-in user makes it: the actor is the user (in one of its roles), never the body's."""

    model_config = ConfigDict(extra="forbid")
    kind: DecisionKind
    outcome: Annotated[str, Field(min_length=1, max_length=64)]
    role: Role
    request_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(default_factory=lambda: str(uuid.uuid4()))
    reason: Text | None = None
    evidence: Annotated[list[EvidenceRef], Field(max_length=MAX_EVIDENCE)] = Field(default_factory=list)
    data: Data = Field(default_factory=dict)


# --- the inbox: visibility first, the status query only for the rows shown -------------------------------


def inbox_query(user: User) -> str:
    """The running workflows awaiting one of the user's roles where the user acts: staff by region (a code
    covers its subdivisions), an enterprise by its credit code."""
    parts = []
    staff = [r.value for r in user.roles if r is not Role.ENTERPRISE]
    if staff and user.regions:
        regions = " OR ".join(f"Region STARTS_WITH {quote_value(area_prefix(r))}" for r in user.regions)
        parts.append(f"AwaitingRole IN ({', '.join(map(quote_value, staff))}) AND ({regions})")
    if Role.ENTERPRISE in user.roles and user.credit_code:
        parts.append(f"AwaitingRole = 'enterprise' AND EnterpriseCode = {quote_value(user.credit_code)}")
    if not parts:
        return ""
    return "ExecutionStatus = 'Running' AND (" + " OR ".join(f"({p})" for p in parts) + ")"


@dataclass
class InboxItem:
    sample_no: str
    workflow_id: str
    product: str
    awaiting: Awaiting
    claimed_by: str | None = None

    @property
    def overdue(self) -> bool:
        return self.awaiting.overdue


async def inbox(client: SpotcheckClient, user: User, users: UserStore | None = None
                ) -> tuple[list[InboxItem], int]:
    """The user's awaited decisions, overdue first, and how many listed samples did not answer in time."""
    query = inbox_query(user)
    if not query:
        return [], 0
    rows = await client.list_samples(query, INBOX_LIMIT, branches=True)
    mine = {r.value for r in user.roles}
    found, unanswered = await client.awaited_in(rows)
    items = [InboxItem(no, workflow_id, product, a) for no, workflow_id, product, a in found if mine & set(a.roles)]
    claims = await users.claims([i.workflow_id for i in items]) if users and items else {}
    for item in items:
        item.claimed_by = claims.get((item.workflow_id, item.awaiting.kind))
    return sorted(items, key=lambda i: (not i.overdue, i.awaiting.due_at)), unanswered


# --- the decision form: fields from the kind's payload schema ---------------------------------------------


@dataclass
class FormField:
    name: str
    label: str
    widget: str  # text, number, date, datetime-local, select, boolean, json
    required: bool
    choices: list[str] = field(default_factory=list)
    default: Any = None
    description: str = ""


def form_fields(kind: DecisionKind) -> list[FormField]:
    """One input per top-level field of PAYLOADS[kind]; lists and objects as JSON."""
    payload = PAYLOADS.get(kind)
    if payload is None:
        return []
    schema = payload.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        spec = _resolved(prop, defs)
        kind_of, fmt = spec.get("type"), spec.get("format")
        if "enum" in spec:
            widget = "select"
        elif kind_of == "boolean":
            widget = "boolean"
        elif kind_of in ("integer", "number"):
            widget = "number"
        elif fmt == "date":
            widget = "date"
        elif fmt == "date-time":
            widget = "datetime-local"
        elif kind_of in ("array", "object"):
            widget = "json"
        else:
            widget = "text"
        fields.append(FormField(name, prop.get("title", name), widget, name in required,
                                [str(v) for v in spec.get("enum", [])], prop.get("default"),
                                prop.get("description", "")))
    return fields


def _resolved(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A property's own schema: `X | None` unwrapped, a `$ref` followed (enums live in `$defs`)."""
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    spec = options[0] if options else prop
    if "$ref" in spec:
        spec = defs.get(spec["$ref"].rsplit("/", 1)[-1], {})
    if spec.get("type") == "string" and "format" not in spec and "anyOf" in prop:
        spec = {**spec, "format": next((o.get("format") for o in options if o.get("format")), None)}
    return spec


def form_data(kind: DecisionKind, form: FormData) -> dict[str, Any]:
    """`data` from the form's `data.<field>` inputs: empty optional fields left out, JSON fields parsed."""
    data: dict[str, Any] = {}
    problems = []
    for f in form_fields(kind):
        raw = form.get(f"data.{f.name}")
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            continue
        if f.widget == "json":
            try:
                data[f.name] = json.loads(text)
            except (ValueError, RecursionError):
                problems.append(f"data.{f.name}: not valid JSON")
        elif f.widget == "boolean":
            data[f.name] = text == "true"
        else:
            data[f.name] = text
    if problems:
        raise FormProblem(problems)
    return data


# --- deciding as the signed-in user ---------------------------------------------------------------------


async def decide_as(request: Request, user: User, sample_no: str, given: DecisionInput) -> Receipt:
    """Send `given` with `user` as its actor, signed by the gateway's signer; FormProblem (403) when the user
    may not make it, after writing the refusal to the sample's audit trail."""
    client = _client(request)
    order = await _order(client, sample_no)
    parties = [p.credit_code for p in (order.sampled_party, order.labelled_producer) if p]
    problem = act_problem(user, given.kind, given.role, order.region, parties)
    actor = user.actor(given.role, order.region)
    decision = {**given.model_dump(mode="json", exclude={"role"}), "actor": actor.model_dump(mode="json", exclude_none=True)}
    if problem is None and given.outcome not in decisions_of(given.role).get(given.kind, ()):
        problem = f"outcome: {given.kind.value} = {given.outcome} is not decided by {given.role.value}"
    if problem is not None:  # who may act is checked first: such an attempt is audited whatever its data
        await _audit_refusal(request, client, sample_no, decision, problem)
        raise FormProblem([problem], 403)
    check_payload(given)
    try:
        receipt = await client.decide(sample_no, decision)
    except NoSuchWorkflow as err:
        raise FormProblem([err.reason], 404) from None
    except DecisionRejected as err:
        raise FormProblem([err.reason], 409) from None
    assert receipt is not None
    return receipt


def check_payload(given: DecisionInput) -> None:
    """`data` against the kind's payload here too, so the form shows each bad field before anything is sent."""
    payload = PAYLOADS.get(given.kind)
    if payload is not None:
        try:
            payload.model_validate(given.data)
        except ValidationError as err:
            raise FormProblem(error_lines(err, "data.")) from None


async def _order(client: SpotcheckClient, sample_no: str) -> SampleOrder:
    try:
        return await client.started_order(sample_no)
    except RPCError:
        raise FormProblem([f"sample_no: no sample {sample_no}"], 404) from None


async def _audit_refusal(request: Request, client: SpotcheckClient, sample_no: str, decision: dict[str, Any],
                         reason: str) -> None:
    """The refusal on the sample's audit trail (the `decisions` table the workflows write), keyed like theirs."""
    try:
        stage = (await client.status(sample_no)).stage
    except Exception:  # the refusal is recorded even when the sample does not answer its query
        stage = "unknown"
    actor = decision["actor"]
    await insert_once(_workbench(request).users.pool, "decisions", {
        "workflow_id": workflow_id_for(sample_no), "request_id": decision["request_id"], "kind": decision["kind"],
        "outcome": decision["outcome"], "accepted": False, "reason": reason, "actor": actor,
        "actor_id": actor["id"], "actor_role": actor["role"], "decision": decision, "stage": stage,
        "via": "workbench", "received_at": datetime.now(CHINA),
    }, key=["workflow_id", "request_id", "accepted"])


# --- sessions, CSRF, the signed-in user -----------------------------------------------------------------


def _workbench(request: Request) -> Workbench:
    bench: Workbench = request.app.state.workbench
    return bench


def _client(request: Request) -> SpotcheckClient:
    client: SpotcheckClient = request.app.state.spotcheck
    return client


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, form: FormData) -> None:
    given, expected = form.get("csrf"), request.session.get("csrf")
    if not (isinstance(given, str) and expected and secrets.compare_digest(given, expected)):
        raise HTTPException(403, "csrf: the form's token is missing or stale; reload the page")


class SignInNeeded(Exception):
    """No valid session: the browser goes to the sign-in page."""


async def signed_in(request: Request) -> User:
    user_id = request.session.get("user")
    user = await _workbench(request).users.get(user_id) if isinstance(user_id, str) else None
    if user is None or user.disabled:
        request.session.pop("user", None)
        raise SignInNeeded()
    return user


async def token_user(request: Request) -> User:
    """The user of the API token in `Authorization: Bearer …`; 401 without a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user = await _workbench(request).users.by_token(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(401, "unauthenticated: Authorization: Bearer <API token> missing, unknown or expired",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[User, Depends(signed_in)]
TokenUserDep = Annotated[User, Depends(token_user)]


# --- pages ----------------------------------------------------------------------------------------------


def cn_time(value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["cn_time"] = cn_time
templates.env.globals["ROLE_LABELS"] = {
    "sampler": "抽样人员", "lab": "承检机构", "case_officer": "产品监管处", "enforcement": "执法稽查",
    "credit_officer": "信用监管", "online_officer": "网监", "enterprise": "企业", "certification_body": "认证机构",
    "platform": "平台", "public_security": "公安机关",
}
router = APIRouter(prefix="/workbench", include_in_schema=False)
api = APIRouter(prefix="/api", tags=["workbench API (API token)"])


def _page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    user = context.get("user")
    return templates.TemplateResponse(request, name, {"csrf": csrf_token(request), "user": user, **context},
                                      status_code=code)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html")


@router.post("/login")
async def login(request: Request, user_id: Annotated[str, Form(max_length=64)] = "",
                password: Annotated[str, Form(max_length=256)] = "") -> Response:
    check_csrf(request, await request.form())
    user = await _workbench(request).users.sign_in(user_id.strip(), password)
    if user is None:
        return _page(request, "login.html", 401, error="用户名或密码错误 (unknown user, wrong password, or disabled)")
    request.session.clear()  # a fresh session (and CSRF token) at every sign-in
    request.session.update(user=user.id, csrf=secrets.token_urlsafe(32))
    return RedirectResponse("/workbench", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    check_csrf(request, await request.form())
    request.session.clear()
    return RedirectResponse("/workbench/login", status_code=303)


@router.get("")
async def inbox_page(request: Request, user: UserDep) -> HTMLResponse:
    items, unanswered = await inbox(_client(request), user, _workbench(request).users)
    return _page(request, "inbox.html", user=user, items=items, unanswered=unanswered)


async def _visible_status(request: Request, user: User, sample_no: str) -> tuple[SampleOrder, SampleStatus]:
    """The sample's order and status when the user acts where it is (region, or its own enterprise); 404
    otherwise, the same as for a sample that does not exist."""
    client = _client(request)
    order = await _order(client, sample_no)
    parties = {p.credit_code for p in (order.sampled_party, order.labelled_producer) if p}
    staff = set(user.roles) - {Role.ENTERPRISE}
    if not ((staff and user.covers(order.region)) or (user.credit_code and user.credit_code in parties)):
        raise FormProblem([f"sample_no: no sample {sample_no} in your regions"], 404)
    return order, await client.status(sample_no)


@router.get("/samples/{sample_no}")
async def sample_page(request: Request, sample_no: str, user: UserDep) -> HTMLResponse:
    order, status = await _visible_status(request, user, sample_no)
    decidable = {k.value for k in DecisionKind if user.deciding_roles(k)
                 and act_problem(user, k, user.deciding_roles(k)[0], order.region,
                                 [p.credit_code for p in (order.sampled_party, order.labelled_producer) if p]) is None}
    return _page(request, "sample.html", user=user, order=order, status=status, decidable=decidable)


@router.get("/samples/{sample_no}/notices/{notice_id}")
async def notice_page(request: Request, sample_no: str, notice_id: int, user: UserDep,
                      download: bool = False) -> Response:
    _, status = await _visible_status(request, user, sample_no)
    ids = [status.workflow_id, *(b.workflow_id for b in status.branches)]
    row = await _workbench(request).users.pool.fetchrow(
        "SELECT id, template, title, body, sha256, issued_at FROM notices WHERE id = $1 AND workflow_id = ANY($2::text[])",
        notice_id, ids)
    if row is None:
        raise FormProblem([f"notice: no notice {notice_id} of sample {sample_no}"], 404)
    if download:
        return PlainTextResponse(row["body"], headers={
            "Content-Disposition": f'attachment; filename="{sample_no}-{row["template"]}-{row["id"]}.txt"'})
    return _page(request, "notice.html", user=user, sample_no=sample_no, notice=dict(row))


@router.post("/claims")
async def claim(request: Request, user: UserDep) -> Response:
    """Take an awaited decision in hand, or give it to a colleague who may make it (advisory: the decision is
    checked again when it is made)."""
    form = await request.form()
    check_csrf(request, form)
    fields = {k: v.strip() if isinstance(v, str) else "" for k, v in form.items()}
    sample_no, workflow_id, assignee_id = fields.get("sample_no", ""), fields.get("workflow_id", ""), fields.get("assignee", "")
    try:
        kind = DecisionKind(fields.get("kind", ""))
    except ValueError:
        raise FormProblem(["kind: not a decision kind"]) from None
    if not workflow_id.startswith(workflow_id_for(sample_no)):
        raise FormProblem(["workflow_id: not a workflow of this sample"])
    order = await _order(_client(request), sample_no)
    assignee = await _workbench(request).users.get(assignee_id) if assignee_id else user
    for who, field_name in ((user, "user"), (assignee, "assignee")):
        if who is None or not any(_may_act(who, kind, role, order) for role in who.deciding_roles(kind)):
            raise FormProblem([f"{field_name}: does not decide {kind.value} for this sample (role or region)"], 403)
    assert assignee is not None
    await _workbench(request).users.claim(workflow_id, kind.value, assignee.id, user.id)
    return RedirectResponse("/workbench", status_code=303)


def _may_act(user: User, kind: DecisionKind, role: Role, order: SampleOrder) -> bool:
    parties = [p.credit_code for p in (order.sampled_party, order.labelled_producer) if p]
    return act_problem(user, kind, role, order.region, parties) is None


@router.get("/samples/{sample_no}/decide/{kind}")
async def decision_form(request: Request, sample_no: str, kind: DecisionKind, user: UserDep) -> HTMLResponse:
    return await _form_page(request, user, sample_no, kind)


async def _form_page(request: Request, user: User, sample_no: str, kind: DecisionKind, code: int = 200,
                     **context: Any) -> HTMLResponse:
    order, sample = await _visible_status(request, user, sample_no)
    parties = [p.credit_code for p in (order.sampled_party, order.labelled_producer) if p]
    roles = [r for r in user.deciding_roles(kind) if act_problem(user, kind, r, order.region, parties) is None]
    if not roles:
        raise FormProblem([f"kind: {kind.value} is not decided by your roles for this sample"], 403)
    outcomes = {r.value: list(decisions_of(r)[kind]) for r in roles}
    return _page(request, "decide.html", code, user=user, sample=sample, kind=kind, roles=roles,
                 outcomes=outcomes, fields=form_fields(kind), request_id=str(uuid.uuid4()),
                 form=context.pop("form", {}), **context)


@router.post("/samples/{sample_no}/decide/{kind}")
async def submit_form(request: Request, sample_no: str, kind: DecisionKind, user: UserDep) -> Response:
    form = await request.form(max_files=MAX_EVIDENCE, max_fields=200)
    check_csrf(request, form)
    try:
        evidence = [await store_evidence(_workbench(request).evidence_dir, f)
                    for f in form.getlist("evidence") if isinstance(f, UploadFile) and f.filename]
        given = _decision_input(kind, form, evidence)
        await decide_as(request, user, sample_no, given)
    except FormProblem as err:
        shown = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        return await _form_page(request, user, sample_no, kind, err.status, problems=err.problems, form=shown)
    return RedirectResponse(f"/workbench/samples/{sample_no}?decided={kind.value}", status_code=303)


def _decision_input(kind: DecisionKind, form: FormData, evidence: list[EvidenceRef]) -> DecisionInput:
    def text(name: str) -> str | None:
        value = form.get(name)
        return value.strip() or None if isinstance(value, str) else None

    try:
        return DecisionInput.model_validate({
            "kind": kind, "outcome": text("outcome") or "", "role": text("role") or "",
            "request_id": text("request_id") or str(uuid.uuid4()), "reason": text("reason"),
            "evidence": evidence, "data": form_data(kind, form),
        })
    except ValidationError as err:
        raise FormProblem(error_lines(err)) from None


# --- bulk decisions: one form for a selection of the same kind, each item decided as a single decision -------


@dataclass(frozen=True)
class BulkItem:
    """One selected row of the inbox: `<kind>|<sample_no>|<workflow_id>` in the form."""

    kind: DecisionKind
    sample_no: str
    workflow_id: str

    @property
    def value(self) -> str:
        return f"{self.kind.value}|{self.sample_no}|{self.workflow_id}"

    def request_id(self, bulk_id: str) -> str:
        """The item's decision's request id: the same for the same bulk form, so a form sent again is a repeat."""
        rid = f"bulk-{bulk_id}-{self.workflow_id}"
        return rid if len(rid) <= 128 else f"bulk-{bulk_id}-{hashlib.sha256(self.workflow_id.encode()).hexdigest()}"


def bulk_items(values: list[str]) -> tuple[DecisionKind, list[BulkItem]]:
    """The selection: at least one item, at most MAX_BULK, all of one kind, each a workflow of its sample."""
    if not values:
        raise FormProblem(["item: select at least one row of the inbox"])
    if len(values) > MAX_BULK:
        raise FormProblem([f"item: at most {MAX_BULK} items per bulk decision ({len(values)} selected)"])
    items: dict[str, BulkItem] = {}
    for value in values:
        kind, _, rest = value.partition("|")
        sample_no, _, workflow_id = rest.partition("|")
        try:
            item = BulkItem(DecisionKind(kind), sample_no, workflow_id)
        except ValueError:
            raise FormProblem([f"item: {quoted(kind, 40)} is not a decision kind"]) from None
        if not re.fullmatch(SAMPLE_NO_PATTERN, sample_no) or not workflow_id.startswith(workflow_id_for(sample_no)):
            raise FormProblem([f"item: {quoted(value, 80)} is not a workflow of its sample"])
        items.setdefault(item.value, item)
    kinds = {i.kind for i in items.values()}
    if len(kinds) > 1:
        raise FormProblem([f"item: one kind per bulk decision, not {', '.join(sorted(k.value for k in kinds))}"])
    return kinds.pop(), list(items.values())


@dataclass
class BulkResult:
    item: BulkItem
    result: str  # accepted, rejected (by the workflow: its receipt's reason), refused (by the workbench), sending
    reason: str | None = None
    stage: str | None = None
    repeat: bool = False  # the result of the first time this form was sent: nothing was sent now


async def decide_bulk(request: Request, user: User, bulk_id: str, items: list[BulkItem], given: DecisionInput
                      ) -> list[BulkResult]:
    """Each item through `decide_as` (the same checks, refusals audited the same way) with its own request id;
    an item this bulk already took is not sent again: its first result is shown."""
    users = _workbench(request).users
    results = []
    for item in items:
        rid = item.request_id(bulk_id)
        first = await users.bulk_item_begin(bulk_id, item.workflow_id, user.id, item.kind.value, item.sample_no, rid)
        if first is not None:
            mine = first["user_id"] == user.id
            results.append(BulkResult(item, first["result"] if mine else "refused",
                                      first["reason"] if mine else "bulk_id: used by another user", first["stage"],
                                      repeat=True))
            continue
        try:
            receipt = await decide_as(request, user, item.sample_no, given.model_copy(update={"request_id": rid}))
            result = BulkResult(item, "accepted", None, receipt.stage)
        except FormProblem as err:
            result = BulkResult(item, "rejected" if err.status == 409 else "refused", "; ".join(err.problems))
        except Exception:  # one item's failure (a worker down, a timeout) is its result, not the whole bulk's
            result = BulkResult(item, "refused", "unanswered: the sample did not answer; try this item again later")
            await users.bulk_item_forget(bulk_id, item.workflow_id)
            results.append(result)
            continue
        await users.bulk_item_done(bulk_id, item.workflow_id, result.result, result.reason, result.stage)
        results.append(result)
    return results


@router.get("/bulk")
async def bulk_form(request: Request, user: UserDep) -> HTMLResponse:
    kind, items = bulk_items(request.query_params.getlist("item"))
    return await _bulk_page(request, user, kind, items)


async def _bulk_page(request: Request, user: User, kind: DecisionKind, items: list[BulkItem], code: int = 200,
                     **context: Any) -> HTMLResponse:
    roles = user.deciding_roles(kind)
    if not roles:
        raise FormProblem([f"kind: {kind.value} is not decided by your roles"], 403)
    outcomes = {r.value: list(decisions_of(r)[kind]) for r in roles}
    return _page(request, "bulk.html", code, user=user, kind=kind, items=items, roles=roles, outcomes=outcomes,
                 fields=form_fields(kind), bulk_id=uuid.uuid4().hex, max_bulk=MAX_BULK,
                 form=context.pop("form", {}), **context)


@router.post("/bulk")
async def submit_bulk(request: Request, user: UserDep) -> Response:
    form = await request.form(max_files=MAX_EVIDENCE, max_fields=MAX_BULK + 200)
    check_csrf(request, form)
    kind, items = bulk_items([v for v in form.getlist("item") if isinstance(v, str)])
    bulk_id = form.get("bulk_id")
    try:
        if not (isinstance(bulk_id, str) and re.fullmatch(r"[0-9a-f]{32}", bulk_id)):
            raise FormProblem(["bulk_id: missing or malformed; open the bulk form again"])
        evidence = [await store_evidence(_workbench(request).evidence_dir, f)
                    for f in form.getlist("evidence") if isinstance(f, UploadFile) and f.filename]
        given = _decision_input(kind, form, evidence)
        check_payload(given)
    except FormProblem as err:
        shown = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf", "item")}
        return await _bulk_page(request, user, kind, items, err.status, problems=err.problems, form=shown)
    results = await decide_bulk(request, user, bulk_id, items, given)
    return _page(request, "bulk_result.html", user=user, kind=kind, results=results, bulk_id=bulk_id)


# --- the JSON API (API tokens) -----------------------------------------------------------------------------


class InboxEntry(BaseModel):
    sample_no: str
    workflow_id: str
    kind: str
    roles: list[str]
    due: datetime
    overdue: bool
    product: str


@api.get("/inbox", response_model=list[InboxEntry], summary="decisions awaited from the token's user")
async def api_inbox(request: Request, user: TokenUserDep) -> Any:
    return [InboxEntry(sample_no=i.sample_no, workflow_id=i.workflow_id, kind=i.awaiting.kind, roles=i.awaiting.roles,
                       due=i.awaiting.due, overdue=i.overdue, product=i.product)
            for i in (await inbox(_client(request), user, _workbench(request).users))[0]]


@api.post("/samples/{sample_no}/decisions", response_model=Receipt,
          summary="a decision by the token's user, in one of its roles")
async def api_decide(request: Request, sample_no: str, given: DecisionInput, user: TokenUserDep) -> Any:
    try:
        return await decide_as(request, user, sample_no, given)
    except FormProblem as err:
        return JSONResponse({"detail": "; ".join(err.problems), "problems": err.problems}, status_code=err.status)


async def form_problem(request: Request, exc: Any) -> Response:
    """A refusal outside a form (a sample not shown to the user): a page naming why."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "; ".join(exc.problems), "problems": exc.problems}, status_code=exc.status)
    user = None
    try:
        user = await signed_in(request)
    except SignInNeeded:
        pass
    return _page(request, "problem.html", exc.status, user=user, problems=exc.problems)


async def sign_in_needed(request: Request, exc: Any) -> Response:
    return RedirectResponse("/workbench/login", status_code=303)


__all__ = ["Workbench", "api", "form_problem", "router", "sign_in_needed"]
