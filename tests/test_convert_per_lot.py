"""Issue 21: `convert_units` credit by credit (`per: lot`): to a dearer unit each credit keeps its
own expiry, only its left-over value is pooled. Figures worked by hand."""
from __future__ import annotations

from engine import Engine
from engine.format.loader import parse_program

PROGRAM = """\
program: conv_shop
name: "Conversion shop"
unit: credits
time_zone: Asia/Tokyo
rules:
  CV-1: "Credits are worth 450 yen."
  CV-2: "Credits expire 2 years after they are granted."
  CV-3: "From 2026-04-01 a credit is worth 1,100 yen; credits held are converted."
versions:
  - version: 1
    effective_from: 2025-01-01
    redemption: {{rule_id: CV-1, unit_value_yen: 450}}
    expiry: {{rule_id: CV-2, kind: per_grant, period: {{years: 2}}}}
  - version: 2
    effective_from: 2026-04-01
    changes:
      redemption: {{unit_value_yen: 1100}}
    migration:
      - rule_id: CV-3
        op: convert_units
        from_unit_value_yen: 450
{per}        remainder: {{pool_expiry: earliest, round_up_expires_after: {{days: 180}}}}
"""


def lots_after(per: str) -> list[tuple]:
    e = Engine(parse_program(PROGRAM.format(per=per), "conv.yaml"))
    e.apply({"id": "r", "type": "member.registered", "at": "2025-02-01T10:00:00+09:00", "member": "m1"})
    e.apply({"id": "g1", "type": "points.granted", "at": "2025-03-01T10:00:00+09:00", "member": "m1", "amount": 3,
             "reason": "a", "expires_on": "2026-12-31"})
    e.apply({"id": "g2", "type": "points.granted", "at": "2025-04-01T10:00:00+09:00", "member": "m1", "amount": 5,
             "reason": "b", "expires_on": "2027-06-30"})
    got = e.member("m1", "2026-04-02T00:00:00+09:00")
    return sorted((lot["amount"], lot["expires_on"], lot["kind"]) for lot in got["lots"] if lot["state"] == "valid")


def test_CV_3_per_lot_keeps_each_credits_expiry():
    # lot A: 3 x 450 = 1,350 -> 1 credit until 2026-12-31, 250 left; lot B: 5 x 450 = 2,250 -> 2
    # credits until 2027-06-30, 50 left; the pool 300 < 1,100 -> no credit, its rest > 0 -> 1
    # adjustment credit valid 180 days from 2026-04-01 (last day 2026-09-28)
    assert lots_after("        per: lot\n") == [(1, "2026-09-28", "adjustment"), (1, "2026-12-31", "conversion"),
                                                 (2, "2027-06-30", "conversion")]


def test_CV_3_per_unit_pools_every_credit():
    # each old credit (450) makes floor(450 / 1,100) = 0: all 8 x 450 = 3,600 pooled -> 3 credits
    # with the earliest expiry of the lots that fed it (2026-12-31), rest 300 -> 1 adjustment credit
    assert lots_after("") == [(1, "2026-09-28", "adjustment"), (3, "2026-12-31", "conversion")]
