"""Rule tests for the 万田発酵 stage program (programs/manda.yaml): MAN-1 … MAN-12.

Every expected month and amount below is worked out by hand from docs/RULES.md and the
program file's stated assumptions, never copied from the engine's output:

* amounts are billed items incl. 8% tax after coupons: ``buy(at, 2700)`` is one line of 2,500 ex.
  tax + 200 tax; shipping never counts;
* the stage of a month is decided at 00:00 on its 1st (Asia/Tokyo) from the months and amount up
  to the end of the month before (MAN-5): months count from the month the stage was reached, that
  month included (MAN-4); a calendar month that begins while the subscription is paused (after
  any event stamped exactly 00:00 on its 1st) is a pause month and does not count, and the 4th such
  month in a row cancels as it begins (ASSUMPTIONS in the program file);
* regular → bronze: 6 months and ¥15,000; every later step: 12 months and ¥60,000 (MAN-3);
* gifts: the 1st in the month 2 months after the stage-up month, the 2nd 6 months after that
  (stage-up in July → September and March); a notice the month before the 1st (MAN-9, MAN-11).

The usual start: registered 2024-12-20, subscription started 2025-01-10, ¥2,700 bought on the
15th of January … June (¥16,200 in 6 months) → bronze on 2025-07-01; gifts 2025-09 and 2026-03.
"""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import msgspec
import yaml
from click.testing import CliRunner

from engine import Engine
from engine.shell.cli import cli
from engine.run.report import as_of
from engine.model.timeutil import parse_instant

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "manda.yaml"
EXAMPLES = ROOT / "examples" / "manda" / "events.jsonl"
STAGES = ["regular", "bronze", "silver", "gold", "platinum_1", "platinum_2", "platinum_3", "diamond"]


class Shop:
    """One engine on a memory store, and short ways to send the shop's events."""

    def __init__(self):
        self.e = Engine(str(PROGRAM))
        self.ids = itertools.count(1)

    def send(self, type_: str, at: str, member: str = "m1", expect: str = "applied", **fields):
        eid = f"{type_}-{next(self.ids)}"
        r = self.e.apply({"id": eid, "type": type_, "at": at, "member": member, **fields})
        if expect == "applied":
            assert r.applied == [eid], r.rejected
        else:
            assert r.rejected and r.rejected[0]["event"] == eid, r
        return r

    def register(self, at: str = "2024-12-20T10:00:00+09:00", member: str = "m1", **attributes):
        extra = {"attributes": attributes} if attributes else {}
        self.send("member.registered", at, member, **extra)

    def sub(self, what: str, at: str, member: str = "m1", subscription: str = "main"):
        self.send(f"subscription.{what}", at, member, subscription=subscription)

    def buy(self, at: str, yen: int, member: str = "m1", course: str = "subscription", coupon: int = 0,
            shipping: int = 0, ship: str | None = None) -> str:
        """An order billed ``yen`` incl. 8% tax (before any coupon). Returns the order id."""
        ex = yen * 25 // 27
        assert ex + ex * 2 // 25 == yen, f"{yen} is not an 8%-inclusive amount of whole yen"
        oid = f"o{next(self.ids)}"
        fields = {"order": oid, "course": course, "payment": {"method": "credit_card"},
                  "lines": [{"sku": "KOSO-150", "qty": 1, "unit_price": ex, "tax_rate": 0.08}]}
        if coupon:
            fields["coupon_discount"] = coupon
        if shipping:
            fields["shipping"] = shipping
        self.send("order.placed", at, member, **fields)
        if ship:
            self.send("order.shipped", ship, member, order=oid)
        return oid

    def member(self, at: str, member: str = "m1") -> dict:
        return self.e.member(member, at)

    def stage(self, at: str, member: str = "m1"):
        return self.member(at, member)["tier"]

    def effects(self, until: str, member: str = "m1", type_: str | None = None) -> list[dict]:
        """The member's effects up to ``until``: stored ones, and those of the clock's happenings
        between the member's last event and ``until`` (report.as_of)."""
        out = [x for x in self.e.store.effects() if x["member"] == member]
        state = self.e.store.load(member)
        _, _, due = as_of(self.e.program, state, parse_instant(until, self.e.program.tz))
        out += [msgspec.to_builtins(x) for x in due]
        return [x for x in out if x["at"] <= until[:10] and (type_ is None or x["type"] == type_)]

    def gifts(self, until: str, member: str = "m1") -> list[tuple]:
        return [(x["at"], x["detail"]["stage"], x["detail"]["number"])
                for x in self.effects(until, member, "gift.due")]

    def notices(self, until: str, member: str = "m1") -> list[tuple]:
        return [(x["at"], x["detail"]["stage"]) for x in self.effects(until, member, "notice.due")]


