"""Fuzzing the input side (issue 7, items 2 and 8): arbitrary JSON and mutations of valid orders and decisions
thrown at order validation (`starter.client.parse_order`), decision validation (`parse_decision` and
`decision_problem`), the client's send check (`sendable`) and the CLI's input parsing, in-process, no server.

Nothing but the documented kinds escapes (ValueError and its OrderError, DecisionRejected, InputError,
JSONDecodeError); every rejection is one printable line of at most 300 characters that names a field or the
input position and quotes no long piece of the input; whatever is accepted can be stored: its JSON dump works,
holds no NUL and encodes to UTF-8.

`make test` runs a bounded profile (about 200 examples a test). The long run:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz_inputs.py

The workflow side (signals and updates of every shape against a running sample) is fuzzed elsewhere."""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.bounds import MAX_MESSAGE, data_problem
from domain.decisions import (
    DecisionKind,
    decision_problem,
    delivery_date_problem,
    parse_decision,
    parse_payload,
)
from starter import cli
from starter.client import DecisionRejected, OrderError, SpotcheckClient, parse_order, sendable
from tests import factories as f

settings.register_profile(
    "bounded", max_examples=200, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
FUZZ = settings.get_profile("long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "bounded")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ORDERS = [f.order(channel) for channel in ("offline_production", "offline_circulation", "online", "livestream",
                                           "evaluative")]
DECISIONS = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((EXAMPLES / "decisions").glob("*.json"))] + [
    f.report("fail"),
    f.decision("sampling_record", "sealed", "sampler", data={
        "record_no": "CY-1", "sealed_at": "2025-10-20T09:30:00+08:00",
        "leads": [{"type": "false_advertising", "description": "页面宣称 20000mAh",
                   "evidence": [{"name": "page.png", "sha256": "a" * 64}]}]}),
    f.decision("result_delivery", "delivered", "case_officer", data={"delivered_on": "2025-10-20", "method": "EMS"}),
    f.decision("case_outcome", "penalty", "enforcement", data={"fine_amount": "50000.50", "heavy": True}),
    f.decision("recall_progress", "in_progress", "enterprise", data={"recovered": 120, "note": "第一期"}),
    f.decision("certificate_action", "suspended", "certification_body", data={"effective_on": "2025-11-01"}),
]

# --- strategies --------------------------------------------------------------------------------------

NASTY = ["\x00", "\ud800", "\udfff", "\ud83d", " ", "\n", "\x1b[31m", "中", "\u2028", "\ufeff", "'", '"', "\\", ":"]
texts = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from([*NASTY, "a", "1", "_", "-", "."]), max_size=30).map("".join),
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Lo"]), max_size=20),
    st.builds(lambda s, n: s * n, st.sampled_from(["x", "中", "\x00", "\ud800", "ab "]), st.integers(60, 70_000)),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 10**12, 10**12 + 1, -(10**12) - 1, 10**15, 10**4000, 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


def nest(depth: int, leaf: Any = 1, key: str | None = "a") -> Any:
    value = leaf
    for _ in range(depth):
        value = {key: value} if key is not None else [value]
    return value


deep = st.builds(nest, st.integers(1, 3000), scalars, st.sampled_from(["a", None]))
json_values = st.one_of(
    st.recursive(scalars, lambda children: st.lists(children, max_size=6) | st.dictionaries(texts, children, max_size=6),
                 max_leaves=25),
    deep,
    st.builds(lambda n, v: [v] * n, st.integers(150, 300), scalars),
)


