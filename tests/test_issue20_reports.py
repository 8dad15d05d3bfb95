"""Issue 20 items 2 and 3: run and quote in Japanese (--lang ja, LANG=ja_JP.UTF-8); the run report's
summary, --member/--top, --format csv, yen formatting."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.shell.cli import cli
from engine.shell.words import yen

ROOT = Path(__file__).resolve().parent.parent
RC = [str(ROOT / "programs" / "rewards_circle.yaml"), str(ROOT / "examples" / "rewards_circle" / "events.jsonl"),
      "--db", ":memory:"]
JA_ENV = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "ja_JP.UTF-8"}


def run(args, env=None):
    return CliRunner().invoke(cli, args, env=env)


def report():
    return json.loads(run(["run", *RC, "--json"]).stdout)


def test_issue20_3_yen_formatting():
    assert yen(1234) == "¥1,234" and yen(1234, "ja") == "1,234円" and yen(-5, "ja") == "-5円"


@pytest.mark.parametrize("switch", ["--lang", "LANG"])
def test_issue20_2_run_report_in_japanese(switch):
    args, env = (["run", *RC, "--lang", "ja"], None) if switch == "--lang" else (["run", *RC], JA_ENV)
    out = run(args, env).stdout
    assert "会員数: 15" in out and "状態" in out and "有効" in out and "合計" in out, out
    assert "applied" not in out and "members:" not in out


def test_issue20_3_run_summary_points_and_yen():
    r = report()
    valid = sum(m["points"]["valid"] for m in r["members"].values())
    out = run(["run", *RC]).stdout
    # the summary's valid row: the members' valid points summed, worth unit_value_yen each (RC: 450 yen)
    line = next(x for x in out.splitlines() if x.startswith("valid "))
    assert line.split()[1:] == [f"{valid:,}", f"¥{valid * 450:,}"], line


def test_issue20_3_run_top_and_member_and_csv():
    r = report()
    best = sorted(r["members"], key=lambda m: (-r["members"][m]["points"]["valid"], m))[:2]
    top = run(["run", *RC, "--top", "2"]).stdout
    rows = [x.split()[0] for x in top.splitlines() if x.split() and x.split()[0] in r["members"]]
    assert rows == best
    one = run(["run", *RC, "--member", "r03", "--format", "csv"]).stdout
    (row,) = list(csv.DictReader(io.StringIO(one)))
    assert row["member"] == "r03" and int(row["valid"]) == r["members"]["r03"]["points"]["valid"]
    full = json.loads(run(["run", *RC, "--format", "json", "--member", "r03"]).stdout)
    assert list(full["members"]) == ["r03"]


@pytest.mark.parametrize("switch", ["--lang", "LANG"])
def test_issue20_2_quote_in_japanese(switch, tmp_path):
    db = str(tmp_path / "a.db")
    events = str(ROOT / "examples" / "ansage" / "events.jsonl")
    run(["run", str(ROOT / "programs" / "ansage.yaml"), events, "--db", db])
    args = ["quote", str(ROOT / "programs" / "ansage.yaml"), str(ROOT / "examples" / "ansage" / "cart_2026-03-20.json"),
            "--db", db]
    out = run(args + (["--lang", "ja"] if switch == "--lang" else []), None if switch == "--lang" else JA_ENV).stdout
    assert "お支払い" in out and "円" in out and "締切" in out and "to_pay" not in out, out
    en = run(args).stdout
    assert "to_pay" in en and "the request arrived after 2026-03-19" in en
