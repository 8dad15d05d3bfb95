"""A bonus's `when:` reads the names the format gives it, with their values (the tier was always None)."""
from __future__ import annotations

from pathlib import Path

from engine import Engine
from tests.helpers import send

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"


def test_AND_9_AND_10_a_review_bonus_for_silver_members_reads_the_members_tier(tmp_path):
    """andest with the review bonus (AND-9, 300; AND-8: of a product bought) only for silver
    members: `when: "bought and tier == 'silver'"`. A review of a dress bought and shipped while
    the member is regular earns nothing. An order of 60,000 a unit at the member price floor(60,000
    x 0.95) = 57,000 ex. tax counts from placement and exceeds silver's 50,000 (AND-10): silver.
    Once it ships, a review of that coat earns 300: the balance moves by exactly 300."""
    text = ANDEST.read_text(encoding="utf-8")
    plain = "{rule_id: AND-9, on: review.posted, units: 300, once_per: product, when: \"bought\"}"
    assert text.count(plain) == 1
    path = tmp_path / "andest.yaml"
    path.write_text(text.replace(plain, plain.replace('"bought"', '"bought and tier == \'silver\'"')), encoding="utf-8")
    e = Engine(str(path))
    send(e, "member.registered", "2025-03-01T10:00:00+09:00")
    send(e, "order.placed", "2025-03-01T11:00:00+09:00", order="o0", course="one_off",
         payment={"method": "credit_card"},
         lines=[{"sku": "D", "product": "DRESS", "qty": 1, "unit_price": 1000, "tax_rate": 0.1}])
    send(e, "order.shipped", "2025-03-01T12:00:00+09:00", order="o0")
    before = e.member("m1", "2025-03-02T09:00:00+09:00")["points"]["valid"]
    send(e, "review.posted", "2025-03-02T10:00:00+09:00", product="DRESS")
    assert e.member("m1", "2025-03-02T12:00:00+09:00")["points"]["valid"] == before
    send(e, "order.placed", "2025-03-03T10:00:00+09:00", order="o1", course="one_off",
         payment={"method": "credit_card"},
         lines=[{"sku": "C", "product": "COAT", "qty": 1, "unit_price": 60000, "tax_rate": 0.1}])
    send(e, "order.shipped", "2025-03-03T11:00:00+09:00", order="o1")
    assert e.member("m1", "2025-03-03T12:00:00+09:00")["tier"] == "silver"
    before = e.member("m1", "2025-03-04T09:00:00+09:00")["points"]["valid"]
    send(e, "review.posted", "2025-03-04T10:00:00+09:00", product="COAT")
    assert e.member("m1", "2025-03-04T12:00:00+09:00")["points"]["valid"] == before + 300


def test_a_when_written_with_yaml_constants_says_how_to_write_them(tmp_path):
    """`when: "guest == true"`: YAML spells true in lower case, expressions as Python does. The
    problem names the file, line and key and says to write True (in Japanese too)."""
    from click.testing import CliRunner

    from engine.shell.cli import cli

    text = ANDEST.read_text(encoding="utf-8")
    plain = "{rule_id: AND-9, on: review.posted, units: 300, once_per: product, when: \"bought\"}"
    path = tmp_path / "andest.yaml"
    path.write_text(text.replace(plain, plain.replace('"bought"', "\"attributes['vip'] == true\"")), encoding="utf-8")
    out = CliRunner().invoke(cli, ["validate", str(path)])
    assert out.exit_code == 1
    assert "unknown name 'true'; write True" in out.output
    line = text[:text.index(plain)].count("\n") + 1
    assert f"andest.yaml:{line}:" in out.output
    ja = CliRunner().invoke(cli, ["validate", "--lang", "ja", str(path)])
    assert "不明な名前 'true'。True と書いてください" in ja.output