def month_days(first: tuple[int, int], count: int, day: int = 15):
    y, m = first
    for _ in range(count):
        yield f"{y:04d}-{m:02d}-{day:02d}T10:00:00+09:00"
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def bronze_in_july(shop: Shop | None = None, member: str = "m1") -> Shop:
    """Registered 2024-12-20, started 2025-01-10, ¥2,700 on the 15th of Jan … Jun: bronze 2025-07-01."""
    shop = shop or Shop()
    shop.register(member=member)
    shop.sub("started", "2025-01-10T10:00:00+09:00", member)
    for at in month_days((2025, 1), 6):
        shop.buy(at, 2700, member)
    return shop


# --------------------------------------------------------------------------------------------
# MAN-1 enrolment, opt-out
# --------------------------------------------------------------------------------------------

def test_man1_subscription_customers_are_enrolled_automatically():
    shop = Shop()
    shop.register()
    assert shop.stage("2024-12-21") is None                       # a member, no subscription: no stage
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    m = shop.member("2025-01-10T10:00:00+09:00")
    assert m["tier"] == "regular"
    assert m["ladder"]["status"] == "active"
    assert m["ladder"]["history"][0]["rule"] == "MAN-1"


def test_man1_one_off_buyers_are_not_enrolled():
    shop = Shop()
    shop.register()
    for at in month_days((2025, 1), 8):
        shop.buy(at, 5400, course="one_off")
    assert shop.stage("2025-09-01") is None
    assert shop.effects("2026-01-01") == []


def test_man1_a_customer_who_opts_out_gets_no_stage_and_no_gifts():
    shop = Shop()
    shop.register(stage_opt_out=True)
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 6):
        shop.buy(at, 2700)
    m = shop.member("2025-07-01")
    assert m["tier"] is None and m["ladder"]["status"] == "opted_out"
    assert shop.effects("2026-06-01") == []
    # opting back in (attributes replaced) on 2025-08-05: regular from then, months from August
    shop.send("member.updated", "2025-08-05T10:00:00+09:00", attributes={})
    assert shop.stage("2025-08-05T10:00:00+09:00") == "regular"
    for at in month_days((2025, 8), 6, day=20):   # Aug … Jan: 6 months, ¥16,200
        shop.buy(at, 2700)
    assert shop.stage("2026-01-31T23:59:59+09:00") == "regular"
    assert shop.stage("2026-02-01") == "bronze"


def test_man1_opting_out_later_leaves_the_ladder_and_drops_gifts():
    shop = bronze_in_july()
    assert shop.stage("2025-07-01") == "bronze"
    shop.send("member.updated", "2025-07-20T10:00:00+09:00", attributes={"stage_opt_out": True})
    assert shop.stage("2025-07-20T10:00:00+09:00") is None
    assert shop.gifts("2026-06-01") == []            # bronze's gifts (2025-09, 2026-03) never go out


# --------------------------------------------------------------------------------------------
# MAN-2 the eight stages
# --------------------------------------------------------------------------------------------

def test_man2_eight_stages_in_order():
    ladder = Shop().e.program.versions[0].ladder
    assert [level.id for level in ladder.levels] == STAGES
    assert ladder.rule == "MAN-2"


# --------------------------------------------------------------------------------------------
# MAN-3 / MAN-4 / MAN-5 stage-up conditions, months, monthly decision
# --------------------------------------------------------------------------------------------

def test_man3_man5_stage_up_exactly_in_the_month_after_the_sixth_counted_month():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):                 # Jan … May: ¥13,500
        shop.buy(at, 2700)
    assert shop.stage("2025-06-01") == "regular"        # 5 months, ¥13,500 by the end of May
    shop.buy("2025-06-15T10:00:00+09:00", 2700)         # ¥16,200
    m = shop.member("2025-06-30T23:59:59+09:00")
    assert m["tier"] == "regular"                       # June is decided, July is not yet
    assert m["ladder"]["amount"] == 16200
    # 00:00 on July 1st: 6 months (Jan … Jun) and ¥16,200 ≥ ¥15,000 → bronze, with no event that day
    m = shop.member("2025-07-01")
    assert m["tier"] == "bronze"
    assert m["ladder"]["history"][-1] == {"at": "2025-07-01T00:00:00+09:00", "level": "bronze",
                                          "reason": "up", "rule": "MAN-3"}
    # the counters restart in bronze: July is its first month, nothing bought yet
    assert m["ladder"]["amount"] == 0 and m["ladder"]["months"] == 1
    assert m["ladder"]["next"] == {"level": "silver", "months": 12, "amount": 60000, "rule": "MAN-3"}


