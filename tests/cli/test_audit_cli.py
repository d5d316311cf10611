"""`clavis-mcp audit`, `audit verify`, `audit stats`, against a real vault and log."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import AuditLog, Vault
from tests.conftest import SECRET

EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture
def runner(home: Path) -> CliRunner:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    return CliRunner()


@pytest.fixture
def opened(runner: CliRunner, home: Path) -> Iterator[Vault]:
    vault = Vault.open(home)
    yield vault
    vault.close()


@pytest.fixture
def log(opened: Vault) -> AuditLog:
    return AuditLog.for_vault(opened)


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, ["audit", *args], env={"COLUMNS": "200"})


def fill(log: AuditLog) -> dict[str, str]:
    return {
        "a": log.append(source="mcp", service="openai", method="GET", scheme="https", host="api.openai.com",
                        port=443, path="/v1/models", status=200, decision="injected", redactions=1),
        "b": log.append(source="ci-bot", service="github", method="POST", scheme="https", host="api.github.com",
                        port=443, path="/repos", status=403, decision="refused", reason="method POST not allowed"),
        "c": log.append(source="mcp", service="github", action="reveal", decision="revealed"),
        "d": log.append(source="ci-bot", service="openai", method="GET", scheme="https", host="api.openai.com",
                        port=443, path="/v1/chat", status=429, decision="injected"),
    }  # fmt: skip


def test_review_shows_recent_records_as_a_table_newest_last(runner: CliRunner, log: AuditLog) -> None:
    ids = fill(log)
    result = run(runner)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:7] == ["time", "┃", "agent", "┃", "service", "┃", "request"]
    rows = {key: next(i for i, line in enumerate(lines) if ids[key] in line) for key in ids}
    assert rows["a"] < rows["b"] < rows["c"] < rows["d"]
    assert "GET api.openai.com/v1/models" in lines[rows["a"]] and "injected" in lines[rows["a"]]
    assert "method POST not allowed" in lines[rows["b"]] and "reveal" in lines[rows["c"]]


def test_review_shows_what_agents_sent_as_inert_text(runner: CliRunner, log: AuditLog) -> None:
    log.append(source="bot\x1b]0;owned\x07", path="/x\x1b[2J", reason="[bold red]fake[/bold red]", decision="refused")
    result = run(runner)
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "bot\\x1b]0;owned\\x07" in result.stdout and "\\x1b[2J" in result.stdout
    assert "[bold red]fake[/bold red]" in result.stdout


FILTERS = [
    ("no filter", [], "abcd"),
    ("service", ["--service", "openai"], "ad"),
    ("agent", ["--agent", "ci-bot"], "bd"),
    ("decision", ["--decision", "refused"], "b"),
    ("status code", ["--status", "429"], "d"),
    ("status class", ["--status", "4xx"], "bd"),
    ("host", ["--host", "api.github.com"], "b"),
    ("since a duration", ["--since", "1h"], "abcd"),
    ("until a duration", ["--until", "1h"], ""),
    ("since today", ["--since", "today", "--service", "github"], "bc"),
    ("until an ISO date", ["--until", "2000-01-01"], ""),
    ("since an ISO time", ["--since", "2000-01-01T00:00:00Z"], "abcd"),
    ("limit", ["--limit", "2"], "cd"),
    ("limit zero is all", ["--limit", "0"], "abcd"),
    ("filters combine", ["--service", "openai", "--agent", "ci-bot", "--status", "4xx"], "d"),
]


@pytest.mark.parametrize(("args", "expected"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_json_lines_honour_the_filters(runner: CliRunner, log: AuditLog, args: list[str], expected: str) -> None:
    ids = fill(log)
    result = run(runner, "--json", *args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    names = {v: k for k, v in ids.items()}
    assert "".join(names[r["id"]] for r in records) == expected
    assert all("mac" in r and "seq" in r for r in records)


def test_a_cut_listing_says_how_many_matched(runner: CliRunner, log: AuditLog) -> None:
    fill(log)
    result = run(runner, "--limit", "1")
    assert "showing the newest 1 of 4 matching records; --limit 0 shows all" in result.stderr


BAD = [
    (["--since", "last tuesday"], "cannot read the time 'last tuesday'"),
    (["--until", "1y"], "cannot read the time '1y'"),
    (["--status", "6xx"], "cannot read the status '6xx'"),
    (["--limit", "-1"], "Invalid value for '-n' / '--limit'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=["since", "until", "status", "limit"])
def test_bad_filters_get_a_clear_error(runner: CliRunner, log: AuditLog, args: list[str], message: str) -> None:
    result = run(runner, *args)
    assert result.exit_code != 0
    assert message in result.output


def test_review_without_a_home_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(main, ["audit"])
    assert result.exit_code == 1 and "clavis-mcp init" in result.output


def test_verify_says_ok_with_the_count(runner: CliRunner, log: AuditLog) -> None:
    fill(log)
    result = run(runner, "verify")
    assert result.exit_code == 0
    assert result.stdout.startswith("OK: 4 records")


def test_verify_points_at_the_first_broken_record_and_fails(runner: CliRunner, log: AuditLog, home: Path) -> None:
    fill(log)
    lines = (home / "audit.jsonl").read_text().splitlines(keepends=True)
    (home / "audit.jsonl").write_text(lines[0] + lines[1].replace("403", "200") + "".join(lines[2:]))
    result = run(runner, "verify")
    assert result.exit_code == 1
    assert result.stdout.startswith("BROKEN at audit.jsonl line 2: record 2")
    report = json.loads(run(runner, "verify", "--json").stdout)
    assert report == {
        "ok": False,
        "count": 1,
        "files": 1,
        "problem": report["problem"],
        "location": "audit.jsonl line 2",
        "losses": [],
        "repairs": 0,
        "reanchored": [],
        "torn_tail": None,
    }


def wipe(home: Path) -> None:
    (home / "audit.jsonl").unlink()
    (home / "audit.jsonl.lock").unlink()


def test_verify_after_the_log_and_its_lock_file_were_deleted_is_broken(
    runner: CliRunner, log: AuditLog, home: Path
) -> None:
    fill(log)
    log.close()
    wipe(home)
    result = run(runner, "verify")
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "BROKEN at end of log: the vault says at least 4 records existed, but the log has no records"
    )


def test_after_a_wipe_cli_verbs_refuse_to_append_and_say_how_to_resume(
    runner: CliRunner, log: AuditLog, home: Path
) -> None:
    fill(log)
    wipe(home)
    result = runner.invoke(main, ["agent", "add", "ci-bot"])
    assert result.exit_code == 1
    assert "has lost records" in result.output and "clavis-mcp audit acknowledge-loss" in result.output


def test_acknowledge_loss_records_the_loss_then_verify_reports_it(runner: CliRunner, log: AuditLog, home: Path) -> None:
    fill(log)
    log.close()
    wipe(home)
    result = run(runner, "acknowledge-loss", "--yes")
    assert result.exit_code == 0, result.output
    assert "records 1-4 are gone from the end of the log" in result.stdout
    assert "recorded the loss of records 1-4 as record 5" in result.stdout
    verified = run(runner, "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.strip().endswith("intact; acknowledged loss of records 1-4")
    assert json.loads(run(runner, "verify", "--json").stdout)["losses"] == [[1, 4]]
    [record] = [json.loads(line) for line in run(runner, "--json").stdout.splitlines()]
    assert (record["source"], record["decision"], record["lost_from"]) == ("cli", "lost", 1)


def test_acknowledge_loss_asks_before_writing(runner: CliRunner, log: AuditLog, home: Path) -> None:
    fill(log)
    log.close()
    wipe(home)
    result = runner.invoke(main, ["audit", "acknowledge-loss"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert not (home / "audit.jsonl").exists() or (home / "audit.jsonl").read_bytes() == b""


def test_acknowledge_loss_with_nothing_lost_changes_nothing(runner: CliRunner, log: AuditLog, home: Path) -> None:
    fill(log)
    before = (home / "audit.jsonl").read_bytes()
    result = run(runner, "acknowledge-loss", "--yes")
    assert result.exit_code == 0 and result.stdout.startswith("nothing to acknowledge")
    assert (home / "audit.jsonl").read_bytes() == before


def test_stats_count_calls_per_service_agent_status_and_decision(runner: CliRunner, log: AuditLog) -> None:
    fill(log)
    summary = json.loads(run(runner, "stats", "--json", "--since", "1d").stdout)
    assert summary["total"] == 4
    assert summary["by_service"] == {"openai": 2, "github": 2}
    assert summary["by_agent"] == {"ci-bot": 2, "mcp": 2}
    assert summary["by_status"] == {"(none)": 1, "200": 1, "403": 1, "429": 1}
    assert summary["by_decision"] == {"injected": 2, "refused": 1, "revealed": 1}
    assert json.loads(run(runner, "stats", "--json", "--agent", "mcp").stdout)["total"] == 2
    table = run(runner, "stats")
    assert table.exit_code == 0 and "4 records from" in table.stdout and "by service" in table.stdout


def test_adding_and_removing_a_service_is_audited_without_its_secret(runner: CliRunner, home: Path) -> None:
    added = runner.invoke(main, ["add", "openai", "--host", "api.openai.com", "--secret-stdin"], input=SECRET)
    assert added.exit_code == 0, added.output
    assert runner.invoke(main, ["remove", "openai", "--yes"]).exit_code == 0
    records = [json.loads(line) for line in run(runner, "--json", "--agent", "cli").stdout.splitlines()]
    assert [(r["action"], r["service"]) for r in records] == [("add", "openai"), ("remove", "openai")]
    assert all(SECRET not in p.read_text(errors="replace") for p in home.glob("audit.jsonl*") if p.is_file())
    assert run(runner, "verify").exit_code == 0


def read_lines(process: subprocess.Popen[bytes], count: int, deadline: float) -> list[str]:
    """Lines the process prints, until ``count`` arrived; fails at ``deadline`` rather than hang."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    received = b""
    with selector:
        while received.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"follow printed only {received!r}"
            if selector.select(timeout=remaining):
                chunk = os.read(fd, 65536)
                assert chunk, "follow exited early"
                received += chunk
    return received.decode().splitlines()


