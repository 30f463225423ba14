"""`spotcheck`: start samples, send decisions, show and list samples, bring up the embedded stack.
Output is for people by default; `--json` for scripts. A rejected decision exits non-zero with the reason."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from domain.bounds import one_line, quoted, text_problem
from domain.decisions import ROLE_MATRIX, DecisionKind, Role
from domain.holidays import estimate_note
from domain.models import SAMPLE_NO_PATTERN
from domain.stages import Stage
from domain.windows import CHINA
from starter.views import BY_NAME as VIEWS

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class InputError(ValueError):
    """Input the CLI cannot use; the message is one line naming the input or field (and where in it)."""


def input_problem(err: BaseException, what: str = "input") -> str:
    """One line for input that cannot be read or parsed, naming `what` and the place, never the content."""
    if isinstance(err, InputError):
        return str(err)
    if isinstance(err, json.JSONDecodeError):
        return f"{what}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg})"
    if isinstance(err, UnicodeDecodeError):
        return f"{what}: not valid UTF-8 at byte {err.start}"
    if isinstance(err, RecursionError):
        return f"{what}: nested too deeply"
    if isinstance(err, OSError):
        return f"{what}: cannot read: {err.strerror or type(err).__name__}"
    if isinstance(err, ValueError) and "integer string conversion" in str(err):
        return f"{what}: number too large"
    return one_line(f"{what}: {err}")


def _loads(text: str, what: str = "input") -> Any:
    """json.loads; a syntax error stays a JSONDecodeError (its position is in it), anything else that
    json.loads raises (deep nesting, a number of thousands of digits) becomes an InputError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as err:
        raise InputError(input_problem(err, what)) from None


KINDS = [k.value for k in DecisionKind]
ROLES = [r.value for r in Role]
STAGES = [s.value for s in Stage]


def _token_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", help="an API token (`spotcheck users token`; default $SPOTCHECK_API_TOKEN): act as "
                   "its user through the workbench's API")
    p.add_argument("--server", help="the gateway (default: $SPOTCHECK_SERVER or http://127.0.0.1:8288)")


def _signing_options(p: argparse.ArgumentParser) -> None:
    """`--key-file`/`--key-id`, read by `_signer`: `decide` and `plan amend` sign alike."""
    p.add_argument("--key-file", help="sign with a key of this file (default: $SPOTCHECK_SIGNING_KEYS; "
                   "neither: unsigned)")
    p.add_argument("--key-id", help="the key to sign with (default: the file's first non-internal key)")


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Temporal frontend (default: $TEMPORAL_ADDRESS or localhost:7233)")
    p.add_argument("--namespace", help="Temporal namespace (default: $TEMPORAL_NAMESPACE or default)")
    p.add_argument("--task-queue", dest="task_queue", help="task queue (default: spotcheck)")


async def _connect(args: argparse.Namespace, signer: Any = None) -> Any:
    from starter.client import SpotcheckClient

    try:
        return await SpotcheckClient.connect(args.address, args.namespace, args.task_queue, signer)
    except RuntimeError:  # the SDK's connect error: a page of transport detail
        address = args.address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
        raise InputError(f"server: cannot reach Temporal at {address} (is `spotcheck up` running?)") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# --- sample start ------------------------------------------------------------------------------


def _read_text(source: str) -> str:
    if source == "-":
        raw: bytes | str = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    else:
        raw = Path(source).read_bytes()
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise InputError(input_problem(err)) from None


def _read_orders(source: str) -> list[Any]:
    """The orders in a file (`-`: standard input): one JSON value, a JSON array, or JSON lines. Raises OSError,
    json.JSONDecodeError (positions count in the whole input, JSON lines too) or InputError; the orders
    themselves are checked by the client."""
    text = _read_text(source)
    if not text.strip():
        return []
    if text.lstrip().startswith("["):
        return list(_loads(text))
    try:
        return [_loads(text)]
    except json.JSONDecodeError as whole:
        # JSON lines: one order a line; when the first line is no JSON either, the input is one bad document
        orders, offset = [], 0
        for line in text.split("\n"):
            if line.strip():
                try:
                    orders.append(_loads(line))
                except json.JSONDecodeError as err:
                    if not orders:
                        raise whole from None
                    raise json.JSONDecodeError(err.msg, text, offset + err.pos) from None
            offset += len(line) + 1
        return orders