def test_man3_blocked_by_amount_only():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):                 # ¥13,500
        shop.buy(at, 2700)
    shop.buy("2025-06-15T10:00:00+09:00", 1080)         # ¥14,580 < ¥15,000 after 6 months
    assert shop.stage("2025-07-01") == "regular"
    shop.buy("2025-07-15T10:00:00+09:00", 540)          # ¥15,120 by the end of July (7 months)
    assert shop.stage("2025-07-31T23:59:59+09:00") == "regular"
    assert shop.stage("2025-08-01") == "bronze"


def test_man3_blocked_by_months_only():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-20T10:00:00+09:00")
    shop.buy("2025-01-25T10:00:00+09:00", 16200)        # the amount is met in January
    assert shop.stage("2025-02-01") == "regular"
    assert shop.stage("2025-06-01") == "regular"        # 5 months (Jan … May)
    assert shop.stage("2025-07-01") == "bronze"         # 6 months (Jan … Jun)


def test_man3_later_steps_need_12_months_and_60000():
    shop = bronze_in_july()
    for at in month_days((2025, 7), 6):                 # Jul … Dec 2025: 6 × ¥10,800 = ¥64,800
        shop.buy(at, 10800)
    assert shop.stage("2026-01-01") == "bronze"         # the amount is met, 6 months are not 12
    assert shop.stage("2026-06-30T23:59:59+09:00") == "bronze"   # 11 months by the end of May
    assert shop.stage("2026-07-01") == "silver"         # Jul 2025 … Jun 2026: 12 months


def test_man3_later_step_blocked_by_amount_after_12_months():
    shop = bronze_in_july()
    for at in month_days((2025, 7), 11):                # Jul 2025 … May 2026: 11 × ¥5,400 = ¥59,400
        shop.buy(at, 5400)
    assert shop.stage("2026-07-01") == "bronze"         # 12 months, ¥59,400 < ¥60,000
    shop.buy("2026-07-03T10:00:00+09:00", 1080)         # ¥60,480
    assert shop.stage("2026-07-31T23:59:59+09:00") == "bronze"
    assert shop.stage("2026-08-01") == "silver"


def test_man4_start_month_counts_even_on_its_last_evening():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-31T22:00:00+09:00")
    shop.buy("2025-01-31T22:30:00+09:00", 16200)
    assert shop.stage("2025-06-01") == "regular"        # Jan … May: 5
    assert shop.stage("2025-07-01") == "bronze"         # Jan … Jun: 6


def test_man4_a_whole_pause_month_does_not_count():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.buy("2025-01-15T10:00:00+09:00", 16200)
    shop.sub("paused", "2025-03-01")                    # March is paused from its first instant
    shop.sub("resumed", "2025-04-01")
    # counted: Jan, Feb, Apr, May, Jun, Jul → the 6th counted month is July
    assert shop.stage("2025-07-01") == "regular"
    assert shop.stage("2025-08-01") == "bronze"


def test_man4_a_month_paused_after_it_began_still_counts():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.buy("2025-01-15T10:00:00+09:00", 16200)
    shop.sub("paused", "2025-03-10T10:00:00+09:00")     # March began active: it counts
    shop.sub("resumed", "2025-03-25T10:00:00+09:00")
    assert shop.stage("2025-07-01") == "bronze"


def test_man4_a_month_that_begins_paused_does_not_count_even_if_resumed_in_it():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.buy("2025-01-15T10:00:00+09:00", 16200)
    shop.sub("paused", "2025-03-10T10:00:00+09:00")
    shop.sub("resumed", "2025-04-05T10:00:00+09:00")    # ASSUMPTION: April began paused, not counted
    # counted: Jan, Feb, Mar, May, Jun, Jul
    assert shop.stage("2025-07-01") == "regular"
    assert shop.stage("2025-08-01") == "bronze"