def paths(value: Any, max_depth: int = 12) -> Iterator[tuple[Any, ...]]:
    """The places in a JSON value, down to `max_depth`."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path
        if len(path) < max_depth and isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend(((*path, key), child) for key, child in items)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutations(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> Any:
    """A valid seed with one to three places replaced by arbitrary JSON, deleted, or given an extra key."""
    value: Any = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(value))))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        target = _at(value, path)
        if action == "add" and isinstance(target, dict):
            target[draw(texts)] = draw(json_values)
        elif action == "add" and isinstance(target, list):
            target.append(draw(json_values))
        elif not path:
            value = draw(json_values)
        elif action == "delete":
            del _at(value, path[:-1])[path[-1]]
        else:
            _at(value, path[:-1])[path[-1]] = draw(json_values)
    return value


orders = st.one_of(json_values, mutations(ORDERS))
decisions = st.one_of(json_values, mutations(DECISIONS))

# --- what every answer must be --------------------------------------------------------------------------

FIELD = re.compile(r"^(malformed decision: |malformed data for [a-z_]+: |rejected: |error: )?"
                   r"(input|--data|data\.[^:]+|[^\s:][^:]*): \S")
# decision_problem's rules name the kind, outcome and role in words (their wording is relied on elsewhere)
RULES = ("not awaited: ", "unknown outcome ", "role ", "a purchased sample ")


def strings_in(value: Any, limit: int = 200_000) -> Iterator[str]:
    """The strings and keys of an input (the first `limit` nodes), to look for in a message."""
    stack = [value]
    seen = 0
    while stack and seen < limit:
        node = stack.pop()
        seen += 1
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for key, child in node.items():
                yield str(key)
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node[:500])


def check_message(message: str, raw: Any) -> None:
    assert len(message) <= MAX_MESSAGE, (len(message), message[:400])
    assert message.isprintable(), repr(message[:400])
    assert FIELD.match(message) or message.startswith(RULES), message
    for s in strings_in(raw):
        if len(s) > 80:
            for start in (0, len(s) // 2, len(s) - 81):
                assert s[start:start + 81] not in message, "a long piece of the input is echoed"


def check_storable(dumped: Any) -> None:
    text = json.dumps(dumped, ensure_ascii=False)
    assert "\x00" not in text and "\\u0000" not in text
    text.encode("utf-8")  # no lone surrogates


def check_order(raw: Any) -> None:
    try:
        order = parse_order(raw)
    except OrderError as err:
        assert err.problems
        check_message(str(err), raw)
        assert err.sample_no is None or re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$", err.sample_no)
    else:
        check_storable(order.model_dump(mode="json"))


def check_decision(raw: Any, purchased: bool) -> None:
    decision, error = parse_decision(raw)
    if decision is None:
        assert error is not None
        check_message(error, raw)
        return
    problem = decision_problem(decision, [decision.kind], purchased=purchased)
    if problem is not None:
        check_message(problem, raw)
        return
    check_storable(decision.model_dump(mode="json"))
    payload = parse_payload(decision)
    if payload is not None:
        check_storable(payload.model_dump(mode="json"))


# --- the seeds are valid -----------------------------------------------------------------------------------


def test_the_seeds_are_accepted() -> None:
    for order in ORDERS:
        check_storable(parse_order(order).model_dump(mode="json"))
    for raw in DECISIONS:
        decision, error = parse_decision(raw)
        assert decision is not None, error
        assert decision_problem(decision, [decision.kind]) is None, raw


# --- fuzzing -------------------------------------------------------------------------------------------


@FUZZ
@given(orders)
def test_fuzz_order_validation(raw: Any) -> None:
    check_order(raw)


@FUZZ
@given(decisions, st.booleans())
def test_fuzz_decision_validation(raw: Any, purchased: bool) -> None:
    check_decision(raw, purchased)


@FUZZ
@given(st.dictionaries(texts, json_values, max_size=6))
def test_fuzz_data_bounds(data: dict[str, Any]) -> None:
    """Any `data` either passes the bounds and dumps cleanly, or is refused naming where."""
    problem = data_problem(data)
    if problem is None:
        check_storable(data)
        assert len(json.dumps(data, ensure_ascii=False).encode()) <= 64 * 1024
    else:
        check_message(f"data: {problem}", data)


@FUZZ
@given(decisions)
def test_fuzz_client_send_check(raw: Any) -> None:
    """The client sends whatever can be encoded (the workflow judges it and records the attempt) and refuses
    the rest in one line naming the input."""
    try:
        payload = sendable(raw)
    except DecisionRejected as err:
        check_message(err.reason, raw)
        assert err.reason.startswith("input: ")
    else:
        assert payload is raw


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):
        return "[" * 5000


def _cuts(text: str) -> st.SearchStrategy[str]:
    return st.integers(0, len(text)).map(lambda n: text[:n])


file_texts = st.one_of(
    orders.map(_json_text),
    st.lists(orders.map(_json_text), max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
    st.lists(orders.map(lambda o: json.dumps(o, ensure_ascii=True) if _json_text(o)[0] != "[" else "{}"),
             max_size=4).map("\n".join),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(100, 200_000)),
    st.builds(lambda n: '{"sample_no": ' + "9" * n + "}", st.integers(4000, 20_000)),
    st.just(json.dumps(ORDERS[0], ensure_ascii=False)).flatmap(_cuts),
    st.text(max_size=200),
)


@FUZZ
@given(st.one_of(file_texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=300)))
def test_fuzz_cli_order_files(content: bytes) -> None:
    """`spotcheck sample start -`: whatever the input, either orders (each then refused in one line naming its
    field, or accepted) or one line naming the input position."""
    stdin = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8")
    with mock.patch.object(sys, "stdin", stdin):
        try:
            raws = cli._read_orders("-")
        except ValueError as err:
            message = cli.input_problem(err)
            assert message.startswith("input: ")
            check_message(message, content.decode("utf-8", "replace"))
            return
    for index, raw in enumerate(raws):
        refusal = cli._refusal(index, raw)
        if refusal is not None:
            assert refusal.index == index
            check_message(refusal.error, raw)


def _args(**overrides: Any) -> argparse.Namespace:
    base = {"sample_no": "ZJ2025-ON-0003", "kind": "lab_report", "outcome": "pass", "role": "lab", "actor": "LAB-1",
            "actor_name": None, "organisation": None, "reason": None, "request_id": None, "evidence": None,
            "data": None}
    return argparse.Namespace(**{**base, **overrides})


argv_texts = texts.map(lambda s: s.replace("\x00", ""))  # a command line holds no NUL


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    "sample_no": argv_texts, "kind": st.one_of(argv_texts, st.sampled_from([k.value for k in DecisionKind])),
    "outcome": argv_texts, "role": argv_texts, "actor": argv_texts, "actor_name": argv_texts,
    "organisation": argv_texts, "reason": argv_texts, "request_id": argv_texts,
    "evidence": st.lists(argv_texts, max_size=3),
    "data": st.one_of(json_values.map(_json_text), argv_texts, st.just(json.dumps(f.FAILED_ITEMS[0]))),
}))
def test_fuzz_cli_decide_arguments(overrides: dict[str, Any]) -> None:
    """`spotcheck decide`'s arguments: refused before anything is sent in one line naming the field, or a
    decision that the client can send."""
    args = _args(**overrides)
    problem = cli._decide_problem(args)
    if problem is not None:
        check_message(problem, list(overrides.values()))
        return
    try:
        data = cli._decision_data(args.data)
    except cli.InputError as err:
        assert str(err).startswith("--data: ")
        check_message(str(err), args.data)
        return
    assert isinstance(data, dict)


# --- the documented forms of a CLI error -------------------------------------------------------------


def _start(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | str) -> tuple[int, str]:
    path = tmp_path / "orders.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    code = cli.main(["sample", "start", str(path), "--address", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


@pytest.mark.parametrize(("content", "expected"), [
    ("[" * 100_000, "error: input: nested too deeply"),
    ('{"sample_no": ' + "9" * 5000 + "}", "error: input: number too large"),
    (b'{"sample_no": "\xff\xfe"}', "error: input: not valid UTF-8 at byte 15"),
    ('{"sample_no": "T-1",\n  "region": 33010\n  "x": 1}', "error: input: not valid JSON at line 3 column 3"),
    ('{"a": 1}\n{"b": 2}\n{"c": \n', "error: input: not valid JSON at line 3 column 7"),
    ("", "error: input: no orders"),
    ("42", "refused the order: input: an order must be a JSON object, not a number"),
    ('"an order"', "refused the order: input: an order must be a JSON object, not a string"),
    ('{"sample_no": "T-1", "product": {"name": "\\ud800"}}', "product.name: Input should be a valid string"),
    ('{"sample_no": "' + "x" * 70_000 + '"}', "refused the order: sample_no: String should match pattern"),
], ids=["deep", "huge-int", "invalid-utf8", "bad-json", "bad-json-line", "empty", "number", "string",
        "lone-surrogate", "huge-string"])
def test_cli_order_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | str,
                                       expected: str) -> None:
    code, err = _start(capsys, tmp_path, content)
    assert code == 1
    assert expected in err, err
    for line in err.splitlines():
        assert len(line) <= MAX_MESSAGE + 40, line


def test_cli_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["sample", "start", str(tmp_path / "nope.json")]) == 1
    assert capsys.readouterr().err.strip() == "error: input: cannot read: No such file or directory"


class _OfflineClient:
    """Starts nothing: a well-formed order 'starts' as its workflow id, a malformed one is refused."""

    start_samples = SpotcheckClient.start_samples

    async def start_sample(self, raw: Any) -> Any:
        return SimpleNamespace(id=parse_order(raw).workflow_id)


def test_cli_array_with_one_bad_order_starts_the_others(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good, bad, other = f.order("online"), f.order("online", region="33"), f.order("offline_production")
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([good, bad, other], ensure_ascii=False), encoding="utf-8")

    async def offline(*_: Any) -> Any:
        return _OfflineClient()

    with mock.patch.object(cli, "_connect", offline):
        code = cli.main(["sample", "start", str(path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.split() == ["started", f"sample-{good['sample_no']}", "started", f"sample-{other['sample_no']}"]
    assert err.strip() == (f"refused order 2 of 3 ({bad['sample_no']}): region: String should match pattern "
                           "'^[0-9]{6}$'")


@pytest.mark.parametrize(("argv", "expected"), [
    (["lab_report", "maybe", "--role", "lab"], "rejected: outcome: unknown outcome 'maybe' for lab_report; "
                                               "allowed: pass, fail"),
    (["lab_report", "pass", "--role", "lab", "--data", "[1, 2]"], "rejected: --data: must be a JSON object, not list"),
    (["lab_report", "pass", "--role", "lab", "--data", "{'a': 1}"],
     "rejected: --data: not valid JSON at line 1 column 2 (Expecting property name enclosed in double quotes)"),
    (["lab_report", "pass", "--role", "lab", "--data", "[" * 100_000], "rejected: --data: nested too deeply"),
    (["lab_report", "pass", "--role", "lab", "--data", '{"n": ' + "1" * 5000 + "}"],
     "rejected: --data: number too large"),
    (["lab_report", "pass", "--role", "lab", "--reason", "bad \udcff byte"],
     "rejected: reason: must not contain lone surrogates"),
    (["lab_report", "pass", "--role", "lab", "--request-id", "r" * 5000], "rejected: request_id: longer than 128"),
], ids=["outcome", "data-array", "data-syntax", "data-deep", "data-huge-int", "surrogate",
        "long-request-id"])
def test_cli_decide_errors_are_one_line_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    kind, outcome, *options = argv
    code = cli.main(["decide", "ZJ2025-ON-0003", kind, outcome, "--actor", "A-1", *options,
                     "--address", "127.0.0.1:1"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith(expected), err
    assert "\n" not in err and len(err) <= MAX_MESSAGE + 20


def test_cli_other_failures_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No server: still one line and exit code 1, no traceback."""
    path = tmp_path / "order.json"
    path.write_text(json.dumps(f.order("online"), ensure_ascii=False), encoding="utf-8")
    assert cli.main(["sample", "start", str(path), "--address", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


# --- the client's send check -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("lab_report pass", "input: a decision must be a JSON object, not a string"),
    ([f.report("pass")], "input: a decision must be a JSON object, not an array"),
    ({**f.report("pass"), "reason": "\ud800"}, "input: must not contain lone surrogates"),
    ({**f.report("pass"), "data": nest(3000)}, "input: nested too deeply"),
    ({**f.report("pass"), "data": {"x": "x" * 600_000}}, "input: 600"),
], ids=["string", "array", "surrogate", "deep", "huge"])
def test_client_refuses_what_cannot_be_sent(raw: Any, expected: str) -> None:
    with pytest.raises(DecisionRejected) as info:
        sendable(raw)
    assert info.value.reason.startswith(expected), info.value.reason
    assert len(info.value.reason) <= MAX_MESSAGE


def test_client_sends_malformed_but_encodable_decisions() -> None:
    """The workflow judges them and records the attempt: the client does not filter them out."""
    for raw in ({"kind": "coffee"}, {**f.report("pass"), "data": {"x": "\x00"}}, {**f.report("pass"), "n": 10**50}):
        assert sendable(raw) is raw


def test_delivery_date_problem_names_the_sample_dates() -> None:
    sampled, today = date(2025, 10, 1), date(2025, 10, 20)
    assert delivery_date_problem(date(2025, 10, 5), sampled, today) is None
    assert delivery_date_problem(sampled, sampled, today) is None
    assert delivery_date_problem(today, sampled, today) is None
    for wrong in (date(2025, 9, 30), date(2025, 10, 21), date(2100, 12, 31)):
        assert delivery_date_problem(wrong, sampled, today) == (
            "data.delivered_on: must lie between the sampling date 2025-10-01 and today 2025-10-20")
