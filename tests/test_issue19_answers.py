"""Issue 19: one Refusal type from the core to every answer, one answer type each for the quote, the
member and the run report, and an OpenAPI document complete by construction.

The real answers are those of the five programs' own example cases (programs/*.tests.yaml) sent
through the HTTP service, plus a few carts and histories that reach the keys the cases do not
(a ladder's second round, a gift a pause moved, RC-8's perk, a line that is no event)."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import yaml
from click.testing import CliRunner
from litestar.testing import TestClient

from engine.model.answers import Member, Quote, RunReport
from engine.model.errors import Refusal
from engine.shell.api import Engine
from engine.shell.cli import cli
from engine.shell.service import create_app

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("andest", "ansage", "amare", "manda", "rewards_circle")
TOKEN = "issue19-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANSWERS = {"events": "EventsAnswer", "quote": "Quote", "member": "Member"}


def program_path(program: str) -> str:
    return str(ROOT / "programs" / f"{program}.yaml")


def cases(program: str) -> list[dict]:
    return yaml.safe_load((ROOT / "programs" / f"{program}.tests.yaml").read_text(encoding="utf-8"))["cases"]


def manda_order(n: int, at: str, unit_price: int = 2500) -> dict:
    return {"id": f"o{n}", "type": "order.placed", "at": at, "member": "m1", "order": f"o{n}",
            "course": "subscription", "payment": {"method": "credit_card"},
            "lines": [{"sku": "KOSO-150", "qty": 1, "unit_price": unit_price, "tax_rate": 0.08}]}


def manda_diamond_history() -> list[dict]:
    """A manda subscriber buying 60,000 yen ex. 8% tax on the 15th of every month from January 2025
    to August 2032: 64,800 billed a month (60,000 + floor(4,800))."""
    events = [{"id": "r1", "type": "member.registered", "at": "2024-12-20T10:00:00+09:00", "member": "m1"},
              {"id": "s1", "type": "subscription.started", "at": "2025-01-10T10:00:00+09:00", "member": "m1",
               "subscription": "main"}]
    n = 0
    for year in range(2025, 2033):
        for month in range(1, 13):
            if (year, month) > (2032, 8):
                break
            n += 1
            events.append(manda_order(n, f"{year}-{month:02d}-15T10:00:00+09:00", unit_price=60000))
    return events


# --- collecting real answers ----------------------------------------------------------------------

class Answers:
    """Every answer the service gave for one program, by kind (events, quote, member)."""

    def __init__(self, program: str):
        self.program = program
        self.got: list[tuple[str, dict]] = []
        self.document: dict = {}

    def session(self, events: list, quotes: list[dict] = (), members_at: str | None = None,
                extra_bodies: list[bytes] = ()) -> dict[str, dict]:
        """One fresh ledger: post the events (twice: the second time refusals come from the ledger's
        record), the bodies, the carts; read every member as of ``members_at``."""
        app = create_app(program_path(self.program), ":memory:", TOKEN, access_log=lambda line: None)
        read: dict[str, dict] = {}
        with TestClient(app) as client:
            if events:
                for _ in range(2):
                    self.got.append(("events", client.post("/events", json=events, headers=AUTH).json()))
            for body in extra_bodies:
                self.got.append(("events", client.post("/events", content=body, headers=AUTH).json()))
            for cart in quotes:
                self.got.append(("quote", client.post("/quote", json=cart, headers=AUTH).json()))
            for member in sorted({e["member"] for e in events if isinstance(e, dict) and "member" in e}):
                r = client.get(f"/members/{member}", params={"as_of": members_at or "2030-01-01"}, headers=AUTH)
                if r.status_code == 200:
                    read[member] = r.json()
                    self.got.append(("member", read[member]))
            self.document = self.document or client.get("/openapi.json", headers=AUTH).json()
        return read


def probes(answers: Answers) -> dict[str, dict]:
    """Histories and carts beyond the example cases, for the keys the cases leave unreached."""
    read: dict[str, dict] = {}
    if answers.program == "manda":
        history = manda_diamond_history()
        read["diamond"] = answers.session(history, members_at="2032-08-20T00:00:00+09:00")["m1"]
        paused = cases("manda")[1]["events"]
        cart = dict(manda_order(0, "2025-09-20T10:00:00+09:00"), id="q1", order="q1")   # manda's cases quote none
        read["paused"] = answers.session(paused, [cart], members_at="2025-09-20T00:00:00+09:00")["m1"]
    if answers.program == "rewards_circle":
        registered = {"id": "e1", "type": "member.registered", "at": "2025-11-05T10:00:00+09:00", "member": "m1"}
        cart = {"id": "q1", "type": "order.placed", "at": "2025-11-06T10:00:00+09:00", "member": "m1",
                "order": "q1", "course": "subscription", "payment": {"method": "credit_card"}, "shipping": 800,
                "lines": [{"sku": "BOX-S", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}]}
        answers.session([registered], quotes=[cart])
        read["perk"] = answers.got[-2][1]
    answers.session([], extra_bodies=[b'{"id": "x1", "type": "member.registered"'])
    return read


@pytest.fixture(scope="module")
def collected() -> dict[str, tuple[Answers, dict]]:
    out = {}
    for program in PROGRAMS:
        answers = Answers(program)
        for case in cases(program):
            quotes = [{"id": "quote", "type": "order.placed", **case["quote"]}] if "quote" in case else []
            answers.session(case.get("events", []), quotes, str(case.get("as_of") or "2030-01-01"))
        out[program] = (answers, probes(answers))
    return out


# --- walking an answer beside its schema ---------------------------------------------------------

def keys_by_component(value, schema: dict, components: dict, seen: dict[str, set]) -> None:
    """Add to ``seen[component]`` the keys of every object of ``value`` that ``schema`` documents as
    that component (through $ref, anyOf and arrays). A map (``points``, ``tax``, ``args``) is a leaf."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        properties = components[name].get("properties", {})
        if isinstance(value, dict):
            seen.setdefault(name, set()).update(value)
            for key, item in value.items():
                if key in properties:
                    keys_by_component(item, properties[key], components, seen)
        return
    for option in schema.get("anyOf", ()):
        if value is None:
            return
        if isinstance(value, dict) and ("$ref" in option or option.get("type") == "object"):
            return keys_by_component(value, option, components, seen)
        if isinstance(value, list) and option.get("type") == "array":
            return keys_by_component(value, option, components, seen)
    if schema.get("type") == "array" and isinstance(value, list):
        for item in value:
            keys_by_component(item, schema.get("items", {}), components, seen)