def test_man5_a_purchase_on_the_1st_counts_for_the_next_decision():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):                 # ¥13,500 by the end of May
        shop.buy(at, 2700)
    shop.buy("2025-07-01T10:00:00+09:00", 2700)         # bought in July: not in July's figures
    assert shop.stage("2025-07-01T10:00:00+09:00") == "regular"
    assert shop.stage("2025-08-01") == "bronze"         # 7 months, ¥16,200 by the end of July


def test_man5_an_order_at_00_00_on_the_1st_belongs_to_that_month():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):                 # ¥13,500 by the end of May
        shop.buy(at, 2700)
    shop.buy("2025-07-01", 2700)                        # bare date: 00:00 on July 1st, a July purchase
    m = shop.member("2025-07-01")
    assert m["tier"] == "regular"
    assert m["ladder"]["amount"] == 16200               # in the figures of July's end
    assert shop.stage("2025-08-01") == "bronze"


def test_man5_the_clock_decides_with_no_event_for_years():
    shop = bronze_in_july()
    for at in month_days((2025, 7), 12, day=3):         # ¥64,800 in bronze by June 2026
        shop.buy(at, 5400)
    # the member's last event is 2026-06-03; the clock alone makes the July decision
    assert shop.stage("2026-07-01") == "silver"
    assert shop.gifts("2027-04-01")[-2:] == [("2026-09-01", "silver", 1), ("2027-03-01", "silver", 2)]


# --------------------------------------------------------------------------------------------
# MAN-6 the amount
# --------------------------------------------------------------------------------------------

def test_man6_billed_after_coupons_any_course_shipping_apart():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    # one-off, 10,000 ex. tax less a 1,000 coupon: 9,000 + 720 tax = ¥9,720; shipping 500 does not count
    shop.buy("2025-01-15T10:00:00+09:00", 10800, course="one_off", coupon=1000, shipping=500)
    shop.buy("2025-02-15T10:00:00+09:00", 5400)         # subscription: ¥5,400
    m = shop.member("2025-02-15T10:00:00+09:00")
    assert m["ladder"]["amount"] == 9720 + 5400 == 15120
    assert shop.stage("2025-07-01") == "bronze"         # 6 months, ¥15,120


def test_man6_a_pause_month_purchase_is_not_counted():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.buy("2025-01-15T10:00:00+09:00", 2700)
    shop.buy("2025-02-15T10:00:00+09:00", 2700)
    shop.sub("paused", "2025-03-01")
    shop.buy("2025-03-20T10:00:00+09:00", 5400, course="one_off")   # bought in the pause: not counted
    assert shop.member("2025-03-20T10:00:00+09:00")["ladder"]["amount"] == 5400
    shop.sub("resumed", "2025-04-01")
    for at in month_days((2025, 4), 3):                 # Apr, May, Jun
        shop.buy(at, 2700)
    # counted months Jan, Feb, Apr, May, Jun, Jul; the amount is 5 × ¥2,700 = ¥13,500
    # (with the pause purchase it would be ¥18,900 and bronze on 2025-08-01)
    m = shop.member("2025-08-01")
    assert m["tier"] == "regular"
    assert m["ladder"]["amount"] == 13500


def test_man6_a_return_drops_the_amount_below_the_threshold():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):
        shop.buy(at, 2700)
    june = shop.buy("2025-06-15T10:00:00+09:00", 2700, ship="2025-06-16T10:00:00+09:00")   # ¥16,200
    shop.send("order.returned", "2025-06-25T10:00:00+09:00", order=june, lines=[{"sku": "KOSO-150", "qty": 1}])
    m = shop.member("2025-07-01")
    assert m["tier"] == "regular"                       # ¥13,500 < ¥15,000
    assert m["ladder"]["amount"] == 13500
    shop.buy("2025-07-15T10:00:00+09:00", 2700)         # ¥16,200 again
    assert shop.stage("2025-08-01") == "bronze"


def test_man6_a_cancelled_order_is_not_counted():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    big = shop.buy("2025-01-15T10:00:00+09:00", 16200)
    shop.send("order.cancelled", "2025-01-16T10:00:00+09:00", order=big)
    m = shop.member("2025-07-01")
    assert m["tier"] == "regular" and m["ladder"]["amount"] == 0


