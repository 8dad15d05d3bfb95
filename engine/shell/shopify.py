"""Shopify webhooks as this engine's events (docs/SHOPIFY.md): a pure mapping, payload dict -> event
dicts, no I/O. The service (``POST /webhooks/shopify``) verifies the signature, looks up what a
refund needs from the ledger, and applies the events this module returns.

    events_of("orders/create", payload)                      # -> [order.placed]
    events_of("refunds/create", payload, placed=order_event) # -> [order.returned, ...] one a refund line

Every event id is made from Shopify's own ids (``shopify-order-450789469-placed``), so a webhook
delivered twice, even under a new ``X-Shopify-Webhook-Id``, maps to the same ids and the ledger
skips the repeat.

Money: Shopify sends decimal strings in the shop's currency (JPY: whole yen). The contract wants
integer yen **excluding tax** and the tax rate of each line (0.08 or 0.10): with
``taxes_included`` a price is divided by (1 + rate) and rounded to the nearest yen (half up);
without it, the price is already ex tax.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

from engine.model.events import TAX_RATE_PERCENTS

TOPICS = ("customers/create", "orders/create", "orders/fulfilled", "orders/partially_fulfilled", "orders/updated",
          "orders/cancelled", "refunds/create")
# the contract's consumption tax rates (engine/model/events.py), exactly
RATES = tuple(Decimal(p) / 100 for p in TAX_RATE_PERCENTS)
# CONTRACT.md: shipping is taxed at the standard rate, the higher one
SHIPPING_RATE = max(RATES)


class ShopifyError(ValueError):
    """A payload this mapping cannot read: the field (a JSON path) and why."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"field {field}: {reason}")


def _get(payload: Any, key: str, where: str, kinds: tuple = (dict,)) -> Any:
    if not isinstance(payload, dict) or key not in payload or payload[key] is None:
        raise ShopifyError(f"{where}{key}", "missing")
    value = payload[key]
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise ShopifyError(f"{where}{key}", f"not {'/'.join(k.__name__ for k in kinds)}")
    return value


def _id(payload: Any, key: str, where: str = "") -> str:
    value = _get(payload, key, where, (int, str))
    text = str(value)
    if not text or len(text) > 60 or not text.isprintable():
        raise ShopifyError(f"{where}{key}", f"not an id: {text[:60]!r}")
    return text


def _time(payload: Any, key: str, where: str = "") -> str:
    return _get(payload, key, where, (str,))