def reachable(name: str, components: dict, found: set | None = None) -> set:
    """The components an answer component refers to, itself included."""
    found = set() if found is None else found
    if name in found:
        return found
    found.add(name)
    for ref in _refs(components[name]):
        reachable(ref, components, found)
    return found


def _refs(schema) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        return own + [r for v in schema.values() for r in _refs(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in _refs(v)]
    return []


def seen_keys(answers: Answers) -> dict[str, set]:
    components = answers.document["components"]["schemas"]
    seen: dict[str, set] = {}
    for kind, answer in answers.got:
        keys_by_component(answer, {"$ref": f"#/components/schemas/{ANSWERS[kind]}"}, components, seen)
    return seen


# --- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("program", PROGRAMS)
def test_issue19_2_every_key_of_a_real_answer_is_in_the_openapi_schema(collected, program):
    answers, _ = collected[program]
    components = answers.document["components"]["schemas"]
    kinds = {kind for kind, _ in answers.got}
    assert kinds == {"events", "quote", "member"}, kinds   # each program's cases give all three
    undocumented = {name: sorted(keys - set(components[name]["properties"]))
                    for name, keys in seen_keys(answers).items() if keys - set(components[name]["properties"])}
    assert undocumented == {}, undocumented
    # and each answer decodes as the Struct the document is generated from
    for kind, answer in answers.got:
        if kind != "events":
            msgspec.convert(answer, {"quote": Quote, "member": Member}[kind])


def test_issue19_2_every_key_of_the_openapi_answers_occurs_in_a_real_answer(collected):
    seen: dict[str, set] = {}
    for answers, _ in collected.values():
        for name, keys in seen_keys(answers).items():
            seen.setdefault(name, set()).update(keys)
    components = collected["andest"][0].document["components"]["schemas"]
    documented = set().union(*(reachable(name, components) for name in ANSWERS.values()))
    assert documented - set(seen) == set()     # every answer component is met in some real answer
    never = {name: sorted(set(components[name]["properties"]) - seen[name])
             for name in documented if set(components[name]["properties"]) - seen[name]}
    assert never == {}, never
    # the two keys /openapi.json once lacked
    assert "perks" in components["Quote"]["properties"] and "ladder" in components["Member"]["properties"]


def test_issue19_2_MAN_9_diamond_round_two_gifts_pending(collected):
    """MAN-2/3: 64,800 billed a month; regular -> bronze 2025-07-01 (6 months, 388,800 >= 15,000),
    then a stage every 12 months (777,600 >= 60,000): silver 2026-07, gold 2027-07, platinum_1
    2028-07, platinum_2 2029-07, platinum_3 2030-07, diamond 2031-07-01. MAN-9: diamond's again
    (12 months, 60,000) met on 2032-07-01 -> round 2, counters reset; its gifts two months later
    (2032-09-01) and six after that (2033-03-01). As of 2032-08-20: July closed and August counting
    = 2 months; 2 orders since the reset (07-15, 08-15) = 2 x 64,800 = 129,600."""
    diamond = collected["manda"][1]["diamond"]
    ladder = diamond["ladder"]
    assert diamond["tier"] == "diamond" and ladder["round"] == 2
    assert ladder["months"] == 2 and ladder["amount"] == 2 * 64_800
    assert [(g["number"], g["due"], g["round"]) for g in ladder["gifts_pending"]] == [
        (1, "2032-09-01", 2), (2, "2033-03-01", 2)]
    assert ladder["next"] == {"level": "diamond", "months": 12, "amount": 60_000, "rule": "MAN-9"}


def test_issue19_2_MAN_10_a_gift_a_pause_moved_is_pending_with_where_it_came_from(collected):
    """manda's 2nd case: bronze on 2025-07-01, the 1st gift due September (2 months later, MAN-9);
    paused 2025-08-20, September began paused, resumed 2025-09-10: the gift goes out 2025-10-01
    (MAN-10), deferred from 2025-09-01."""
    paused = collected["manda"][1]["paused"]
    first = paused["ladder"]["gifts_pending"][0]
    assert (first["number"], first["due"], first["deferred_from"]) == (1, "2025-10-01", "2025-09-01")


def test_issue19_2_RC_8_first_subscription_order_perk_in_the_quote(collected):
    """RC-8: a member's first subscription order ships free and earns a gift: the shipping of 800
    drops to 0, so the grand total is 10,000 + 10% tax 1,000 = 11,000; the perk is listed."""
    quote = collected["rewards_circle"][1]["perk"]
    assert quote["perks"] == [{"rule": "RC-8", "on": "first_subscription_order", "free_shipping": True,
                               "effect": "gift.due"}]
    assert quote["totals"]["shipping_ex_tax"] == 0 and quote["totals"]["grand_total"] == 11_000


# --- one Refusal, with its code, in every answer -----------------------------------------------------

REGISTERED = {"id": "e1", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m1"}
OVER = {"id": "e2", "type": "order.placed", "at": "2025-01-06T10:00:00+09:00", "member": "m1", "order": "o1",
        "course": "one_off", "payment": {"method": "credit_card"}, "redeem": {"points": 600},
        "lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 5000, "tax_rate": 0.10}]}


def test_issue19_1_AND_3_one_refusal_with_its_code_in_api_run_json_service_and_quote(tmp_path):
    """AND-4 gives 500 points on registration; the order asks to use 600 (AND-3: at most the valid
    balance, 500): refused, field redeem.points, code redeem.over_limit with asked 600 and max 500,
    the same Refusal in the Python API, `run --json`, POST /events and (as an error) POST /quote."""
    engine = Engine(program_path("andest"))
    engine.apply(REGISTERED)
    [refusal] = engine.apply(OVER).rejected
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.field, refusal.args["asked"], refusal.args["max"]) == ("redeem.over_limit",
                                                                                          "redeem.points", 600, 500)
    assert refusal["reason"] == refusal.message and refusal["event"] == "e2" and refusal.get("line") is None
    expected = msgspec.to_builtins(refusal)

    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(REGISTERED) + "\n" + json.dumps(OVER) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", program_path("andest"), str(events), "--db", ":memory:", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["rejected"] == [expected]
    msgspec.convert(report, RunReport)

    app = create_app(program_path("andest"), ":memory:", TOKEN, access_log=lambda line: None)
    with TestClient(app) as client:
        client.post("/events", json=REGISTERED, headers=AUTH)
        [answered] = client.post("/events", json=OVER, headers=AUTH).json()["rejected"]
        assert answered == {**expected, "index": None}
        [error] = client.post("/quote", json=OVER, headers=AUTH).json()["errors"]
    # a quote's error is the same refusal without the event: 500 of 600 (the reason alone)
    assert error == {"reason": "asks to use 600, but at most 500 can be used: " + refusal.args["why"],
                     "code": "redeem.over_limit", "args": refusal.args, "field": "redeem.points",
                     "rule": refusal.rule}


def test_issue19_1_every_refusal_in_the_service_carries_a_code(collected):
    codes = [r.get("code") for answers, _ in collected.values() for kind, answer in answers.got
             for r in (answer.get("rejected", []) if kind == "events" else answer.get("errors", []) if kind == "quote"
                       else [])]
    assert codes and all(codes), codes
    assert "refusal.recorded" in codes and "event.malformed_json" in codes   # a repeat, and a line that is no event


def test_issue19_1_a_refusal_by_code_reads_in_japanese(tmp_path):
    """A refused event's arguments reach the Japanese text (they were lost before there was one type):
    AND-3 over the balance of 500 (AND-4) by 600."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(REGISTERED) + "\n" + json.dumps(OVER) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", program_path("andest"), str(events), "--db", ":memory:",
                                      "--lang", "ja"])
    assert result.exit_code == 1
    assert "イベント e2、フィールド redeem.points: 600 を使おうとしていますが、使えるのは最大 500 です" in result.stderr


def test_issue19_2_the_service_answers_the_engines_types():
    from engine.shell import service

    assert service.Quote is Quote and service.Member is Member
    assert service.EventsAnswer.__annotations__["rejected"] == "list[Refusal]"


def test_issue19_engine_apply_given_a_list_says_to_use_apply_many_and_changes_nothing():
    # the slip of passing several events to Engine.apply: a TypeError that names apply_many, and
    # the ledger untouched (no member registered)
    e = Engine(ROOT / "programs" / "andest.yaml")
    events = [{"id": "r1", "type": "member.registered", "at": "2026-01-05T10:00:00+09:00", "member": "m1"}]
    with pytest.raises(TypeError, match="apply_many"):
        e.apply(events)  # type: ignore[arg-type]
    assert e.member("m1") is None
    assert not e.apply_many(events).rejected and e.member("m1") is not None