def test_man6_a_return_after_the_stage_up_comes_out_of_the_new_stage():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    for at in month_days((2025, 1), 5):
        shop.buy(at, 2700)
    june = shop.buy("2025-06-15T10:00:00+09:00", 2700, ship="2025-06-16T10:00:00+09:00")
    assert shop.stage("2025-07-01") == "bronze"
    shop.send("order.returned", "2025-07-05T10:00:00+09:00", order=june, lines=[{"sku": "KOSO-150", "qty": 1}])
    m = shop.member("2025-07-05T10:00:00+09:00")
    assert m["tier"] == "bronze"                        # MAN-8: never down
    assert m["ladder"]["amount"] == -2700               # ASSUMPTION: subtracted from the current stage


# --------------------------------------------------------------------------------------------
# MAN-7 pauses
# --------------------------------------------------------------------------------------------

def test_man7_a_three_month_pause_keeps_the_stage_and_counting_resumes():
    shop = bronze_in_july()
    shop.buy("2025-07-15T10:00:00+09:00", 10800)
    shop.buy("2025-08-15T10:00:00+09:00", 10800)
    shop.sub("paused", "2025-09-01")                    # September, October, November
    m = shop.member("2025-11-30T23:59:59+09:00")
    assert m["tier"] == "bronze" and m["ladder"]["status"] == "paused"
    shop.sub("resumed", "2025-12-01")
    m = shop.member("2025-12-01")
    assert m["tier"] == "bronze" and m["ladder"]["status"] == "active"
    assert m["ladder"]["amount"] == 21600               # counting resumes where it stopped
    for at in month_days((2025, 12), 10):               # Dec 2025 … Sep 2026
        shop.buy(at, 5400)
    # bronze months: Jul, Aug 2025 + Dec 2025 … Sep 2026 = 12; ¥21,600 + ¥54,000 = ¥75,600
    assert shop.stage("2026-09-30T23:59:59+09:00") == "bronze"
    assert shop.stage("2026-10-01") == "silver"


def test_man7_a_four_month_pause_cancels_and_resets_to_regular():
    shop = bronze_in_july()
    shop.sub("paused", "2025-09-01")                    # September, October, November, December …
    m = shop.member("2025-11-30T23:59:59+09:00")
    assert m["tier"] == "bronze" and m["ladder"]["status"] == "paused"   # 3 pause months so far
    # December begins paused: the 4th consecutive pause month cancels as it begins
    m = shop.member("2025-12-01")
    assert m["tier"] == "regular"
    assert m["ladder"]["status"] == "cancelled"
    assert m["ladder"]["history"][-1] == {"at": "2025-12-01T00:00:00+09:00", "level": "regular",
                                          "reason": "pause_cancel", "rule": "MAN-7"}
    # MAN-8: a restart starts at regular; months and amount from scratch
    shop.sub("resumed", "2026-01-10T10:00:00+09:00")
    for at in month_days((2026, 1), 6):                 # Jan … Jun 2026: ¥16,200
        shop.buy(at, 2700)
    assert shop.stage("2026-06-30T23:59:59+09:00") == "regular"
    assert shop.stage("2026-07-01") == "bronze"
    # bronze's gifts of 2025: the 1st (due 2025-09) fell in the pause and was dropped by the
    # cancellation, the 2nd (2026-03) too; the new bronze gives 2026-09 and 2027-03
    assert shop.gifts("2027-04-01") == [("2026-09-01", "bronze", 1), ("2027-03-01", "bronze", 2)]


def test_man7_pauses_from_mid_month_count_the_months_that_begin_paused():
    keep = bronze_in_july()
    keep.sub("paused", "2025-09-10T10:00:00+09:00")     # Oct, Nov, Dec begin paused: 3
    keep.sub("resumed", "2025-12-20T10:00:00+09:00")
    assert keep.stage("2026-01-01") == "bronze"
    gone = bronze_in_july()
    gone.sub("paused", "2025-09-10T10:00:00+09:00")     # Oct, Nov, Dec, Jan: the 4th cancels on 2026-01-01
    assert gone.stage("2025-12-31T23:59:59+09:00") == "bronze"
    assert gone.stage("2026-01-01") == "regular"
    gone.sub("resumed", "2026-01-20T10:00:00+09:00")    # a restart at regular (MAN-8)
    assert gone.member("2026-01-20T10:00:00+09:00")["ladder"]["history"][-1]["reason"] == "enrol"