def test_follow_prints_new_matching_records_across_rotation(runner: CliRunner, opened: Vault) -> None:
    log = AuditLog.for_vault(opened, max_bytes=900)
    before = log.append(source="mcp", service="openai", decision="injected")
    process = subprocess.Popen(
        [EXE, "audit", "--follow", "--json", "--service", "openai"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        expected = [before]
        for n in range(8):
            expected.append(log.append(source="mcp", service="openai", decision="injected", reason=f"call {n}"))
            log.append(source="mcp", service="github", decision="injected")
        assert len(log.files.rotated()) >= 2
        lines = read_lines(process, len(expected), time.monotonic() + 30)
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    assert [json.loads(line)["id"] for line in lines] == expected


def damage_both_checkpoint_slots(home: Path) -> None:
    from clavis_mcp.vault.audit.anchor import SLOT_BYTES

    with (home / "audit.jsonl.lock").open("r+b") as handle:
        for slot in range(2):
            handle.seek(slot * SLOT_BYTES + 10)
            handle.write(b"torn")


def test_verify_tells_how_to_repair_a_checkpoint_damaged_in_both_slots(
    runner: CliRunner, log: AuditLog, home: Path
) -> None:
    fill(log)
    log.close()
    damage_both_checkpoint_slots(home)
    result = run(runner, "verify")
    assert result.exit_code == 1
    assert result.stdout.startswith("BROKEN at audit.jsonl.lock:") and "clavis-mcp audit repair --yes" in result.stdout


def test_audit_repair_refuses_without_yes_then_reanchors_and_records_it(
    runner: CliRunner, log: AuditLog, home: Path
) -> None:
    fill(log)
    log.close()
    damage_both_checkpoint_slots(home)
    refused = run(runner, "repair")
    assert refused.exit_code == 1 and "nothing was changed" in refused.output
    assert "Traceback" not in refused.output
    repaired = run(runner, "repair", "--yes")
    assert repaired.exit_code == 0, repaired.output
    assert "re-anchored the checkpoint at record 4; recorded as record 5" in repaired.stdout
    verified = run(runner, "verify")
    assert verified.exit_code == 0, verified.output
    assert "checkpoint re-anchored (audit repair) at record 4" in verified.stdout
    assert runner.invoke(main, ["agent", "add", "ci-bot"]).exit_code == 0  # appends resume
    assert "nothing to repair: the checkpoint opens" in run(runner, "repair", "--yes").stdout
