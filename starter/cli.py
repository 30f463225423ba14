"""`spotcheck`: start samples, send decisions, show and list samples, bring up the embedded stack.
Output is for people by default; `--json` for scripts. A rejected decision exits non-zero with the reason."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Coroutine
from typing import Any

from domain.decisions import DecisionKind

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Temporal frontend (default: $TEMPORAL_ADDRESS or localhost:7233)")
    p.add_argument("--namespace", help="Temporal namespace (default: $TEMPORAL_NAMESPACE or default)")
    p.add_argument("--task-queue", dest="task_queue", help="task queue (default: spotcheck)")


async def _connect(args: argparse.Namespace) -> Any:
    from starter.client import SpotcheckClient

    return await SpotcheckClient.connect(args.address, args.namespace, args.task_queue)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# --- sample start ------------------------------------------------------------------------------


def _read_orders(source: str) -> list[Any]:
    text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        # JSON lines: one order a line
        return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _sample_start(args: argparse.Namespace) -> int:
    try:
        orders = _read_orders(args.file)
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: cannot read orders from {args.file}: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.time_scale:
        orders = [{**o, "time_scale": args.time_scale} if isinstance(o, dict) else o for o in orders]
    client = await _connect(args)
    results = await client.start_samples(orders)
    if args.json:
        _print_json([r.__dict__ for r in results])
    for r in results:
        if not args.json:
            if r.ok:
                print(f"started {r.workflow_id}")
            else:
                print(f"refused {r.sample_no or '(no sample_no)'}: {r.error}", file=sys.stderr)
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_REJECTED


# --- sample show -------------------------------------------------------------------------------


async def _sample_show(args: argparse.Namespace) -> int:
    from temporalio.service import RPCError

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
        flag = "  OVERDUE" if w.overdue else ""
        print(f"awaiting {w.kind} from {'/'.join(w.roles)} by {w.due.date()} ({w.title}){flag}")
    if status.failed_items:
        print("failed items:")
        for item in status.failed_items:
            print(f"  - {item.get('item')} ({item.get('standard')})")
    print("timeline:")
    for e in status.timeline:
        print(f"  {e.at:%Y-%m-%d %H:%M}  [{e.stage}] {e.text}")
    return EXIT_OK


# --- decide ------------------------------------------------------------------------------------


async def _decide(args: argparse.Namespace) -> int:
    from starter.client import DecisionRejected

    try:
        data = json.loads(args.data) if args.data else {}
    except json.JSONDecodeError as err:
        print(f"rejected: --data is not JSON: {err}", file=sys.stderr)
        return EXIT_USAGE
    evidence = []
    for item in args.evidence or []:
        name, _, sha = item.partition("=")
        evidence.append({"name": name, "sha256": sha})
    actor: dict[str, Any] = {"id": args.actor, "role": args.role}
    if args.actor_name:
        actor["name"] = args.actor_name
    decision = {
        "kind": args.kind,
        "outcome": args.outcome,
        "actor": actor,
        "request_id": args.request_id or str(uuid.uuid4()),
        "reason": args.reason,
        "evidence": evidence,
        "data": data,
    }
    client = await _connect(args)
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
    query = list_query(stage=args.stage, region=args.region, overdue=args.overdue,
                       role=getattr(args, "role", None), extra=args.query)
    rows = await client.list_samples(query, limit=args.limit)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no samples")
        return EXIT_OK
    print(f"{'SAMPLE':<24} {'STAGE':<18} {'VERDICT':<17} {'REGION':<7} {'AWAITING':<22} {'NEXT DEADLINE':<20} OVERDUE")
    for r in rows:
        print(f"{r['sample_no'] or r['workflow_id']:<24} {r['stage'] or '':<18} {r['verdict'] or '':<17} "
              f"{r['region'] or '':<7} {','.join(r['awaiting_role']):<22} {(r['next_deadline'] or '')[:19]:<20} "
              f"{'yes' if r['overdue'] else ''}")
    return EXIT_OK


# --- schema ------------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    """`sample-order`, `decision`, or a decision kind: what its `data` holds, who may decide which outcome,
    and the workflow that takes it (the sample, or its branch from domain/branches.py)."""
    from pydantic import BaseModel

    from domain.branches import BRANCH_OF_KIND, BRANCHES
    from domain.decisions import PAYLOADS, ROLE_MATRIX, Decision
    from domain.models import SampleOrder

    models: dict[str, type[BaseModel]] = {"sample-order": SampleOrder, "decision": Decision}
    if args.model in models:
        _print_json(models[args.model].model_json_schema())
        return EXIT_OK
    kind = DecisionKind(args.model)
    branch = BRANCH_OF_KIND.get(kind.value)
    payload = PAYLOADS.get(kind)
    _print_json({
        "kind": kind.value,
        "taken_by": BRANCHES[branch].workflow if branch else "SampleWorkflow",
        "branch": branch.value if branch else None,
        "outcomes": {o: sorted(r.value for r in roles) for o, roles in ROLE_MATRIX[kind].items()},
        "data": payload.model_json_schema() if payload else {"type": "object", "description": "no fields defined"},
    })
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
    decide.add_argument("kind")
    decide.add_argument("outcome")
    decide.add_argument("--actor", required=True, help="actor id")
    decide.add_argument("--actor-name")
    decide.add_argument("--role", required=True)
    decide.add_argument("--reason")
    decide.add_argument("--data", help="JSON payload, e.g. the lab report")
    decide.add_argument("--evidence", action="append", metavar="NAME=SHA256")
    decide.add_argument("--request-id", help="idempotency key (default: a new one)")
    decide.add_argument("--signal", action="store_true", help="send as a signal: no receipt")
    decide.add_argument("--json", action="store_true")
    _client_options(decide)
    decide.set_defaults(func=_decide)

    for name, help_text in (("list", "list and filter samples"), ("inbox", "decisions awaited from a role")):
        lst = sub.add_parser(name, help=help_text)
        if name == "inbox":
            lst.add_argument("--role", required=True)
        lst.add_argument("--stage")
        lst.add_argument("--region")
        lst.add_argument("--overdue", action="store_true")
        lst.add_argument("--query", help="extra visibility query, e.g. \"Channel = 'online'\"")
        lst.add_argument("--limit", type=int, default=200)
        lst.add_argument("--json", action="store_true")
        _client_options(lst)
        lst.set_defaults(func=_list)

    schema = sub.add_parser("schema", help="print a JSON schema: an order, a decision, or a decision kind's data")
    schema.add_argument("model", choices=["sample-order", "decision", *(k.value for k in DecisionKind)])
    schema.set_defaults(func=_schema)

    try:
        from starter import stack
    except ImportError:  # the stack module is optional for a client-only install
        stack = None  # type: ignore[assignment]
    if stack is not None:
        stack.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    if isinstance(result, Coroutine):
        try:
            return int(asyncio.run(result))
        except KeyboardInterrupt:
            return 130
    return int(result)


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