async def _sample_start(args: argparse.Namespace) -> int:
    try:
        orders = _read_orders(args.file)
    except (OSError, ValueError) as err:
        print(f"error: {input_problem(err)}", file=sys.stderr)
        return EXIT_REJECTED
    if not orders:
        print("error: input: no orders", file=sys.stderr)
        return EXIT_REJECTED
    if args.time_scale:
        orders = [{**o, "time_scale": args.time_scale} if isinstance(o, dict) else o for o in orders]
    refusals = [_refusal(index, raw) for index, raw in enumerate(orders)]  # no server needed for these
    results = await (await _connect(args)).start_samples(orders) if None in refusals else refusals
    if args.json:
        _print_json([r.__dict__ for r in results])
    for r in results:
        if not args.json:
            if r.ok:
                print(f"started {r.workflow_id}")
            else:
                print(f"refused {_which(r, len(results))}: {r.error}", file=sys.stderr)
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_REJECTED


def _refusal(index: int, raw: Any) -> Any:
    """The StartResult refusing a malformed order, or None for a well-formed one."""
    from starter.client import OrderError, StartResult, parse_order

    try:
        parse_order(raw)
    except OrderError as err:
        return StartResult(err.sample_no, None, str(err), index=index)
    return None


def _which(result: Any, count: int) -> str:
    """The order a refusal is about: its sample number, and its place when there are several."""
    if count == 1:
        return result.sample_no or "the order"
    return f"order {result.index + 1} of {count}" + (f" ({result.sample_no})" if result.sample_no else "")


# --- sample show -------------------------------------------------------------------------------


async def _sample_show(args: argparse.Namespace) -> int:
    from temporalio.service import RPCError

    from activities.calendar import CHINA

    client = await _connect(args)
    try:
        status = await client.status(args.sample_no)
    except RPCError as err:
        print(f"error: sample {args.sample_no}: {err}", file=sys.stderr)
        return EXIT_REJECTED
    if args.json:
        _print_json(status.model_dump(mode="json"))
        return EXIT_OK
    print(status.summary)
    print(f"stage:   {status.stage}")
    print(f"verdict: {status.verdict}")
    for w in status.awaiting:
        print(_wait_line(w))
    if status.failed_items:
        print("failed items:")
        for item in status.failed_items:
            print(f"  - {item.get('item')} ({item.get('standard')})")
    if status.branches:
        print("branches:" + (" (live: read from the branch itself, the sample has closed)" if status.live_branches
                             else ""))
    for b in status.branches:
        print(f"  {_branch_line(b)}" + ("  [live]" if b.workflow_id in status.live_branches else ""))
        for w in b.awaiting:
            print(_wait_line(w, "    "))
    print("timeline (China time):")
    for e in status.timeline:
        print(f"  {e.at.astimezone(CHINA):%Y-%m-%d %H:%M}  [{e.stage}] {e.text}")
    return EXIT_OK


def _wait_line(w: Any, indent: str = "") -> str:
    flag = "  OVERDUE" if w.overdue else ""
    estimate = f" [{estimate_note(w.due.date())}]" if w.estimated else ""
    return f"{indent}awaiting {w.kind} from {'/'.join(w.roles)} by {w.due.date()}{estimate} ({w.title}){flag}"


def _branch_line(b: Any) -> str:
    """A branch as the sample sees it: its stage, or how it closed (and the merged case that took it over)."""
    from starter.client import merged_case

    if not b.closed:
        return f"{b.branch:<14} {b.workflow_id}  stage {b.stage}"
    case = merged_case(b)
    return f"{b.branch:<14} {b.workflow_id}  closed → {b.outcome}" + (f": merged case {case}" if case else "")


# --- decide ------------------------------------------------------------------------------------


class UsageError(ValueError):
    """Arguments that cannot work: `main` says why in one line and exits with EXIT_USAGE."""


def _signer(args: argparse.Namespace) -> Any:
    """The key `decide` and `plan amend` sign with: `--key-id` (default: the first decision key) from
    `--key-file`, else from SPOTCHECK_SIGNING_KEYS; neither: sent unsigned. A UsageError when unusable."""
    from activities.keys import KEYS_ENV, KeyFileError
    from starter.client import Signer

    try:
        path = args.key_file or os.environ.get(KEYS_ENV)
        if not path:
            if args.key_id:
                raise KeyFileError(f"--key-id needs --key-file or {KEYS_ENV}")
            return None
        return Signer.from_key_file(path, args.key_id)
    except KeyFileError as err:
        raise UsageError(f"signing key: {err}") from None