def test_man7_a_pause_in_regular_keeps_the_months_and_amount():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.buy("2025-01-15T10:00:00+09:00", 16200)
    shop.sub("paused", "2025-03-01")                    # March, April, May
    shop.sub("resumed", "2025-06-01")
    # counted: Jan, Feb, Jun, Jul, Aug, Sep → bronze on October 1st
    assert shop.stage("2025-09-30T23:59:59+09:00") == "regular"
    assert shop.stage("2025-10-01") == "bronze"


# --------------------------------------------------------------------------------------------
# MAN-8 never down; cancel and restart
# --------------------------------------------------------------------------------------------

def test_man8_the_stage_never_goes_down_while_subscribed():
    shop = bronze_in_july()
    # nothing bought for two years: bronze stays
    assert shop.stage("2027-07-01") == "bronze"


def test_man8_cancel_then_restart_starts_again_at_regular():
    shop = bronze_in_july()
    shop.sub("cancelled", "2025-10-15T10:00:00+09:00")
    m = shop.member("2025-10-15T10:00:00+09:00")
    assert m["tier"] == "regular" and m["ladder"]["status"] == "cancelled"
    shop.sub("started", "2026-02-03T10:00:00+09:00")
    for at in month_days((2026, 2), 6):                 # Feb … Jul 2026
        shop.buy(at, 2700)
    assert shop.stage("2026-07-31T23:59:59+09:00") == "regular"
    assert shop.stage("2026-08-01") == "bronze"
    # the first bronze's 1st gift went out (2025-09); its 2nd (2026-03) was dropped
    assert shop.gifts("2026-12-31") == [("2025-09-01", "bronze", 1), ("2026-10-01", "bronze", 1)]


# --------------------------------------------------------------------------------------------
# MAN-9 gifts, MAN-10 pauses, MAN-11 notices
# --------------------------------------------------------------------------------------------

def test_man9_gifts_two_and_eight_months_after_the_stage_up_month():
    shop = bronze_in_july()
    assert shop.gifts("2025-08-31") == []
    assert shop.gifts("2026-12-31") == [("2025-09-01", "bronze", 1), ("2026-03-01", "bronze", 2)]
    gift = shop.effects("2025-09-01", type_="gift.due")[0]
    assert gift == {"type": "gift.due", "member": "m1", "at": "2025-09-01",
                    "detail": {"stage": "bronze", "number": 1}, "rule": "MAN-9"}


def test_man9_regular_gives_no_gift():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    assert shop.effects("2026-12-31") == []


def test_man9_two_gifts_however_many_subscriptions():
    shop = Shop()
    shop.register()
    shop.sub("started", "2025-01-10T10:00:00+09:00")
    shop.sub("started", "2025-01-11T10:00:00+09:00", subscription="second")
    for at in month_days((2025, 1), 6):
        shop.buy(at, 2700)
        shop.buy(at.replace("T10", "T11"), 2700)
    shop.sub("paused", "2025-08-20T10:00:00+09:00", subscription="second")   # one still active
    assert shop.stage("2025-07-01") == "bronze"
    assert shop.gifts("2026-12-31") == [("2025-09-01", "bronze", 1), ("2026-03-01", "bronze", 2)]


def test_man10_a_gift_due_in_a_pause_goes_out_the_month_after_resuming():
    shop = bronze_in_july()
    shop.sub("paused", "2025-08-20T10:00:00+09:00")     # the 1st gift is due in September
    shop.sub("resumed", "2025-10-15T10:00:00+09:00")
    assert shop.gifts("2025-10-31") == []
    # MAN-9: the 2nd comes about six months after the 1st was sent: November 2025 + 6 = May 2026
    assert shop.gifts("2026-12-31") == [("2025-11-01", "bronze", 1), ("2026-05-01", "bronze", 2)]
    deferred = shop.effects("2025-11-01", type_="gift.due")[0]
    assert deferred["rule"] == "MAN-10"
    assert deferred["detail"] == {"stage": "bronze", "number": 1, "deferred_from": "2025-09-01"}


def test_man10_a_pause_from_the_gift_months_first_instant_defers_it():
    shop = bronze_in_july()
    shop.sub("paused", "2025-09-01")                    # bare date: 00:00, September is paused whole
    shop.sub("resumed", "2025-10-01")
    assert shop.gifts("2025-12-31") == [("2025-11-01", "bronze", 1)]


