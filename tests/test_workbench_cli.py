"""The CLI keeps pace with the workbench (issue 11): users and API tokens, choices that name the valid values,
the inbox's awaited kind, branches in `sample show`, one-line errors."""

from __future__ import annotations

import asyncio
import io
import uuid

import asyncpg
import pytest

from starter import cli
from starter.users import UserStore


def run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("argv", "named"), [
    (["decide", "S-1", "coffee_break", "taken", "--role", "lab"], "argument kind: invalid choice: 'coffee_break'"),
    (["decide", "S-1", "lab_report", "pass", "--role", "boss"], "argument --role: invalid choice: 'boss'"),
    (["inbox", "--role", "labb"], "argument --role: invalid choice: 'labb'"),
    (["inbox", "--kind", "lab_reprot"], "argument --kind: invalid choice: 'lab_reprot'"),
    (["list", "--stage", "tested"], "argument --stage: invalid choice: 'tested'"),
])
def test_unknown_roles_stages_and_kinds_are_errors_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and named in err
    assert "'lab'" in err or "'testing'" in err or "'lab_report'" in err  # the valid values are listed


def test_an_unreachable_server_and_a_missing_role_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPOTCHECK_API_TOKEN", raising=False)
    code, _, err = run(["inbox", "--role", "lab", "--address", "127.0.0.1:1"], capsys, monkeypatch)
    assert code == 1 and err.strip() == "error: server: cannot reach Temporal at 127.0.0.1:1 (is `spotcheck up` running?)"
    code, _, err = run(["inbox"], capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1 and "--role: required without an API token" in err
    code, _, err = run(["inbox", "--token", "spt_x", "--server", "http://127.0.0.1:1"], capsys, monkeypatch)
    assert code == 1 and err.count("\n") == 1 and "server: cannot reach http://127.0.0.1:1" in err


async def test_users_add_list_disable_and_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, pool: asyncpg.Pool
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    lab, firm = f"lab-{uuid.uuid4().hex[:6]}", f"firm-{uuid.uuid4().hex[:6]}"

    async def spotcheck(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        return await asyncio.to_thread(run, list(argv), capsys, monkeypatch, stdin)  # main runs its own loop

    assert (await spotcheck("users", "add", lab, "--name", "检验员", "--role", "lab", "--region", "330100",
                            stdin="a long password\n"))[0] == 0
    code, _, err = await spotcheck("users", "add", lab, "--role", "lab", "--region", "330100", stdin="another one\n")
    assert code == 1 and "exists already" in err
    code, _, err = await spotcheck("users", "add", firm, "--role", "enterprise", stdin="a long password\n")
    assert code == 1 and err.startswith("error: credit_code:")
    code, _, err = await spotcheck("users", "add", firm, "--role", "lab", "--region", "33", stdin="a long password\n")
    assert code == 1 and "regions.0" in err
    code, _, err = await spotcheck("users", "add", firm, "--role", "lab", "--region", "330100", stdin="short\n")
    assert code == 1 and err.strip() == "error: password: 8 to 256 characters"
    code, out, _ = await spotcheck("users", "list")
    assert code == 0 and lab in out and "检验员" in out
    code, token, _ = await spotcheck("users", "token", lab)
    assert code == 0 and token.startswith("spt_")
    store = UserStore(pool)
    assert (await store.by_token(token.strip())) is not None
    assert (await store.sign_in(lab, "a long password")) is not None
    assert (await spotcheck("users", "disable", lab))[0] == 0
    assert await store.by_token(token.strip()) is None and await store.sign_in(lab, "a long password") is None
