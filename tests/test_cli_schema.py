"""The offline parts of the `spotcheck` CLI: printing schemas and reading order files. No server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starter.cli import _read_orders, main

ORDERS = Path(__file__).resolve().parent.parent / "examples" / "orders"


def _schema(capsys: pytest.CaptureFixture[str], model: str) -> dict:
    code = main(["schema", model])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_schema_sample_order(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _schema(capsys, "sample-order")
    assert schema["title"] == "SampleOrder"
    assert "sample_no" in schema["properties"]
    assert "channel" in schema["properties"]
    assert "sample_no" in schema["required"]


def test_schema_decision(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _schema(capsys, "decision")
    assert schema["title"] == "Decision"
    for field in ("kind", "outcome", "actor", "request_id"):
        assert field in schema["properties"]
        assert field in schema["required"]


def test_schema_keeps_chinese_readable(capsys: pytest.CaptureFixture[str]) -> None:
    main(["schema", "sample-order"])
    out = capsys.readouterr().out
    assert "抽样单编号" in out  # ensure_ascii=False: descriptions stay legible


def test_schema_unknown_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schema", "no-such-model"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _order(sample_no: str) -> dict:
    data = json.loads((ORDERS / "offline_production.json").read_text(encoding="utf-8"))
    data["sample_no"] = sample_no
    return data


def test_read_single_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_order("T-0001"), ensure_ascii=False, indent=2), encoding="utf-8")
    orders = _read_orders(str(path))
    assert [o["sample_no"] for o in orders] == ["T-0001"]


def test_read_array(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text(json.dumps([_order("T-0001"), _order("T-0002")], ensure_ascii=False, indent=2),
                    encoding="utf-8")
    assert [o["sample_no"] for o in _read_orders(str(path))] == ["T-0001", "T-0002"]


def test_read_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    lines = [json.dumps(_order(f"T-000{i}"), ensure_ascii=False) for i in range(1, 4)]
    path.write_text("\n".join(lines[:2]) + "\n\n" + lines[2] + "\n", encoding="utf-8")
    assert [o["sample_no"] for o in _read_orders(str(path))] == ["T-0001", "T-0002", "T-0003"]


def test_read_example_batch() -> None:
    orders = _read_orders(str(ORDERS / "batch.jsonl"))
    assert len(orders) == 3
    assert all(o["channel"] == "online" for o in orders)


def test_read_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  \n", encoding="utf-8")
    assert _read_orders(str(path)) == []


def test_read_malformed_file_raises_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"sample_no": "T-1",\n', encoding="utf-8")
    with pytest.raises(json.JSONDecodeError):
        _read_orders(str(path))


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        _read_orders(str(tmp_path / "nope.json"))


@pytest.mark.parametrize("kind", ["certificate_action", "lead_outcome", "recall_progress", "lab_report"])
def test_schema_of_a_decision_kind_shows_its_data_roles_and_workflow(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """The payloads branches take are in the one table: `spotcheck schema <kind>` shows them."""
    from domain.branches import BRANCH_OF_KIND, BRANCHES

    schema = _schema(capsys, kind)
    assert schema["kind"] == kind
    assert schema["data"]["properties"], "the kind's payload fields are listed"
    branch = BRANCH_OF_KIND.get(kind)
    assert schema["taken_by"] == (BRANCHES[branch].workflow if branch else "SampleWorkflow")
    assert all(roles for roles in schema["outcomes"].values())


@pytest.mark.parametrize(("command", "what"), [
    (["outbox"], "the outbox is read"),
    (["users", "list"], "users are kept"),
    (["pool", "list"], "the planning data are kept"),
    (["report", "plan", "P-1", "-o", "report.html"], "the report is read"),
    (["notice", "show", "X-1"], "notices are read"),
])
def test_a_database_command_without_database_url_says_so_and_exits_2(
    command: list[str], what: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    assert capsys.readouterr().err == (f"error: DATABASE_URL is not set: {what} from PostgreSQL "
                                       "(`spotcheck up` prints its address)\n")
    assert not list(tmp_path.iterdir())  # nothing written