def test_MAN_9_a_pause_that_moves_the_first_gift_moves_the_second():
    """Bronze reached in July 2025: 1st gift due September (July + 2). Paused 08-20 to 09-10
    (September began paused), so the 1st goes out the month after resuming: October 2025. The 2nd
    comes six months after the 1st was sent: April 2026, not March (stage-up + 8)."""
    shop = bronze_in_july()
    shop.sub("paused", "2025-08-20T10:00:00+09:00")
    shop.sub("resumed", "2025-09-10T10:00:00+09:00")
    assert shop.gifts("2026-03-31") == [("2025-10-01", "bronze", 1)]
    assert shop.gifts("2026-04-01") == [("2025-10-01", "bronze", 1), ("2026-04-01", "bronze", 2)]


def test_MAN_9_a_pause_in_the_second_gifts_month_defers_it_from_its_moved_month():
    """As above, the 1st sent October 2025, the 2nd due April 2026. Paused 2026-03-20 to 2026-04-05:
    April began paused, so the 2nd goes out the month after resuming, May 2026, noted as deferred
    from April (its month counted from the 1st's), not from March."""
    shop = bronze_in_july()
    shop.sub("paused", "2025-08-20T10:00:00+09:00")
    shop.sub("resumed", "2025-09-10T10:00:00+09:00")
    shop.sub("paused", "2026-03-20T10:00:00+09:00")
    shop.sub("resumed", "2026-04-05T10:00:00+09:00")
    assert shop.gifts("2026-12-31") == [("2025-10-01", "bronze", 1), ("2026-05-01", "bronze", 2)]
    second = shop.effects("2026-05-01", type_="gift.due")[-1]
    assert second["detail"] == {"stage": "bronze", "number": 2, "deferred_from": "2026-04-01"}


def test_man10_a_gift_due_in_a_pause_is_dropped_if_cancelled_meanwhile():
    shop = bronze_in_july()
    shop.sub("paused", "2025-08-20T10:00:00+09:00")
    shop.sub("cancelled", "2025-10-02T10:00:00+09:00")
    assert shop.gifts("2027-01-01") == []


def test_man11_a_notice_the_month_before_the_first_gift():
    shop = bronze_in_july()
    assert shop.notices("2025-07-31") == []
    assert shop.notices("2026-12-31") == [("2025-08-01", "bronze")]          # not before the 2nd gift
    notice = shop.effects("2025-08-01", type_="notice.due")[0]
    assert notice["rule"] == "MAN-11" and notice["detail"] == {"stage": "bronze", "number": 1}


def test_man11_a_deferred_first_gift_is_announced_again_before_its_new_month():
    shop = bronze_in_july()
    shop.sub("paused", "2025-08-20T10:00:00+09:00")
    shop.sub("resumed", "2025-10-15T10:00:00+09:00")
    assert shop.notices("2026-12-31") == [("2025-08-01", "bronze"), ("2025-10-01", "bronze")]


