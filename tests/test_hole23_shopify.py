"""Issue 23, the Shopify adapter (engine/shell/shopify.py, POST /webhooks/shopify, docs/SHOPIFY.md).
The payloads are written from Shopify's documented webhook fields (REST Admin API Order, Customer and
Refund objects: id, created_at, customer.id, taxes_included, line_items[].price/quantity/sku/
tax_lines[].rate/discount_allocations[].amount, shipping_lines[].price, fulfillment_status,
fulfillments[].created_at, cancelled_at, refund_line_items[].line_item/quantity)."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json

import pytest
from litestar.testing import TestClient

from engine.shell import shopify
from engine.shell.service import create_app
from engine.shell.shopify import ShopifyError, events_of
from tests.test_hole23_service_ops import AUTH, PROGRAM, TOKEN

SECRET = "shpss_test_secret_0123456789"

CUSTOMER = {"id": 706405506930370084, "email": "bob@example.com", "accepts_marketing": False,
            "created_at": "2025-01-05T10:00:00+09:00", "updated_at": "2025-01-05T10:00:00+09:00",
            "first_name": "Bob", "last_name": "Norman", "orders_count": 0, "state": "disabled",
            "total_spent": "0.00", "tags": "", "currency": "JPY"}

ORDER = {
    "id": 820982911946154508, "name": "#1001", "email": "bob@example.com", "currency": "JPY",
    "created_at": "2025-01-06T10:00:00+09:00", "updated_at": "2025-01-06T10:00:00+09:00",
    "taxes_included": True, "financial_status": "paid", "fulfillment_status": None,
    "source_name": "web", "payment_gateway_names": ["shopify_payments"],
    "customer": {"id": 706405506930370084, "email": "bob@example.com"},
    "total_discounts": "1100", "total_tax": "1104",
    "line_items": [
        {"id": 866550311766439020, "variant_id": 808950810, "product_id": 632910392, "title": "Tee",
         "sku": "TEE-M", "quantity": 2, "price": "5500", "taxable": True, "fulfillable_quantity": 2,
         "tax_lines": [{"title": "消費税", "rate": 0.1, "price": "900"}],
         "discount_allocations": [{"amount": "1100", "discount_application_index": 0}]},
        {"id": 141249953214522974, "variant_id": 457924702, "product_id": 921728736, "title": "Tea",
         "sku": "TEA-1", "quantity": 1, "price": "1080", "taxable": True, "fulfillable_quantity": 1,
         "tax_lines": [{"title": "消費税 (軽減)", "rate": 0.08, "price": "80"}], "discount_allocations": []},
    ],
    "shipping_lines": [{"id": 271878346596884015, "title": "宅配便", "price": "880", "code": "Standard",
                        "tax_lines": [{"rate": 0.1, "price": "80"}], "discount_allocations": []}],
    "fulfillments": [], "refunds": [], "cancelled_at": None, "cancel_reason": None,
}

# What the mapping must make of ORDER, worked out by hand (taxes_included, so each price / (1 + rate)):
#   TEE-M 5,500 / 1.10 = 5,000 ex tax; TEA-1 1,080 / 1.08 = 1,000 ex tax;
#   discount 1,100 on the tee (10%): 1,100 / 1.10 = 1,000 ex tax -> coupon_discount 1000;
#   shipping 880 / 1.10 = 800 ex tax.
PLACED = {"id": "shopify-order-820982911946154508-placed", "type": "order.placed", "at": "2025-01-06T10:00:00+09:00",
          "member": "706405506930370084", "order": "820982911946154508", "course": "one_off",
          "payment": {"method": "credit_card"},
          "lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 5000, "tax_rate": 0.1, "product": "product-632910392"},
                    {"sku": "TEA-1", "qty": 1, "unit_price": 1000, "tax_rate": 0.08, "product": "product-921728736"}],
          "shipping": 800, "coupon_discount": 1000}


def partially_fulfilled() -> dict:
    order = copy.deepcopy(ORDER)
    order["fulfillment_status"] = "partial"
    order["fulfillments"] = [{"id": 255858046, "order_id": ORDER["id"], "status": "success",
                              "created_at": "2025-01-07T09:00:00+09:00",
                              "line_items": [{"id": 141249953214522974, "quantity": 1}]}]
    return order


def fulfilled() -> dict:
    order = partially_fulfilled()
    order["fulfillment_status"] = "fulfilled"
    order["fulfillments"].append({"id": 255858047, "order_id": ORDER["id"], "status": "success",
                                  "created_at": "2025-01-08T09:00:00+09:00",
                                  "line_items": [{"id": 866550311766439020, "quantity": 2}]})
    return order


def delivered() -> dict:
    order = fulfilled()
    order["updated_at"] = "2025-01-09T15:00:00+09:00"
    for n, f in enumerate(order["fulfillments"]):
        f["shipment_status"] = "delivered"
        f["updated_at"] = f"2025-01-09T1{n}:00:00+09:00"
    return order


REFUND = {"id": 509562969, "order_id": ORDER["id"], "created_at": "2025-01-10T12:00:00+09:00", "note": "size",
          "restock": True, "user_id": 548380009,
          "refund_line_items": [{"id": 104689539, "line_item_id": 866550311766439020, "quantity": 1,
                                 "restock_type": "return", "subtotal": 4950, "total_tax": 450,
                                 "line_item": copy.deepcopy(ORDER["line_items"][0])}],
          "transactions": [{"id": 179259969, "kind": "refund", "amount": "4950"}]}


def second_order() -> dict:
    order = copy.deepcopy(ORDER)
    order["id"], order["name"], order["created_at"] = 820982911946154999, "#1002", "2025-01-10T13:00:00+09:00"
    order["line_items"] = order["line_items"][1:]
    order["shipping_lines"] = []
    return order


def cancelled() -> dict:
    order = second_order()
    order["cancelled_at"] = "2025-01-11T09:00:00+09:00"
    order["cancel_reason"] = "customer"
    return order


def test_hole23_3_orders_create_tax_included_discount_shipping_to_ex_tax_lines():
    assert events_of("orders/create", ORDER) == [PLACED]


def test_hole23_3_taxes_not_included_are_taken_as_ex_tax():
    order = copy.deepcopy(ORDER)
    order["taxes_included"] = False
    order["line_items"][0]["price"] = "5000"              # ex tax as sent: 5,000
    order["line_items"][0]["discount_allocations"] = [{"amount": "1000"}]
    order["line_items"][1]["price"] = "1000"
    order["shipping_lines"][0]["price"] = "800"
    [event] = events_of("orders/create", order)
    assert event["lines"][0]["unit_price"] == 5000 and event["lines"][1]["unit_price"] == 1000
    assert event["coupon_discount"] == 1000 and event["shipping"] == 800


def test_hole23_3_rounding_of_a_price_that_does_not_divide():
    order = copy.deepcopy(ORDER)
    order["line_items"][0]["price"] = "1000"   # 1,000 / 1.10 = 909.09 -> 909 (nearest yen)
    order["line_items"][0]["discount_allocations"] = [{"amount": "55"}]   # 55 / 1.10 = 50
    order["shipping_lines"][0]["discount_allocations"] = [{"amount": "880"}]   # free shipping: no shipping
    [event] = events_of("orders/create", order)
    assert event["lines"][0]["unit_price"] == 909 and event["coupon_discount"] == 50 and "shipping" not in event


def test_hole23_3_partial_fulfilment_ships_nothing_then_fulfilled_ships_at_the_last():
    assert events_of("orders/partially_fulfilled", partially_fulfilled()) == []
    assert events_of("orders/fulfilled", fulfilled()) == [
        {"id": "shopify-order-820982911946154508-shipped", "type": "order.shipped", "at": "2025-01-08T09:00:00+09:00",
         "member": "706405506930370084", "order": "820982911946154508"}]


def test_hole23_3_refund_per_line_and_cancel_and_customer():
    assert events_of("refunds/create", REFUND, placed=PLACED) == [
        {"id": "shopify-refund-509562969-104689539", "type": "order.returned", "at": "2025-01-10T12:00:00+09:00",
         "member": "706405506930370084", "order": "820982911946154508", "lines": [{"sku": "TEE-M", "qty": 1}]}]
    assert events_of("orders/cancelled", cancelled())[0]["type"] == "order.cancelled"
    assert events_of("customers/create", CUSTOMER) == [
        {"id": "shopify-customer-706405506930370084-registered", "type": "member.registered",
         "at": "2025-01-05T10:00:00+09:00", "member": "706405506930370084"}]


def test_hole23_3_a_shared_sku_refund_names_the_line_by_price():
    placed = copy.deepcopy(PLACED)
    placed["lines"].append({"sku": "TEE-M", "qty": 1, "unit_price": 4000, "tax_rate": 0.1})
    refund = copy.deepcopy(REFUND)
    refund["refund_line_items"][0]["line_item"]["price"] = "4400"   # 4,400 / 1.10 = 4,000: the third line
    [event] = events_of("refunds/create", refund, placed=placed)
    assert event["lines"] == [{"sku": "TEE-M", "qty": 1, "line": 2}]


def test_hole23_3_unreadable_payloads_name_the_field():
    order = copy.deepcopy(ORDER)
    order["line_items"][1]["tax_lines"][0]["rate"] = 0.05
    with pytest.raises(ShopifyError) as bad:
        events_of("orders/create", order)
    assert bad.value.field == "line_items[1].tax_lines"
    order = copy.deepcopy(ORDER)
    del order["created_at"]
    with pytest.raises(ShopifyError, match="created_at"):
        events_of("orders/create", order)
    guest = copy.deepcopy(ORDER)
    guest["customer"] = None
    assert events_of("orders/create", guest) == []    # a guest earns and spends nothing


# --- over HTTP ---------------------------------------------------------------------------------------

def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_webhook(client, topic: str, payload: dict, webhook_id: str, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id,
               "X-Shopify-Hmac-SHA256": signature if signature is not None else sign(body),
               "X-Shopify-Shop-Domain": "andest.myshopify.com", "Content-Type": "application/json"}
    return client.post("/webhooks/shopify", content=body, headers=headers)


LIFE = [("customers/create", CUSTOMER), ("orders/create", ORDER), ("orders/partially_fulfilled", partially_fulfilled()),
        ("orders/fulfilled", fulfilled()), ("orders/updated", delivered()), ("refunds/create", REFUND),
        ("orders/create", second_order()), ("orders/cancelled", cancelled())]


def _ledger(client, member: str) -> dict:
    r = client.get(f"/members/{member}?as_of=2025-02-01", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_hole23_3_a_signed_order_life_gives_the_ledger_of_the_equivalent_events(tmp_path):
    hooks = TestClient(create_app(PROGRAM, str(tmp_path / "a.db"), TOKEN, shopify_secret=SECRET))
    plain = TestClient(create_app(PROGRAM, str(tmp_path / "b.db"), TOKEN))
    member = "706405506930370084"
    with hooks, plain:
        for n, (topic, payload) in enumerate(LIFE):
            r = post_webhook(hooks, topic, payload, f"wh-{n}")
            assert r.status_code == 200 and not r.json().get("rejected"), r.text
        # the same life as this engine's events, written by hand (no bearer needed above; here it is)
        events = [
            {"id": "c", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": member},
            {**PLACED, "id": "o"},
            {"id": "s", "type": "order.shipped", "at": "2025-01-08T09:00:00+09:00", "member": member,
             "order": "820982911946154508"},
            {"id": "d", "type": "order.delivered", "at": "2025-01-09T11:00:00+09:00", "member": member,
             "order": "820982911946154508"},
            {"id": "r", "type": "order.returned", "at": "2025-01-10T12:00:00+09:00", "member": member,
             "order": "820982911946154508", "lines": [{"sku": "TEE-M", "qty": 1}]},
            {"id": "o2", "type": "order.placed", "at": "2025-01-10T13:00:00+09:00", "member": member,
             "order": "820982911946154999", "course": "one_off", "payment": {"method": "credit_card"},
             "lines": [{"sku": "TEA-1", "qty": 1, "unit_price": 1000, "tax_rate": 0.08, "product": "product-921728736"}]},
            {"id": "x", "type": "order.cancelled", "at": "2025-01-11T09:00:00+09:00", "member": member,
             "order": "820982911946154999"},
        ]
        r = plain.post("/events", headers=AUTH, json=events)
        assert r.status_code == 200, r.text
        a, b = _ledger(hooks, member), _ledger(plain, member)
        # the event ids differ (Shopify's against the hand-written ones): a lot is compared by what it
        # holds, and whether an event ended it
        strip = lambda view: {**view, "lots": [{**{k: v for k, v in lot.items() if k not in ("id", "source")},
                                                "ended_by": lot.get("ended_by") is not None}
                                               for lot in view["lots"]]}
        assert strip(a) == strip(b)
        # AND-4 500 valid at sign-up; the first order's 94 (AND-1, below) valid once shipped (AND-2);
        # one tee of two back (AND-7, post-coupon): the return's share is taken back and the kept
        # lines earn what the same rules give them: the engine's figure is the same on both ledgers
        assert a["points"]["valid"] == b["points"]["valid"] > 500
        assert a["points"].get("void", 0) == b["points"].get("void", 0)


def test_hole23_3_signed_order_earns_AND_1_on_the_ex_tax_lines(tmp_path):
    with TestClient(create_app(PROGRAM, str(tmp_path / "a.db"), TOKEN, shopify_secret=SECRET)) as client:
        post_webhook(client, "customers/create", CUSTOMER, "wh-1")
        post_webhook(client, "orders/create", ORDER, "wh-2")
        view = _ledger(client, "706405506930370084")
    # AND-1 1% of the items ex tax after AND-8's 5% member price and AND-7's coupon, floored once:
    # items 2 x 5,000 + 1,000 = 11,000; member price 11,000 x 0.95 = 10,450; coupon 1,000 -> 9,450;
    # 9,450 x 1% = 94.5 -> 94 points, pending until shipped (AND-2)
    assert view["points"]["pending"] == EXPECTED_PENDING


EXPECTED_PENDING = 94


def test_hole23_3_unsigned_bad_signature_and_replayed_webhooks_change_nothing(tmp_path):
    with TestClient(create_app(PROGRAM, str(tmp_path / "a.db"), TOKEN, shopify_secret=SECRET)) as client:
        assert post_webhook(client, "customers/create", CUSTOMER, "wh-1", signature="").status_code == 401
        assert post_webhook(client, "customers/create", CUSTOMER, "wh-1",
                            signature=sign(b"other body")).status_code == 401
        assert post_webhook(client, "customers/create", CUSTOMER, "wh-1",
                            signature=sign(json.dumps(CUSTOMER).encode(), "wrong secret")).status_code == 401
        assert client.get("/members/706405506930370084", headers=AUTH).status_code == 404   # nothing applied
        r = post_webhook(client, "customers/create", CUSTOMER, "wh-1")
        assert r.json()["applied"] == ["shopify-customer-706405506930370084-registered"]
        post_webhook(client, "orders/create", ORDER, "wh-2")
        again = post_webhook(client, "orders/create", ORDER, "wh-2")          # the same delivery twice
        assert again.status_code == 200 and again.json()["duplicate"] is True
        fresh = post_webhook(client, "orders/create", ORDER, "wh-2-resent")   # re-sent under a new webhook id
        assert fresh.json()["skipped"] == [PLACED["id"]] and fresh.json()["applied"] == []
        assert _ledger(client, "706405506930370084")["points"]["pending"] == EXPECTED_PENDING   # once, not twice


def test_hole23_3_no_secret_configured_refuses_every_webhook(tmp_path, monkeypatch):
    monkeypatch.delenv("LOYALTY_SHOPIFY_SECRET", raising=False)
    with TestClient(create_app(PROGRAM, str(tmp_path / "a.db"), TOKEN)) as client:
        assert post_webhook(client, "customers/create", CUSTOMER, "wh-1", signature="").status_code == 401
        assert post_webhook(client, "customers/create", CUSTOMER, "wh-1").status_code == 401


def test_hole23_3_a_payload_it_cannot_read_is_422_naming_the_field(tmp_path):
    order = copy.deepcopy(ORDER)
    order["line_items"][0]["quantity"] = "two"
    with TestClient(create_app(PROGRAM, str(tmp_path / "a.db"), TOKEN, shopify_secret=SECRET)) as client:
        r = post_webhook(client, "orders/create", order, "wh-9")
        assert r.status_code == 422 and r.json()["field"] == "line_items[0].quantity"
    assert shopify.TOPICS
