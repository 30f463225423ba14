"""Encrypted payloads (codec.py) and the Web UI's codec server (starter/codec_server.py): unit tests of the
codec, the keyring file and the server's guards, and a sample run on the real dev server with the codec on
whose raw history holds no phone, address or person's name."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import codec
from codec import CodecError, EncryptionCodec, Keyring
from domain.models import SampleOrder
from starter.codec_server import CodecServer, ensure_token
from starter.devserver import free_port
from tests import factories as f
from tests.test_stack import Up, processes_using
from tests.workflow_env import awaiting, running_worker, to_testing, wait_for

PHONE = "13800138000"
ADDRESS = "浙江省义乌市稠州北路 88 号 3 幢"
NAME = "张秀英"
UI = "http://localhost:8233"
TOKEN = "test-token-0123456789"


def _key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text, ensure_ascii=False).encode())


def _order() -> dict[str, Any]:
    order = f.order("online")
    order["sampled_party"] |= {"contact": PHONE, "address": ADDRESS}
    return order


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({"k1": _key()}, "k1")


# --- the codec --------------------------------------------------------------------------------------------


async def test_round_trip_names_the_key_and_hides_the_data(keyring: Keyring) -> None:
    c = EncryptionCodec(keyring.keys, keyring.current)
    original = [_plain(PHONE), _plain(ADDRESS)]
    encoded = await c.encode(original)
    for p in encoded:
        assert p.metadata["encoding"] == b"binary/encrypted"
        assert p.metadata["encryption-key-id"] == b"k1"
        assert PHONE.encode() not in p.SerializeToString() and ADDRESS.encode() not in p.SerializeToString()
    assert encoded[0].data != (await c.encode([original[0]]))[0].data  # a fresh nonce each time
    assert await c.decode(encoded) == original


async def test_rotation_new_key_encodes_old_keys_still_decode() -> None:
    old, new = _key(), _key()
    before = await EncryptionCodec({"old": old}, "old").encode([_plain(PHONE)])
    rotated = EncryptionCodec({"old": old, "new": new}, "new")
    after = await rotated.encode([_plain(PHONE)])
    assert after[0].metadata["encryption-key-id"] == b"new"
    assert await rotated.decode([*before, *after]) == [_plain(PHONE), _plain(PHONE)]
    with pytest.raises(CodecError, match="key 'new', which is not in the keyring"):
        await EncryptionCodec({"old": old}, "old").decode(after)


async def test_tampered_ciphertext_or_swapped_key_id_is_refused() -> None:
    c = EncryptionCodec({"a": _key(), "b": _key()}, "a")
    [p] = await c.encode([_plain(PHONE)])
    tampered = Payload(metadata=p.metadata, data=p.data[:-1] + bytes([p.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="fails authentication"):
        await c.decode([tampered])
    swapped = Payload(metadata={**p.metadata, "encryption-key-id": b"b"}, data=p.data)
    with pytest.raises(CodecError, match="fails authentication"):
        await c.decode([swapped])
    with pytest.raises(CodecError, match="fails authentication"):
        await c.decode([Payload(metadata=p.metadata, data=p.data[:5])])


async def test_unencrypted_payloads_pass_through(keyring: Keyring) -> None:
    """Histories written before the codec was switched on stay readable."""
    plain = [_plain(PHONE), Payload(metadata={"encoding": b"binary/null"})]
    assert await EncryptionCodec(keyring.keys, keyring.current).decode(plain) == plain


async def test_the_data_converter_encrypts_models_and_failure_messages(keyring: Keyring) -> None:
    dc = codec.data_converter(keyring)
    order = SampleOrder.model_validate(_order())
    [payload] = await dc.encode([order])
    assert PHONE.encode() not in payload.SerializeToString()
    assert await dc.decode([payload], [SampleOrder]) == [order]

    failure = Failure()
    await dc.encode_failure(ApplicationError(f"cannot reach {PHONE}"), failure)
    assert PHONE.encode() not in failure.SerializeToString()
    assert PHONE in str(await dc.decode_failure(failure))


def test_keyring_file_created_rotated_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.json"
    first = codec.add_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    second = codec.add_key(path)
    keyring = codec.load_keyring(path)
    assert keyring.current == second and set(keyring.keys) == {first, second}
    assert all(len(k) == 32 for k in keyring.keys.values())

    secret = base64.b64encode(b"x" * 10).decode()
    for content, problem in [
        ("{", "cannot read"),
        (json.dumps({"a": base64.b64encode(_key()).decode()}), "expected"),
        (json.dumps({"current": "b", "a": base64.b64encode(_key()).decode()}), "current key 'b' is not in"),
        (json.dumps({"current": "a", "a": "not base64!"}), "key 'a' is not base64"),
        (json.dumps({"current": "a", "a": secret}), "key 'a': AES needs 16, 24 or 32 bytes, not 10"),
    ]:
        path.write_text(content)
        with pytest.raises(CodecError, match=problem) as err:
            codec.load_keyring(path)
        assert secret not in str(err.value)

    monkeypatch.delenv(codec.ENV, raising=False)
    assert codec.data_converter_from_env() is codec.spotcheck_data_converter
    monkeypatch.setenv(codec.ENV, str(tmp_path / "fresh.json"))
    codec.add_key(tmp_path / "fresh.json")
    assert isinstance(codec.data_converter_from_env().payload_codec, EncryptionCodec)


# --- the codec server -------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def codec_server(keyring: Keyring) -> AsyncIterator[CodecServer]:
    server = CodecServer(EncryptionCodec(keyring.keys, keyring.current), TOKEN, [UI])
    await server.start()
    yield server
    await server.stop()


async def _post(url: str, payloads: list[Payload], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    async with aiohttp.ClientSession() as http, http.post(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    ) as resp:
        return resp.status, await resp.json()


def _payloads(answer: Any) -> list[Payload]:
    return list(json_format.ParseDict(answer, Payloads()).payloads)


async def test_codec_server_decodes_only_with_the_token(codec_server: CodecServer, keyring: Keyring) -> None:
    encrypted = await EncryptionCodec(keyring.keys, keyring.current).encode([_plain(PHONE)])
    url = codec_server.url

    status, answer = await _post(f"{url}/decode", encrypted, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and _payloads(answer) == [_plain(PHONE)]
    # The Web UI's way: the token as the endpoint's first path segment.
    status, answer = await _post(f"{url}/{TOKEN}/decode", encrypted)
    assert status == 200 and _payloads(answer) == [_plain(PHONE)]
    status, answer = await _post(f"{url}/{TOKEN}/encode", [_plain(PHONE)])
    assert status == 200 and _payloads(answer)[0].metadata["encoding"] == b"binary/encrypted"

    for headers, path in [(None, "/decode"), ({"Authorization": "Bearer wrong"}, "/decode"),
                          ({"Authorization": TOKEN}, "/decode"), (None, "/wrong/decode"),
                          ({"Authorization": "Bearer wrong"}, f"/{TOKEN}/decode")]:
        status, answer = await _post(url + path, encrypted, headers)
        assert status == 401, (headers, path)
        assert PHONE not in json.dumps(answer)

    status, answer = await _post(f"{url}/decode", [Payload(metadata={"encoding": b"binary/encrypted",
                                                               "encryption-key-id": b"k1"}, data=b"junk")],
                                 {"Authorization": f"Bearer {TOKEN}"})
    assert status == 400 and "fails authentication" in answer["message"]


async def test_codec_server_cors_for_the_ui_origin_only(codec_server: CodecServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
    async with aiohttp.ClientSession() as http:
        async with http.options(f"{codec_server.url}/decode", headers={"Origin": UI, **preflight}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == UI
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            allowed = {h.strip() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"content-type", "x-namespace", "authorization"} <= allowed
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        async with http.options(f"{codec_server.url}/{TOKEN}/decode",
                                headers={"Origin": "http://evil.example", **preflight}) as resp:
            assert resp.status == 403
            assert not any(h.startswith("Access-Control-Allow") for h in resp.headers)
        async with http.post(f"{codec_server.url}/{TOKEN}/decode", data='{"payloads": []}',
                             headers={"Origin": "http://evil.example", "Content-Type": "application/json"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers  # the browser keeps the answer from that page


def test_token_file_is_private_and_kept(tmp_path: Path) -> None:
    token = ensure_token(tmp_path / "token")
    assert len(token) >= 32 and (tmp_path / "token").stat().st_mode & 0o777 == 0o600
    assert ensure_token(tmp_path / "token") == token


# --- on the real dev server -------------------------------------------------------------------------------


def _all_payloads(message: Message, skip: tuple[str, ...], path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload inside a protobuf message with its path, except inside messages of the types in `skip`."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            items = [(f"{field.name}[{k}]", v) for k, v in value.items()]
        elif field.is_repeated:
            items = [(f"{field.name}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(field.name, value)]
        for where, item in items:
            if item.DESCRIPTOR.full_name in skip:
                continue
            if item.DESCRIPTOR.full_name == Payload.DESCRIPTOR.full_name:
                yield f"{path}.{where}", item
            else:
                yield from _all_payloads(item, skip, f"{path}.{where}")


async def _raw_history(client: Client, workflow_id: str) -> bytes:
    raw, token = b"", b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history(GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id),
            next_page_token=token,
        ))
        raw += page.history.SerializeToString()
        token = page.next_page_token
        if not token:
            return raw


def _forms(text: str) -> list[bytes]:
    return [text.encode(), json.dumps(text).encode(), json.dumps(text).encode()[1:-1]]


@pytest.mark.integration
async def test_raw_history_on_the_dev_server_holds_no_personal_data(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, keyring: Keyring,
    codec_server: CodecServer,
) -> None:
    config = dev_env.client.config()
    client = await Client.connect(
        dev_env.client.service_client.config.target_host, namespace=dev_env.client.namespace,
        data_converter=codec.data_converter(keyring), interceptors=config["interceptors"],
    )
    order = _order()
    no = order["sample_no"]

    def named(decision: dict[str, Any]) -> dict[str, Any]:
        decision["actor"]["name"] = NAME
        return decision

    async with running_worker(client, pool, task_queue) as spot:
        handle = await to_testing(spot, order, named(f.sealed()))
        await spot.decide(no, named(f.report("fail")))
        await wait_for(handle, awaiting("result_delivery"))
        await spot.decide(no, named(f.delivered()))
        await wait_for(handle, awaiting("objection"))
        status = await spot.status(no)  # the codec client reads what the worker encrypted
        assert status.stage == "objection_window"
        await handle.terminate("test done")

    raw = await _raw_history(client, handle.id)
    assert b"binary/encrypted" in raw
    for secret in (PHONE, ADDRESS, NAME):
        for form in _forms(secret):
            assert form not in raw, f"{secret!r} in plain text in the server's history"

    # Every payload the codec can reach is encrypted; search attributes (never encoded) and headers aside.
    page = await client.workflow_service.get_workflow_execution_history(GetWorkflowExecutionHistoryRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id), maximum_page_size=1000,
    ))
    # Core's own marker data (a patch id, a local activity's attempt and times) is written past the codec.
    skip = ("temporal.api.common.v1.SearchAttributes", "temporal.api.common.v1.Header")
    found = list(_all_payloads(page.history, skip))
    plain = [where for where, p in found if p.metadata.get("encoding") != b"binary/encrypted"]
    assert all(re.search(r"marker_recorded_event_attributes\.details\[(patch-data|data)\]", w) for w in plain), plain
    payloads = [p for where, p in found if where not in plain]
    assert len(payloads) > 10
    # Both static summary and details are among them (the SDK encodes user metadata with the codec).
    started = page.history.events[0].workflow_execution_started_event_attributes
    assert page.history.events[0].user_metadata.HasField("details") and started.input.payloads

    decoded = b"".join(p.data for p in await EncryptionCodec(keyring.keys, keyring.current).decode(payloads))
    for secret in (PHONE, ADDRESS, NAME):
        assert secret.encode() in decoded

    # The codec server decodes the same payloads for an authorised caller, and for nobody else.
    status_code, answer = await _post(f"{codec_server.url}/decode", payloads, {"Authorization": f"Bearer {TOKEN}"})
    assert status_code == 200
    assert PHONE.encode() in b"".join(p.data for p in _payloads(answer))
    status_code, _ = await _post(f"{codec_server.url}/decode", payloads)
    assert status_code == 401


@pytest.mark.integration
async def test_up_runs_the_codec_server_for_the_web_ui(tmp_path: Path) -> None:
    """`spotcheck up` makes the keyring and the token (private files), serves the codec on a free port, tells
    the Web UI where it is, and says where the token lives; the codec answers the UI's origin only."""
    state = tmp_path / "state"
    ui_port = free_port()
    up = Up(state, free_port(), ui_port)
    try:
        await up.start()
        keys, token_file = state / "codec-keys.json", state / "codec-token"
        assert keys.stat().st_mode & 0o777 == 0o600 and token_file.stat().st_mode & 0o777 == 0o600
        endpoint = up.value("codec server").split()[0]
        assert str(token_file) in up.value("codec server") and up.value("codec keys").startswith(str(keys))
        token = token_file.read_text().strip()
        assert token not in up.output
        async with aiohttp.ClientSession() as http, http.get(f"http://localhost:{ui_port}/api/v1/settings") as resp:
            assert (await resp.json())["Codec"]["Endpoint"] == endpoint  # what the Web UI will call

        keyring = codec.load_keyring(keys)
        encrypted = await EncryptionCodec(keyring.keys, keyring.current).encode([_plain(PHONE)])
        assert (await _post(f"{endpoint}/decode", encrypted))[0] == 401
        status, answer = await _post(f"{endpoint}/{token}/decode", encrypted)
        assert status == 200 and _payloads(answer) == [_plain(PHONE)]
        async with aiohttp.ClientSession() as http, http.options(
            f"{endpoint}/decode", headers={"Origin": f"http://localhost:{ui_port}",
                                           "Access-Control-Request-Method": "POST"}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == f"http://localhost:{ui_port}"
    finally:
        code = await up.stop()
    assert code == 0, up.output
    assert processes_using(state) == []


def test_workflows_share_one_set_of_type_adapters() -> None:
    """Every payload converter the SDK makes (one per workflow instance) uses the process's type adapters:
    a model's adapter is built once, not on every start or replay."""
    from domain.models import SampleOrder
    from tests import factories as f

    first = codec.spotcheck_data_converter.payload_converter_class()
    second = codec.spotcheck_data_converter.payload_converter_class()
    order = SampleOrder.model_validate(f.order("online"))
    for converter in (first, second):
        [payload] = converter.to_payloads([order])
        assert converter.from_payloads([payload], [SampleOrder]) == [order]
    adapters = [c._type_adapter for conv in (first, second) for c in conv.converters.values()
                if hasattr(c, "_type_adapter")]
    assert len(adapters) == 2 and adapters[0] is adapters[1] is codec._TYPE_ADAPTERS