def _decide_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with `decide`'s arguments before anything is sent, naming the field, or None: a sample
    number, kind, outcome or role that cannot exist, text that cannot be sent."""
    problems = []
    if not re.match(SAMPLE_NO_PATTERN, args.sample_no):
        problems.append("sample_no: not a sample number (3 to 64 letters, digits, '.', '_' or '-')")
    if args.kind not in {k.value for k in DecisionKind}:
        problems.append(f"kind: unknown decision kind {quoted(args.kind)} (`spotcheck schema decision` lists them)")
    elif args.outcome not in ROLE_MATRIX[DecisionKind(args.kind)]:
        allowed = ", ".join(ROLE_MATRIX[DecisionKind(args.kind)])
        problems.append(f"outcome: unknown outcome {quoted(args.outcome)} for {args.kind}; allowed: {allowed}")
    if args.role not in {r.value for r in Role}:
        problems.append(f"role: unknown role {quoted(args.role)} (`spotcheck schema decision` lists them)")
    texts = {"actor.id": args.actor, "actor.name": args.actor_name, "actor.organisation": args.organisation,
             "reason": args.reason, "request_id": args.request_id, "evidence": " ".join(args.evidence or [])}
    problems += [f"{field}: {p}" for field, value in texts.items() if value and (p := text_problem(value))]
    if args.request_id and len(args.request_id) > 128:
        problems.append("request_id: longer than 128 characters")
    return one_line("; ".join(problems)) if problems else None


def _decision_data(text: str | None) -> dict[str, Any]:
    """`--data`: a JSON object, or InputError naming `--data` and where it goes wrong."""
    if not text:
        return {}
    try:
        data = _loads(text, "--data")
    except ValueError as err:
        raise InputError(input_problem(err, "--data")) from None
    if not isinstance(data, dict):
        raise InputError(f"--data: must be a JSON object, not {type(data).__name__}")
    return data


async def _decide(args: argparse.Namespace) -> int:
    from starter.client import DecisionRejected

    try:
        problem = _decide_problem(args)
        if problem:
            raise InputError(problem)
        data = _decision_data(args.data)
    except InputError as err:
        print(f"rejected: {err}", file=sys.stderr)
        return EXIT_REJECTED
    evidence = []
    for item in args.evidence or []:
        name, _, sha = item.partition("=")
        evidence.append({"name": name, "sha256": sha})
    actor: dict[str, Any] = {"id": args.actor or "", "role": args.role}
    if args.actor_name:
        actor["name"] = args.actor_name
    if args.organisation:
        actor["organisation"] = args.organisation
    decision = {
        "kind": args.kind,
        "outcome": args.outcome,
        "actor": actor,
        "request_id": args.request_id or str(uuid.uuid4()),
        "reason": args.reason,
        "evidence": evidence,
        "data": data,
    }
    if _token(args):
        given = {k: v for k, v in decision.items() if k != "actor"}
        try:
            answer = await _api(args, "POST", f"/api/samples/{args.sample_no}/decisions", {**given, "role": args.role})
        except DecisionRejected as err:
            print(f"rejected: {err.reason}", file=sys.stderr)
            return EXIT_REJECTED
        print(f"accepted {answer['kind']}={answer['outcome']} at stage {answer['stage']} as the token's user "
              f"(request {answer['request_id']})")
        return EXIT_OK
    if not args.actor:
        print("rejected: --actor: required without an API token (--token or SPOTCHECK_API_TOKEN)", file=sys.stderr)
        return EXIT_REJECTED
    client = await _connect(args, _signer(args))
    try:
        receipt = await client.decide(args.sample_no, decision, signal=args.signal)
    except DecisionRejected as err:
        if args.json:
            _print_json({"accepted": False, "reason": err.reason, "request_id": decision["request_id"]})
        else:
            print(f"rejected: {err.reason}", file=sys.stderr)
        return EXIT_REJECTED
    if receipt is None:
        print(f"sent {args.kind}={args.outcome} as a signal (request {decision['request_id']}); "
              f"see `spotcheck sample show {args.sample_no}` for its fate")
        return EXIT_OK
    if args.json:
        _print_json(receipt.model_dump(mode="json"))
    else:
        print(f"accepted {receipt.kind}={receipt.outcome} at stage {receipt.stage} (request {receipt.request_id})")
    return EXIT_OK


# --- list and inbox ----------------------------------------------------------------------------


async def _list(args: argparse.Namespace) -> int:
    from starter.client import list_query

    client = await _connect(args)
    role, every = getattr(args, "role", None), args.all_workflows
    query = list_query(stage=args.stage, region=args.region, overdue=args.overdue, extra=args.query)
    if getattr(args, "view", None):
        rows = await client.list_view(args.view, limit=args.limit)
    elif role is not None:
        rows = await client.inbox(role, query, limit=args.limit, all_workflows=every)
    else:
        rows = await client.list_workflows(query, limit=args.limit, all_workflows=every)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no workflows" if every else "no samples")
        return EXIT_OK
    # With every workflow, each row is one workflow (a branch shows under its own id) and KIND says what it is.
    first = f"{'KIND':<14} {'WORKFLOW':<40}" if every else f"{'SAMPLE':<24}"
    print(f"{first} {'STAGE':<18} {'VERDICT':<17} {'REGION':<7} {'AWAITING':<22} "
          f"{'NEXT DEADLINE (Asia/Shanghai)':<30} OVERDUE")
    for r in rows:
        name = f"{r['kind']:<14} {r['workflow_id']:<40}" if every else f"{r['sample_no'] or r['workflow_id']:<24}"
        due = datetime.fromisoformat(r["next_deadline"]).astimezone(CHINA) if r["next_deadline"] else None
        late = ",".join(r["overdue_role"]) or "yes"
        print(f"{name} {r['stage'] or '':<18} {r['verdict'] or '':<17} "
              f"{r['region_name'] or r['region'] or '':<7} {','.join(r['awaiting_role']):<22} "
              f"{f'{due:%Y-%m-%d %H:%M}' if due else '':<30} {late if r['overdue'] else ''}")
    if any(r["estimated"] for r in rows):
        print("ESTIMATED: " + ", ".join(r["workflow_id"] if every else r["sample_no"] or r["workflow_id"]
                                        for r in rows if r["estimated"])
              + " wait on a date whose year's holiday schedule is not published yet (`spotcheck calendar load`)")
    return EXIT_OK


async def _inbox(args: argparse.Namespace) -> int:
    """The decisions awaited from a role (visibility finds the samples, their status names the kinds); with
    an API token, those awaited from the token's user, through the workbench's API."""
    from starter.client import list_query

    if getattr(args, "all_workflows", False) and not _token(args):
        return await _list(args)  # one row per workflow that itself awaits the role (KIND column)
    if _token(args):
        entries = await _api(args, "GET", "/api/inbox")
        rows = [e for e in entries if not args.kind or e["kind"] == args.kind]
    else:
        if not args.role:
            print("error: --role: required without an API token (--token or SPOTCHECK_API_TOKEN)", file=sys.stderr)
            return EXIT_USAGE
        client = await _connect(args)
        query = list_query(stage=args.stage, region=args.region, overdue=args.overdue, role=args.role,
                           extra=args.query)
        found, unanswered = await client.awaited_in(await client.list_samples(query, limit=args.limit, branches=True))
        if unanswered:
            print(f"note: {unanswered} sample(s) did not answer their status query in time (worker down?)",
                  file=sys.stderr)
        rows = [{"sample_no": no, "workflow_id": wid, "kind": a.kind, "roles": a.roles, "due": a.due.isoformat(),
                 "overdue": a.overdue, "product": product} for no, wid, product, a in found
                if args.role in a.roles and (not args.kind or a.kind == args.kind)]
        rows.sort(key=lambda r: (not r["overdue"], r["due"]))
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("nothing awaited")
        return EXIT_OK
    print(f"{'SAMPLE':<24} {'AWAITING KIND':<26} {'FROM':<24} {'DUE':<11} {'OVERDUE':<8} WORKFLOW")
    for r in rows:
        print(f"{r['sample_no']:<24} {r['kind']:<26} {'/'.join(r['roles']):<24} {r['due'][:10]:<11} "
              f"{'yes' if r['overdue'] else '':<8} {r['workflow_id']}")
    return EXIT_OK


# --- the workbench's API and its users -------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("SPOTCHECK_API_TOKEN") or None


async def _api(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """A call to the workbench's API as the API token's user; DecisionRejected with the server's reason when
    it refuses, one line when it cannot be reached."""
    import httpx

    from starter.client import DecisionRejected

    server = (args.server or os.environ.get("SPOTCHECK_SERVER") or "http://127.0.0.1:8288").rstrip("/")
    try:
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            answer = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {_token(args)}"})
    except httpx.HTTPError as err:
        raise InputError(f"server: cannot reach {server} ({type(err).__name__})") from None
    try:
        content = answer.json()
    except ValueError:
        content = {"detail": f"HTTP {answer.status_code}"}
    if answer.status_code >= 400:
        raise DecisionRejected(one_line(str(content.get("detail") or f"HTTP {answer.status_code}")))
    return content


def _read_password() -> str:
    import getpass

    if sys.stdin.isatty():
        first, again = getpass.getpass("password: "), getpass.getpass("again: ")
        if first != again:
            raise InputError("password: the two entries differ")
        return first
    return sys.stdin.readline().rstrip("\n")


async def _users(args: argparse.Namespace) -> int:
    """`spotcheck users add|list|disable|token` against DATABASE_URL."""
    from pydantic import ValidationError

    from domain.bounds import error_lines
    from domain.users import User
    from starter.users import UserError, UserStore

    async with database("users are kept") as pool:
        store = UserStore(pool)
        try:
            if args.users_command == "add":
                try:
                    user = User(id=args.id, display_name=args.name or args.id, roles=tuple(args.role),
                                regions=tuple(args.region or ()), organisation=args.organisation,
                                credit_code=args.credit_code)
                except ValidationError as err:
                    raise InputError("; ".join(error_lines(err))) from None
                if not await store.add(user, _read_password()):
                    raise InputError(f"id: a user {args.id} exists already")
                print(f"added {user.id} ({', '.join(r.value for r in user.roles)})")
            elif args.users_command == "list":
                users = await store.all()
                if args.json:
                    _print_json([u.model_dump(mode="json") for u in users])
                for u in users if not args.json else ():
                    print(f"{u.id:<24} {u.display_name:<20} {','.join(r.value for r in u.roles):<28} "
                          f"{','.join(u.regions) or u.credit_code or '':<20} {'disabled' if u.disabled else ''}")
            elif args.users_command == "disable":
                if not await store.set_disabled(args.id):
                    raise InputError(f"id: no user {args.id}")
                print(f"disabled {args.id}: signed out at the next request, its API tokens refused")
            else:
                token = await store.issue_token(args.id, args.label, args.days)
                print(token)
                print(f"the API token of {args.id} for {args.days} days (shown once): use it with --token or "
                      "SPOTCHECK_API_TOKEN", file=sys.stderr)
        except (InputError, UserError) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_REJECTED
    return EXIT_OK


# --- outbox ------------------------------------------------------------------------------------


@asynccontextmanager
async def database(what: str = "the outbox is read") -> AsyncIterator[Any]:
    """A pool of one connection to Spotcheck's database (DATABASE_URL), migrated, closed when done; a
    UsageError saying why there is none."""
    from activities.db import apply_migrations, create_pool

    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise UsageError(f"DATABASE_URL is not set: {what} from PostgreSQL (`spotcheck up` prints its address)")
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await apply_migrations(pool)
        yield pool
    finally:
        await pool.close()


async def _outbox_list(args: argparse.Namespace) -> int:
    from activities.outbox import config_from_env, outbox_messages
    from domain.outbox import CONFIG_ENV, message_state

    config = config_from_env()  # a bad file: one line naming the field (main), never its content
    configured = set(config.channels) if config is not None else None
    async with database() as conn:
        rows = await outbox_messages(conn, pending=args.pending, failed=args.failed, limit=args.limit)
    for r in rows:
        r["state"] = message_state(r, configured).value
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if configured is None:
        print(f"note: {CONFIG_ENV} is not set here, so which channels have an adapter is not known: "
              "unsent messages show as pending", file=sys.stderr)
    if not rows:
        print("no messages")
        return EXIT_OK
    print(f"{'ID':>6} {'CHANNEL':<20} {'RECIPIENT':<20} {'CREATED':<16} {'STATE':<10} {'TRIES':>5}  "
          f"{'SUBJECT':<30} LAST ERROR")
    for r in rows:
        print(f"{r['id']:>6} {one_line(r['channel'], 20):<20} {one_line(r['recipient'], 20):<20} "
              f"{r['created_at']:%Y-%m-%d %H:%M} {r['state']:<10} {r['attempts']:>5}  "
              f"{one_line(r['subject'], 30):<30} {one_line(r['last_error'] or '', 120)}")
    return EXIT_OK


async def _outbox_retry(args: argparse.Namespace) -> int:
    from activities.outbox import retry_message

    async with database() as conn:
        done = await retry_message(conn, args.id)
    if not done:
        print(f"error: no failed message {args.id} (`spotcheck outbox --failed` lists them)", file=sys.stderr)
        return EXIT_REJECTED
    print(f"message {args.id} is pending again: the dispatcher sends it next")
    return EXIT_OK


# --- calendar ----------------------------------------------------------------------------------


async def _calendar_load(args: argparse.Namespace) -> int:
    """Validate a year file, add it to the calendar folder, then have every open wait with an estimated
    deadline computed again."""
    from activities.holiday_files import loaded_dir, read_year, save_year
    from domain.holidays import HolidayYearError

    try:
        year = read_year(Path(args.file), "file")
        text = _read_text(args.file)
        path = None if args.dry_run else save_year(year, text)
    except HolidayYearError as err:  # names the field, never the content
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_REJECTED
    except (InputError, OSError) as err:
        print(f"error: {input_problem(err, 'file')}", file=sys.stderr)
        return EXIT_REJECTED
    if path is None:
        print(f"valid: {year.year} {year.citation()} (not loaded: --dry-run)")
        return EXIT_OK
    print(f"loaded {year.year} into {loaded_dir()}: {year.citation()}")
    told = await (await _connect(args)).recompute_estimated(year.year)
    print(f"told {len(told)} workflow(s) with an estimated deadline to compute it again"
          + (": " + ", ".join(told) if told else ""))
    return EXIT_OK


def _calendar_show(args: argparse.Namespace) -> int:
    from activities.holiday_files import known_years

    known = [k for k in known_years() if args.year is None or k.year.year == args.year]
    if args.json:
        _print_json([{"year": k.year.year, "source": k.source, "path": str(k.path), "citation": k.year.citation(),
                      **k.year.model_dump(mode="json")} for k in known])
        return EXIT_OK
    if not known:
        print(f"no holiday schedule for {args.year}: deadlines in it are estimated (Monday to Friday)"
              if args.year else "no holiday schedules")
        return EXIT_OK if args.year else EXIT_REJECTED
    for k in known:
        print(f"{k.year.year}  {k.source:<7}  {k.year.citation()}")
        if args.year is not None:
            for h in k.year.holidays:
                worked = ", ".join(str(d) for d in h.make_up_days)
                print(f"  {h.name}: {h.first} – {h.last}" + (f"; make-up working days {worked}" if worked else ""))
    return EXIT_OK


# --- rules ---------------------------------------------------------------------------------------


def rule_rows(pack: Any, on: date | None) -> list[dict[str, Any]]:
    """One row per rule version: those in force on `on`, or (None) every version of the pack."""
    from domain.rules import ARTICLE

    rules = list(pack.rules_on(on).values()) if on is not None else [
        r for _, versions in sorted(pack.rules.items()) for r in versions]
    return [{
        "rule": r.id, "title": r.title, "length": r.length, "unit": r.unit.value,
        "value": f"{r.length} {r.unit.value}" + (f" (+{r.extension_length} once)" if r.extension_length else ""),
        "on_expiry": r.on_expiry.value, "basis": r.basis, "articles": ARTICLE.findall(r.basis),
        "basis_checked": r.basis_checked, "scope": r.scope.value,
        "effective_from": r.effective_from.isoformat() if r.effective_from else None,
        "effective_to": r.effective_to.isoformat() if r.effective_to else None,
        "pack_version": pack.version,
    } for r in rules]


def _span(row: dict[str, Any]) -> str:
    if not row["effective_from"] and not row["effective_to"]:
        return "always"
    return f"{row['effective_from'] or '…'} – {row['effective_to'] or '…'}"


def rules_markdown(packs: list[Any]) -> str:
    """docs/rules.md: every version of every rule of every pack (regenerate: `make rules-doc`)."""
    out = ["# Rules", "",
           "Generated from `rules/*.toml` by `spotcheck rules show --markdown` (`make rules-doc`); do not",
           "edit by hand. A rule with several versions applies the one in force on a deadline's start date",
           "(China time); *checked* means the basis was checked against the official text and cites its article.", ""]
    for pack in packs:
        out += [f"## {pack.version} (in force from {pack.effective_from})", "", pack.title, "",
                "| rule | value | on expiry | in force | checked | basis |", "|---|---|---|---|---|---|"]
        for row in rule_rows(pack, None):
            basis = row["basis"].replace("|", "\\|")
            out.append(f"| `{row['rule']}` | {row['value']} | {row['on_expiry']} | {_span(row)} | "
                       f"{'yes' if row['basis_checked'] else 'no'} | {basis} |")
        out.append("")
    return "\n".join(out)


def _rules_show(args: argparse.Namespace) -> int:
    from activities.rule_packs import load_rule_packs, overrides_from_env, pack_in_force

    packs = load_rule_packs()
    if args.markdown:
        print(rules_markdown(packs), end="")
        return EXIT_OK
    on = None if args.all else (args.at or datetime.now(CHINA).date())
    pack = pack_in_force(packs, on or max(p.effective_from for p in packs)).with_overrides(overrides_from_env())
    rows = rule_rows(pack, on)
    if args.json:
        _print_json({"on": on.isoformat() if on else None, "pack_version": pack.version, "rules": rows})
        return EXIT_OK
    print(f"rule pack {pack.version}, " + (f"rules in force on {on}" if on else "every rule version"))
    width = max(len(r["rule"]) for r in rows)
    print(f"{'RULE':<{width}}  {'VALUE':<28} {'CHECKED':<8} {'IN FORCE':<25} BASIS")
    for r in rows:
        print(f"{r['rule']:<{width}}  {r['value']:<28} {'yes' if r['basis_checked'] else 'no':<8} "
              f"{_span(r):<25} {r['basis']}")
    return EXIT_OK


def _token_days(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= 365):
        raise argparse.ArgumentTypeError("not a number of days from 1 to 365")
    return int(text)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


# --- schema ------------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    """`sample-order`, `decision`, `receipt`, `sample-status`, `branch-status`, or a decision kind: what its
    `data` holds, who may decide which outcome, and the workflow that takes it. `--all` writes the whole
    wire contract (starter/contract.py, docs/contract.md) as JSON Schema files."""
    from starter.contract import MODELS, export, kind_contract

    if args.all:
        written = export(Path(args.out))
        print(f"wrote {len(written)} files under {args.out} (index.json lists them)")
        return EXIT_OK
    if args.model is None:
        print("spotcheck schema: name a model or a decision kind, or give --all", file=sys.stderr)
        return EXIT_USAGE
    if args.model in MODELS:
        _print_json(MODELS[args.model].model_json_schema())
        return EXIT_OK
    _print_json(kind_contract(DecisionKind(args.model)))
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sample = sub.add_parser("sample", help="start and show samples")
    sample_sub = sample.add_subparsers(dest="sample_command", required=True)
    start = sample_sub.add_parser("start", help="start samples from a JSON order, a JSON array or JSON lines")
    start.add_argument("file", help="path, or - for standard input")
    start.add_argument("--time-scale", type=float, help="compress every deadline (86400 = a day per second)")
    start.add_argument("--json", action="store_true")
    _client_options(start)
    start.set_defaults(func=_sample_start)
    show = sample_sub.add_parser("show", help="stage, verdict, awaited decision and deadline, timeline")
    show.add_argument("sample_no")
    show.add_argument("--json", action="store_true")
    _client_options(show)
    show.set_defaults(func=_sample_show)

    decide = sub.add_parser("decide", help="send a decision (an update; --signal for fire-and-forget)")
    decide.add_argument("sample_no")
    decide.add_argument("kind", choices=KINDS, metavar="kind", help="the decision kind: " + ", ".join(KINDS))
    decide.add_argument("outcome")
    decide.add_argument("--actor", help="actor id (not with an API token: the actor is its user)")
    decide.add_argument("--actor-name")
    decide.add_argument("--organisation", help="the actor's organisation; an enterprise: its credit code")
    decide.add_argument("--role", required=True, choices=ROLES)
    decide.add_argument("--reason")
    decide.add_argument("--data", help="JSON payload, e.g. the lab report")
    decide.add_argument("--evidence", action="append", metavar="NAME=SHA256")
    decide.add_argument("--request-id", help="idempotency key (default: a new one)")
    decide.add_argument("--signal", action="store_true", help="send as a signal: no receipt")
    _signing_options(decide)
    decide.add_argument("--json", action="store_true")
    _token_options(decide)
    _client_options(decide)
    decide.set_defaults(func=_decide)

    for name, help_text in (("list", "list and filter samples"), ("inbox", "decisions awaited from a role")):
        lst = sub.add_parser(name, help=help_text)
        if name == "inbox":
            lst.add_argument("--role", choices=ROLES, help="required without an API token")
            lst.add_argument("--kind", choices=KINDS, metavar="KIND", help="only this kind: " + ", ".join(KINDS))
            _token_options(lst)
        else:
            lst.add_argument("--role", choices=ROLES, help="samples awaiting this role")
            lst.add_argument("--view", choices=sorted(VIEWS),
                             help="a monitors' named view (docs/monitoring.md); the other filters are ignored")
        lst.add_argument("--stage", choices=STAGES)
        lst.add_argument("--region")
        lst.add_argument("--overdue", action="store_true")
        lst.add_argument("--query", help="extra visibility query, e.g. \"Channel = 'online'\"")
        lst.add_argument("--limit", type=int, default=200)
        lst.add_argument("--all-workflows", action="store_true",
                         help="every Spotcheck workflow, not only samples: branches, merged cases, product cases "
                         "(KIND says which); in the inbox, each wait once, under the workflow that awaits it")
        lst.add_argument("--json", action="store_true")
        _client_options(lst)
        lst.set_defaults(func=_inbox if name == "inbox" else _list)

    users = sub.add_parser("users", help="the workbench's users and their API tokens (DATABASE_URL)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user; the password is asked (or read from standard input)")
    add.add_argument("id")
    add.add_argument("--name", help="display name (default: the id)")
    add.add_argument("--role", action="append", required=True, choices=ROLES, help="repeat for several")
    add.add_argument("--region", action="append", help="GB/T 2260 code the user acts for (330000 covers 3301xx); repeat")
    add.add_argument("--organisation")
    add.add_argument("--credit-code", dest="credit_code", help="an enterprise user's 统一社会信用代码")
    users_sub.add_parser("list", help="every user").add_argument("--json", action="store_true")
    users_sub.add_parser("disable", help="sign a user out for good").add_argument("id")
    tok = users_sub.add_parser("token", help="issue an API token for the CLI (printed once)")
    tok.add_argument("id")
    tok.add_argument("--label")
    tok.add_argument("--days", type=_token_days, default=90, help="1 to 365 (default: %(default)s)")
    users.set_defaults(func=_users)

    outbox = sub.add_parser("outbox", help="messages for outside systems: pending, sent, failed (DATABASE_URL)")
    outbox.add_argument("--pending", action="store_true", help="only messages not sent yet (nor failed)")
    outbox.add_argument("--failed", action="store_true", help="only messages given up on")
    outbox.add_argument("--limit", type=int, default=200)
    outbox.add_argument("--json", action="store_true")
    outbox.set_defaults(func=_outbox_list)
    outbox_sub = outbox.add_subparsers(dest="outbox_command")
    retry = outbox_sub.add_parser("retry", help="put a failed message back: the dispatcher sends it again")
    retry.add_argument("id", type=int)
    retry.set_defaults(func=_outbox_retry)

    cal = sub.add_parser("calendar", help="the holiday schedules deadlines are counted on")
    cal_sub = cal.add_subparsers(dest="calendar_command", required=True)
    load = cal_sub.add_parser("load", help="add a year's holiday schedule (TOML, see calendar/2026.toml) and "
                              "recompute every estimated deadline")
    load.add_argument("file")
    load.add_argument("--dry-run", action="store_true", help="only validate the file")
    _client_options(load)
    load.set_defaults(func=_calendar_load)
    cal_show = cal_sub.add_parser("show", help="the years known, their source and notice")
    cal_show.add_argument("year", nargs="?", type=int)
    cal_show.add_argument("--json", action="store_true")
    cal_show.set_defaults(func=_calendar_show)

    schema = sub.add_parser("schema", help="print a JSON schema (an order, a decision, a receipt, a status, or a "
                            "decision kind's data); --all writes the whole wire contract")
    schema.add_argument("model", nargs="?", choices=["sample-order", "decision", "receipt", "sample-status",
                                                     "branch-status", *(k.value for k in DecisionKind)])
    schema.add_argument("--all", action="store_true", help="write every schema and index.json (docs/contract.md)")
    schema.add_argument("--out", default="contract", help="folder for --all (default ./contract)")
    schema.set_defaults(func=_schema)

    from starter import report_cli

    report_cli.add_commands(sub)  # report plan|bulletin, notice show|print (issue 13)
    rules = sub.add_parser("rules", help="the rule pack: deadlines with their legal basis")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    rshow = rules_sub.add_parser("show", help="the rules in force on a date (default today, China time)")
    when = rshow.add_mutually_exclusive_group()
    when.add_argument("--at", type=_iso_date, metavar="DATE", help="YYYY-MM-DD (default: today, China time)")
    when.add_argument("--all", action="store_true", help="every version of every rule")
    rshow.add_argument("--json", action="store_true")
    rshow.add_argument("--markdown", action="store_true", help="every pack and version as docs/rules.md")
    rshow.set_defaults(func=_rules_show)

    from starter import plan_cli, planning_cli

    plan_cli.add_commands(sub)  # plan start, show, list, schedule, amend (issue 12)
    planning_cli.add_commands(sub)  # pool, signals, frame, plan draft (issue 12)
    try:
        from starter import stack
    except ImportError:  # the stack module is optional for a client-only install
        stack = None  # type: ignore[assignment]
    if stack is not None:
        stack.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Any failure ends as one line on stderr and exit code 1, never a traceback (SPOTCHECK_DEBUG=1 shows it)."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
        return int(asyncio.run(result) if isinstance(result, Coroutine) else result)
    except KeyboardInterrupt:
        return 130
    except UsageError as err:
        print(one_line(f"error: {err}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if os.environ.get("SPOTCHECK_DEBUG"):
            raise
        from temporalio.service import RPCError

        if isinstance(err, RPCError):  # e.g. a visibility query the server cannot parse (--query)
            print(one_line(f"error: Temporal refused the request ({err.status.name}): {err.message}"), file=sys.stderr)
            return EXIT_REJECTED
        what = "" if isinstance(err, ValueError) else f"{type(err).__name__}: "
        print(one_line(f"error: {what}{err}"), file=sys.stderr)
        return EXIT_REJECTED


def run() -> None:
    """Console-script entry. Leaves with os._exit: the SDK can crash during interpreter teardown
    (sdk-python issue 300), which would turn a correct answer into a signal-killed exit for scripts."""
    # Piped into `head`: stop quietly like any Unix tool instead of a BrokenPipeError traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