def test_man9_a_member_climbs_to_diamond_over_years_and_gets_the_repeating_gifts():
    """Generated history: ¥5,400 on a random day of every active month from January 2024, a few
    random one-off extras, and a pause for March and April 2027 (seeded).

    Hand-worked: bronze 2024-07 (6 months), silver 2025-07, gold 2026-07 (12 months each,
    12 × ¥5,400 = ¥64,800). Gold's months: Jul 2026 … Feb 2027 (8), the pause, May … Aug 2027
    (12) → platinum_1 2027-09, platinum_2 2028-09, platinum_3 2029-09, diamond 2030-09; then
    12 more months and ¥60,000 → diamond's gifts again from 2031-09 (round 2) and 2032-09 (round 3).
    Gold's 2nd gift (2027-03) falls in the pause: it goes out in June, the month after resuming.
    """
    rng = random.Random(5)
    shop = Shop()
    shop.register("2023-12-20T10:00:00+09:00")
    shop.sub("started", "2024-01-05T10:00:00+09:00")
    y, m = 2024, 1
    while (y, m) < (2033, 6):
        if (y, m) == (2027, 3):
            shop.sub("paused", "2027-03-01")
        if (y, m) == (2027, 5):
            shop.sub("resumed", "2027-05-01")
        if (y, m) not in ((2027, 3), (2027, 4)):
            shop.buy(f"{y:04d}-{m:02d}-{rng.randint(6, 27):02d}T{rng.randint(8, 21):02d}:00:00+09:00", 5400)
            if rng.random() < 0.25:
                shop.buy(f"{y:04d}-{m:02d}-28T10:00:00+09:00", rng.choice([2700, 1080]), course="one_off")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    ups = [(h["at"][:7], h["level"], h["reason"]) for h in shop.member("2033-06-01")["ladder"]["history"]]
    assert ups == [("2024-01", "regular", "enrol"), ("2024-07", "bronze", "up"), ("2025-07", "silver", "up"),
                   ("2026-07", "gold", "up"), ("2027-09", "platinum_1", "up"), ("2028-09", "platinum_2", "up"),
                   ("2029-09", "platinum_3", "up"), ("2030-09", "diamond", "up"), ("2031-09", "diamond", "again"),
                   ("2032-09", "diamond", "again")]
    assert shop.stage("2033-06-01") == "diamond"
    gifts = shop.effects("2033-06-01", type_="gift.due")
    assert [(g["at"], g["detail"]["stage"], g["detail"]["number"], g["detail"].get("round", 1)) for g in gifts] == [
        ("2024-09-01", "bronze", 1, 1), ("2025-03-01", "bronze", 2, 1),
        ("2025-09-01", "silver", 1, 1), ("2026-03-01", "silver", 2, 1),
        ("2026-09-01", "gold", 1, 1), ("2027-06-01", "gold", 2, 1),          # deferred by the pause
        ("2027-11-01", "platinum_1", 1, 1), ("2028-05-01", "platinum_1", 2, 1),
        ("2028-11-01", "platinum_2", 1, 1), ("2029-05-01", "platinum_2", 2, 1),
        ("2029-11-01", "platinum_3", 1, 1), ("2030-05-01", "platinum_3", 2, 1),
        ("2030-11-01", "diamond", 1, 1), ("2031-05-01", "diamond", 2, 1),    # diamond's first year
        ("2031-11-01", "diamond", 1, 2), ("2032-05-01", "diamond", 2, 2),    # 12 more months, ¥60,000
        ("2032-11-01", "diamond", 1, 3), ("2033-05-01", "diamond", 2, 3),
    ]
    assert gifts[5]["detail"]["deferred_from"] == "2027-03-01" and gifts[5]["rule"] == "MAN-10"
    # one notice before each first gift: 7 stages reached + diamond's 2 rounds again
    assert [n[0] for n in shop.notices("2033-06-01")] == [
        "2024-08-01", "2025-08-01", "2026-08-01", "2027-10-01", "2028-10-01", "2029-10-01", "2030-10-01",
        "2031-10-01", "2032-10-01"]


# --------------------------------------------------------------------------------------------
# MAN-12 and the report
# --------------------------------------------------------------------------------------------

def test_man12_gifts_are_effects_the_shop_ships_and_cannot_be_swapped():
    data = yaml.safe_load(PROGRAM.read_text(encoding="utf-8"))
    delivery = data["versions"][0]["ladder"]["gifts"]["delivery"]
    assert delivery == {"rule_id": "MAN-12", "ships_with": "subscription_delivery", "exchangeable": False}
    shop = bronze_in_july()
    # no points, no catalog: nothing to exchange a gift for; the gift is an effect for the shop
    assert shop.member("2025-09-01")["points"]["valid"] == 0
    assert shop.e.program.versions[0].catalog is None


def test_run_json_lists_each_members_stage_and_the_gifts_due():
    result = CliRunner().invoke(cli, ["run", str(PROGRAM), str(EXAMPLES), "--db", ":memory:",
                                      "--as-of", "2027-01-01", "--json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    tiers = {m: v["tier"] for m, v in report["members"].items()}
    assert tiers == {"m01": "silver", "m02": "bronze", "m03": "bronze", "m04": "silver", "m05": "bronze",
                     "m06": "bronze", "m07": "bronze", "m08": "silver", "m09": None, "m10": "silver",
                     "m11": "bronze", "m12": "gold", "m13": None, "m14": "bronze"}
    gifts = {(e["member"], e["at"], e["detail"]["stage"], e["detail"]["number"])
             for e in report["effects"] if e["type"] == "gift.due"}
    assert ("m08", "2026-02-01", "bronze", 1) in gifts          # deferred by the pause (MAN-10)
    assert ("m05", "2025-09-01", "bronze", 1) in gifts
    assert not any(g[0] == "m05" and g[1] == "2026-03-01" for g in gifts)   # dropped by the 4th pause month
    assert ("m05", "2027-01-01", "bronze", 1) in gifts          # due at the as-of instant, no event needed
    assert not any(g[0] in ("m09", "m13") for g in gifts)
