"""A bonus's `when:` reads the names the format gives it, with their values (the tier was always None)."""
from __future__ import annotations

from pathlib import Path

from engine import Engine
from tests.helpers import send

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"


def test_AND_9_AND_10_a_review_bonus_for_silver_members_reads_the_members_tier(tmp_path):
    """andest with the review bonus (AND-9, 300) only `when: "tier == 'silver'"`. Sign-up: 500.
    A review while regular earns nothing. An order of 60,000 a unit at the member price floor(60,000
    x 0.95) = 57,000 ex. tax counts from placement and exceeds silver's 50,000 (AND-10): silver. A
    review of another product then earns 300: valid 500 + 300 = 800 (the order's earn is pending)."""
    text = ANDEST.read_text(encoding="utf-8")
    plain = "{rule_id: AND-9, on: review.posted, units: 300, once_per: product}"
    assert text.count(plain) == 1
    path = tmp_path / "andest.yaml"
    path.write_text(text.replace(plain, plain[:-1] + ", when: \"tier == 'silver'\"}"), encoding="utf-8")
    e = Engine(str(path))
    send(e, "member.registered", "2025-03-01T10:00:00+09:00")
    send(e, "review.posted", "2025-03-02T10:00:00+09:00", product="DRESS")
    assert e.member("m1", "2025-03-02T12:00:00+09:00")["points"]["valid"] == 500
    send(e, "order.placed", "2025-03-03T10:00:00+09:00", order="o1", course="one_off",
         payment={"method": "credit_card"},
         lines=[{"sku": "C", "product": "COAT", "qty": 1, "unit_price": 60000, "tax_rate": 0.1}])
    assert e.member("m1", "2025-03-03T12:00:00+09:00")["tier"] == "silver"
    send(e, "review.posted", "2025-03-04T10:00:00+09:00", product="KNIT")
    assert e.member("m1", "2025-03-04T12:00:00+09:00")["points"]["valid"] == 800


def test_a_when_written_with_yaml_constants_says_how_to_write_them(tmp_path):
    """`when: "guest == true"`: YAML spells true in lower case, expressions as Python does. The
    problem names the file, line and key and says to write True (in Japanese too)."""
    from click.testing import CliRunner

    from engine.shell.cli import cli

    text = ANDEST.read_text(encoding="utf-8")
    plain = "{rule_id: AND-9, on: review.posted, units: 300, once_per: product}"
    path = tmp_path / "andest.yaml"
    path.write_text(text.replace(plain, plain[:-1] + ", when: \"attributes['vip'] == true\"}"), encoding="utf-8")
    out = CliRunner().invoke(cli, ["validate", str(path)])
    assert out.exit_code == 1
    assert "unknown name 'true'; write True" in out.output
    line = text[:text.index(plain)].count("\n") + 1
    assert f"andest.yaml:{line}:" in out.output
    ja = CliRunner().invoke(cli, ["validate", "--lang", "ja", str(path)])
    assert "不明な名前 'true'。True と書いてください" in ja.output