def _money(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ShopifyError(field, "not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ShopifyError(field, f"not an amount: {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ShopifyError(field, f"not an amount of zero or more: {value!r}")
    return amount


def _yen(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def ex_tax(amount: Decimal, rate: Decimal, included: bool) -> int:
    """Integer yen ex tax: a tax-included amount over (1 + rate), to the nearest yen (half up)."""
    return _yen(amount / (1 + rate) if included else amount)


def _rate(line: dict, where: str) -> Decimal:
    """The line's consumption-tax rate from its tax_lines (the highest, when several)."""
    # ASSUMPTION: an untaxed line (taxable false, no tax_lines) is standard-rated goods the shop
    # exempts: the contract accepts only 0.08 and 0.10 ("tax_rate is 0.08 or 0.10 (nothing else is
    # accepted)"), so it is sent at 0.10.
    rates = []
    for i, tax in enumerate(line.get("tax_lines") or ()):
        rate = _money(_get(tax, "rate", f"{where}tax_lines[{i}].", (int, float, str)), f"{where}tax_lines[{i}].rate")
        if rate > 0:
            rates.append(rate)
    if not rates:
        return SHIPPING_RATE     # no tax line: the standard rate
    rate = max(rates)
    if rate not in RATES:
        raise ShopifyError(f"{where}tax_lines", f"tax rate {rate} is not 0.08 or 0.10 (Japanese consumption tax)")
    return rate


def _allocated(item: dict, where: str) -> Decimal:
    """What the discounts took from a line or a shipping line (its discount_allocations)."""
    total = Decimal(0)
    for i, allocation in enumerate(item.get("discount_allocations") or ()):
        total += _money(_get(allocation, "amount", f"{where}discount_allocations[{i}].", (str, int, float)),
                        f"{where}discount_allocations[{i}].amount")
    if not item.get("discount_allocations") and item.get("total_discount") not in (None, "", "0", "0.00"):
        total = _money(item["total_discount"], f"{where}total_discount")   # older payloads
    return total


def _payment(order: dict) -> dict:
    """The contract's payment method from the gateway names (default: a credit card)."""
    names = " ".join(str(n) for n in order.get("payment_gateway_names") or ()).lower()
    # ASSUMPTION: Shopify has no payment-method field, only gateway names ("Cash on Delivery (COD)",
    # "Bank Deposit", "shopify_payments", "NP後払い"); a name that is none of these is a card.
    if "cash on delivery" in names or "cod" in names.split() or "代金引換" in names or "代引" in names:
        return {"method": "cash_on_delivery"}
    if "bank" in names or "銀行振込" in names:
        return {"method": "bank_transfer"}
    if "np" in names.split() or "np後払い" in names or "後払い" in names:
        return {"method": "np_deferred"}
    payment: dict = {"method": "credit_card"}
    brand = (order.get("payment_details") or {}).get("credit_card_company")
    if isinstance(brand, str) and brand.strip():
        payment["card_brand"] = brand.strip().lower()
    return payment


def member_of(order: dict) -> Optional[str]:
    """The member: the Shopify customer's id, or None for an order without a customer (a guest)."""
    customer = order.get("customer")
    if not isinstance(customer, dict) or customer.get("id") is None:
        return None
    return _id(customer, "id", "customer.")


def placed_id(order_id: str) -> str:
    return f"shopify-order-{order_id}-placed"


def order_placed(order: dict) -> list[dict]:
    """orders/create -> one order.placed (none for a guest order: a guest earns and spends nothing)."""
    member = member_of(order)
    order_id = _id(order, "id")
    if member is None:
        return []
    included = bool(order.get("taxes_included"))
    lines, discount = [], 0
    for i, item in enumerate(_get(order, "line_items", "", (list,))):
        where = f"line_items[{i}]."
        if not isinstance(item, dict):
            raise ShopifyError(f"line_items[{i}]", "not an object")
        qty = _get(item, "quantity", where, (int,))
        if qty < 1:
            continue   # a line removed by an edit before the webhook
        rate = _rate(item, where)
        sku = item.get("sku") or (f"variant-{item['variant_id']}" if item.get("variant_id") is not None else None)
        if not isinstance(sku, str) or not sku.strip():
            raise ShopifyError(f"{where}sku", "missing, and no variant_id either")
        line = {"sku": sku.strip(), "qty": qty,
                "unit_price": ex_tax(_money(_get(item, "price", where, (str, int, float)), f"{where}price"), rate, included),
                "tax_rate": float(rate)}
        if item.get("product_id") is not None:
            line["product"] = f"product-{item['product_id']}"
        lines.append(line)
        discount += ex_tax(_allocated(item, where), rate, included)
    if not lines:
        raise ShopifyError("line_items", "no line with a quantity")
    shipping = 0
    for i, ship in enumerate(order.get("shipping_lines") or ()):
        where = f"shipping_lines[{i}]."
        gross = _money(_get(ship, "price", where, (str, int, float)), f"{where}price") - _allocated(ship, where)
        shipping += ex_tax(max(gross, Decimal(0)), SHIPPING_RATE, included)
    # ASSUMPTION: Shopify has no course; an order a subscription app made has source_name
    # "subscription_contract" (Shopify's subscription contracts), every other order is one-off.
    course = "subscription" if order.get("source_name") == "subscription_contract" else "one_off"
    event: dict[str, Any] = {"id": placed_id(order_id), "type": "order.placed", "at": _time(order, "created_at"), "member": member,
             "order": order_id, "course": course, "payment": _payment(order), "lines": lines}
    if shipping:
        event["shipping"] = shipping
    if discount:
        event["coupon_discount"] = discount
    return [event]


def order_shipped(order: dict) -> list[dict]:
    """orders/fulfilled, orders/partially_fulfilled, orders/updated -> order.shipped once every line is
    fulfilled, and order.delivered once every fulfilment's shipment_status is "delivered"."""
    member = member_of(order)
    order_id = _id(order, "id")
    # ASSUMPTION: the contract's order.shipped is the whole order ("order.shipped | order"), so a
    # partial fulfilment ships nothing yet; the points wait for fulfillment_status "fulfilled"
    # (then the shipment's time is the last fulfilment's created_at).
    if member is None or order.get("fulfillment_status") != "fulfilled":
        return []
    times: list[str] = [f["created_at"] for f in order.get("fulfillments") or () if isinstance(f, dict)
                        and isinstance(f.get("created_at"), str) and f.get("status") in (None, "success")]
    at = max(times) if times else _time(order, "updated_at")
    events = [{"id": f"shopify-order-{order_id}-shipped", "type": "order.shipped", "at": at, "member": member,
               "order": order_id}]
    # every fulfilment's carrier status "delivered" (Shopify's fulfillment.shipment_status): the order
    # arrived, at the last fulfilment's updated_at (a return's window counts from then)
    shipments = [f for f in order.get("fulfillments") or () if isinstance(f, dict) and f.get("status") in (None, "success")]
    if shipments and all(f.get("shipment_status") == "delivered" for f in shipments):
        arrived: list[str] = [f["updated_at"] for f in shipments if isinstance(f.get("updated_at"), str)]
        if arrived:
            events.append({"id": f"shopify-order-{order_id}-delivered", "type": "order.delivered",
                           "at": max(max(arrived), at), "member": member, "order": order_id})
    return events


def order_cancelled(order: dict) -> list[dict]:
    member = member_of(order)
    order_id = _id(order, "id")
    if member is None:
        return []
    return [{"id": f"shopify-order-{order_id}-cancelled", "type": "order.cancelled",
             "at": _time(order, "cancelled_at"), "member": member, "order": order_id}]


def customer_registered(customer: dict) -> list[dict]:
    member = _id(customer, "id")
    return [{"id": f"shopify-customer-{member}-registered", "type": "member.registered",
             "at": _time(customer, "created_at"), "member": member}]


def order_returned(refund: dict, placed: Optional[dict]) -> list[dict]:
    """refunds/create -> one order.returned a refund line (restocked or not: the goods are refunded).
    ``placed`` is the order.placed this mapping made for the order (the service reads it from the
    ledger); without it the refund names an order the ledger does not know."""
    refund_id = _id(refund, "id")
    order_id = _id(refund, "order_id")
    items = refund.get("refund_line_items") or []
    if not isinstance(items, list):
        raise ShopifyError("refund_line_items", "not a list")
    if not items:
        return []   # a refund of shipping or an adjustment only: no goods come back
    if placed is None:
        raise ShopifyError("order_id", f"order {order_id} is not in the ledger (its orders/create was not applied)")
    lines = placed["lines"]
    left = [line["qty"] for line in lines]
    events = []
    for i, item in enumerate(items):
        where = f"refund_line_items[{i}]."
        qty = _get(item, "quantity", where, (int,))
        if qty < 1:
            continue
        line_item = _get(item, "line_item", where)
        sku = line_item.get("sku") or (f"variant-{line_item['variant_id']}" if line_item.get("variant_id") is not None
                                       else None)
        places = [n for n, line in enumerate(lines) if line["sku"] == (sku or "").strip()]
        if not places:
            raise ShopifyError(f"{where}line_item.sku", f"{sku!r} is not a line of order {order_id}")
        returned = {"sku": lines[places[0]]["sku"], "qty": qty}
        if len(places) > 1:
            # ASSUMPTION: the placed event keeps no Shopify line id; of the lines with this sku, the
            # one at the same ex-tax price with units left is the one refunded (two lines alike in
            # sku and price earn alike, so either is the same return)
            rate = _rate(line_item, f"{where}line_item.")
            gross = _money(line_item.get("price", 0), f"{where}line_item.price")
            prices = {ex_tax(gross, rate, True), ex_tax(gross, rate, False)}   # the refund does not say which
            fitting = [n for n in places if left[n] >= qty and lines[n]["unit_price"] in prices] or \
                      [n for n in places if left[n] >= qty] or places
            returned["line"] = fitting[0]
            left[fitting[0]] -= qty
        line_id = _id(item, "id", where)
        events.append({"id": f"shopify-refund-{refund_id}-{line_id}", "type": "order.returned",
                       "at": _time(refund, "created_at"), "member": placed["member"], "order": order_id,
                       "lines": [returned]})
    return events


def events_of(topic: str, payload: Any, placed: Optional[dict] = None) -> list[dict]:
    """The engine events of one Shopify webhook (topic from X-Shopify-Topic); [] when it maps to none.
    Raises ShopifyError naming the field for a payload it cannot read."""
    if not isinstance(payload, dict):
        raise ShopifyError("(body)", "not a JSON object")
    if topic == "customers/create":
        return customer_registered(payload)
    if topic == "orders/create":
        return order_placed(payload)
    if topic in ("orders/fulfilled", "orders/partially_fulfilled", "orders/updated"):
        return order_shipped(payload)
    if topic == "orders/cancelled":
        return order_cancelled(payload)
    if topic == "refunds/create":
        return order_returned(payload, placed)
    return []
