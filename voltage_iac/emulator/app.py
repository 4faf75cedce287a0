"""The emulator's HTTP front: the Voltage wallets API under `/v1`, admin under `/_emulator`.

Sits between an HTTP server (uvicorn, started by `server.py`) and the emulator's world
(`store.py`). It does what the real API's edge does: authenticates the `x-api-key`,
checks access, validates request shapes, and renders answers in the contract's shapes
(`Wallet`, `WalletPolicies`, `SummaryLineOfCredit`, the `{"error": ...}` envelope).
Business rules live in the store; misbehaviour comes from `faults.py`, applied here for
every `/v1` request (latency, 429, 500 before or after the write, cut-off answers).

The admin endpoints under `/_emulator/` are not part of the contract: tests and demos use
them to seed, inspect, reset and steer faults of an emulator running in another process.
Every answer carries an `x-request-id` header.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from voltage_iac.emulator.faults import WRITE_METHODS, Decision, FaultRule, Faults
from voltage_iac.emulator.invoice import MAX_DESCRIPTION_BYTES
from voltage_iac.emulator.networks import REQUEST_NETWORKS, network_response_name
from voltage_iac.emulator.seed import WEBHOOK_EVENTS, SeedError
from voltage_iac.emulator.store import (
    POLICY_TYPES,
    WEBHOOK_STATUSES,
    KeyGrant,
    LineSummary,
    NewReceive,
    NewWallet,
    NewWebhook,
    PolicyRecord,
    ReceiveView,
    RuleError,
    Store,
    WalletPoliciesView,
    WalletView,
    WebhookView,
    hash_key,
    wallet_not_found,
    webhook_not_found,
)

API_PREFIX = "/v1"
ADMIN_PREFIX = "/_emulator"
MAX_BODY_BYTES = 1024 * 1024
MAX_CACHED_LISTING_BYTES = 32 * 1024 * 1024
U64_MAX = 2**64 - 1
BALANCE_NAMESPACE = uuid.UUID("5d1e7c2a-9b3f-5a4e-8c6d-0e1f2a3b4c5d")
DECISION_KEY = "voltage_iac.emulator.decision"

Handler = Callable[[Request], Awaitable[Response]]
Found = TypeVar("Found")


# --- rendering ---------------------------------------------------------------------------


def timestamp(seconds: float | None) -> str | None:
    """RFC 3339 in UTC with microseconds, e.g. 2026-10-01T12:00:00.000000Z."""
    if seconds is None:
        return None
    return _timestamp(seconds)


@functools.lru_cache(maxsize=1 << 17)
def _timestamp(seconds: float) -> str:
    # A listing shows each wallet's times on every read: formatted once each.
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=1 << 17)
def _balance_id(wallet_id: str) -> str:
    return str(uuid.uuid5(BALANCE_NAMESPACE, f"{wallet_id}/btc"))


def _amount(msats: int) -> dict[str, Any]:
    return {"currency": "btc", "amount": abs(msats), "unit": "msats", "negative": msats < 0}


def wallet_json(view: WalletView) -> dict[str, Any]:
    """A wallet in the contract's `Wallet` shape (network in the response spelling)."""
    network = network_response_name(view.network)
    balance = {
        "id": _balance_id(view.id),
        "wallet_id": view.id,
        "effective_time": timestamp(view.updated_at),
        "available": _amount(view.balance_msats),
        "total": _amount(view.balance_msats),
        "network": network,
        "currency": "btc",
    }
    return {
        "id": view.id,
        "active": view.active,
        "created_at": timestamp(view.created_at),
        "updated_at": timestamp(view.updated_at),
        "deleted_at": timestamp(view.deleted_at),
        "deletion_failed_at": timestamp(view.deletion_failed_at),
        "name": view.name,
        "organization_id": view.organization_id,
        "environment_id": view.environment_id,
        "limit": view.limit,
        "line_of_credit_id": view.line_of_credit_id,
        "network": network,
        "metadata": view.metadata,
        "balances": [balance],
        "holds": [],
        "pending_settlements": [],
        "error": None,
    }


def _policy_json(record: PolicyRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"id": record.id}
    if record.type == "max_payment_size":
        data["max_size_sats"] = record.value
    elif record.type == "transaction_velocity":
        data["transactions_per_minute"] = record.value
    elif record.type == "send_volume_limit":
        data["limit_sats"] = record.value
    elif record.type == "reflex_approval":
        data["template_id"] = record.value
        data["threshold"] = None
    elif record.type == "processing_fee":
        data["rates"] = dict(record.value)
    data["created_at"] = timestamp(record.created_at)
    if record.type != "ofac_compliant":
        data["updated_at"] = timestamp(record.updated_at)
    return {"type": record.type, "data": data}


def policies_json(view: WalletPoliciesView) -> dict[str, Any]:
    """A wallet's policies in the contract's `WalletPolicies` shape (id = the wallet id)."""
    return {
        "id": view.wallet_id,
        "organization_id": view.organization_id,
        "policies": [_policy_json(p) for p in view.policies],
        "updated_at": timestamp(view.updated_at),
    }


def line_json(summary: LineSummary) -> dict[str, Any]:
    """A line of credit in the contract's `SummaryLineOfCredit` shape."""
    return {
        "id": summary.id,
        "organization_id": summary.organization_id,
        "network": network_response_name(summary.network),
        "environment_id": summary.environment_id,
        "limit": summary.limit,
        "allocated_limit": summary.allocated_limit,
        "currency": summary.currency,
        "disabled_at": timestamp(summary.disabled_at),
    }


def webhook_json(view: WebhookView) -> dict[str, Any]:
    """A webhook in the contract's `WebhookRead` shape."""
    return {
        "id": view.id,
        "organization_id": view.organization_id,
        "environment_id": view.environment_id,
        "url": view.url,
        "name": view.name,
        "events": [{kind: event} for kind, event in view.events],
        "status": view.status,
        "created_at": timestamp(view.created_at),
        "updated_at": timestamp(view.updated_at),
        "stopped_at": timestamp(view.stopped_at),
        "deleted_at": timestamp(view.deleted_at),
    }


def _btc(msats: int) -> dict[str, Any]:
    return {"currency": "btc", "amount": msats, "unit": "msats"}


def receive_json(view: ReceiveView) -> dict[str, Any]:
    """A receive in the contract's `Payment` shape (direction receive, type bolt11)."""
    if view.status == "completed" and view.settled_msats is not None:
        amount = view.settled_msats
    elif view.requested_msats is not None:
        amount = view.requested_msats + (view.fee_msats or 0)  # what the payer owes
    else:
        amount = 0  # any amount: the payer chooses
    receipts = []
    if view.status == "completed":
        receipts.append(
            {
                "type": "lightning",
                "data": {
                    "preimage": view.preimage,
                    "payment_hash": view.payment_hash,
                    "ledger_id": str(uuid.uuid5(BALANCE_NAMESPACE, f"{view.id}/credit")),
                },
            }
        )
    data: dict[str, Any] = {
        "payment_request": view.payment_request,
        "amount": _btc(amount),
        "amount_msats": amount,
        "memo": view.description,
        "expiration": view.expiration,
        "market_quote": None,
        "receipts": receipts,
    }
    body: dict[str, Any] = {
        "id": view.id,
        "wallet_id": view.wallet_id,
        "organization_id": view.organization_id,
        "environment_id": view.environment_id,
        "payment_category": "standard",
        "metadata": view.metadata,
        "created_at": timestamp(view.created_at),
        "updated_at": timestamp(view.updated_at),
        "currency": "btc",
        "direction": "receive",
        "type": "bolt11",
        "status": view.status,
        "error": None,
        "frozen": [],
        "exchanges": [],
        "data": data,
    }
    if view.requested_msats is not None:
        body["requested_amount"] = _btc(view.requested_msats)
    if view.error is not None:
        error_type, code, detail = view.error
        body["error"] = {"type": error_type, "code": code, "detail": detail, "context": None}
    if view.fee_msats and view.fee_basis_points and view.requested_msats is not None:
        fee = _btc(view.fee_msats)
        data["fees"] = fee
        body["processing_fee"] = {"basis_points": view.fee_basis_points, "amount": fee}
        body["payment_breakdown"] = {
            "principal": _btc(view.requested_msats),
            "network_fee": _btc(0),
            "processing_fee": fee,
        }
    if view.payment_request is not None:
        body["bip21_uri"] = "lightning:" + view.payment_request
    return body


def error_response(
    status: int,
    error_type: str,
    detail: str,
    context: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The documented envelope `{"error": {"type", "detail", "context"?}}`."""
    error: dict[str, Any] = {"type": error_type, "detail": detail}
    if context is not None:
        error["context"] = dict(context)
    return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


def _rule_response(exc: RuleError) -> JSONResponse:
    response = error_response(exc.status, exc.error_type, exc.detail, exc.context)
    if exc.code is None:
        return response
    error: dict[str, Any] = {"type": exc.error_type, "code": exc.code, "detail": exc.detail}
    if exc.context is not None:
        error["context"] = dict(exc.context)
    return JSONResponse({"error": error}, status_code=exc.status)


# --- request checks ----------------------------------------------------------------------


class _Invalid(Exception):
    """A request body that does not fit the schema: answered 422 invalid_data."""


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _path_uuid(request: Request, name: str) -> str:
    value = _canonical_uuid(request.path_params[name])
    if value is None:
        raise RuleError(400, "invalid_parameter", f"path parameter {name} must be a UUID")
    return value


def _query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise RuleError(400, "invalid_parameter", f"query parameter {name} must be true or false")


def _query_uuids(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    if not raw:
        return None
    values = []
    for item in raw:
        for part in item.split(","):
            value = _canonical_uuid(part.strip())
            if value is None:
                raise RuleError(400, "invalid_parameter", f"query parameter {name} takes UUIDs")
            values.append(value)
    return values


PAYMENT_STATUSES = (
    "sending",
    "receiving",
    "approved",
    "generating",
    "expired",
    "failed",
    "completed",
)


def _query_uuid(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = _canonical_uuid(raw)
    if value is None:
        raise RuleError(400, "invalid_parameter", f"query parameter {name} must be a UUID")
    return value


def _query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise RuleError(400, "invalid_parameter", f"{name} takes {', '.join(choices)}")
    return raw


def _query_count(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > 2**32 - 1:
        raise RuleError(400, "invalid_parameter", f"{name} must be an integer >= 0")
    return int(raw)


def _query_time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RuleError(400, "invalid_parameter", f"{name} must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _cursor_offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except ValueError:
        raise RuleError(
            400,
            "invalid_cursor",
            "the cursor is not one this API issued",
            {"field": "cursor", "recovery": "start again without a cursor"},
        ) from None


def _query_list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    if not raw:
        return None
    values = [part.strip() for item in raw for part in item.split(",")]
    if not all(values):
        raise RuleError(400, "invalid_parameter", f"query parameter {name} has an empty value")
    return values


def new_shared_secret() -> str:
    """A webhook's shared secret: 32 random bytes, URL-safe text."""
    return "whsec_" + secrets.token_urlsafe(32)


def _field_uuid(body: Mapping[str, Any], name: str) -> str:
    value = body[name]
    canonical = _canonical_uuid(value) if isinstance(value, str) else None
    if canonical is None:
        raise _Invalid(f"{name}: expected a UUID string")
    return canonical


def _field_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{name}: expected an integer")
    if not low <= value <= high:
        raise _Invalid(f"{name}: must be between {low} and {high}")
    return value


def _require(body: Mapping[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in body:
            raise _Invalid(f"missing field `{name}`")


def _check_name(name: str) -> None:
    if not 3 <= len(name) <= 256:
        raise RuleError(
            400,
            "invalid_request",
            "name must be 3 to 256 characters long",
            {"fields": ["name"]},
        )


def parse_new_wallet(body: Any) -> NewWallet:
    """A `NewWalletRequest`; raises _Invalid (422) or RuleError (400)."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    _require(body, ("id", "environment_id", "line_of_credit_id", "name", "network", "limit"))
    wallet_id = _field_uuid(body, "id")
    environment_id = _field_uuid(body, "environment_id")
    line_id = _field_uuid(body, "line_of_credit_id")
    name = body["name"]
    if not isinstance(name, str):
        raise _Invalid("name: expected a string")
    network = body["network"]
    if network not in REQUEST_NETWORKS:
        raise _Invalid(f"network: expected one of {', '.join(REQUEST_NETWORKS)}")
    limit = _field_int(body["limit"], "limit", 0, U64_MAX)
    metadata = body.get("metadata")
    if "metadata" in body and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise _Invalid("metadata: expected an object of strings")
    _check_name(name)
    return NewWallet(
        id=wallet_id,
        environment_id=environment_id,
        line_of_credit_id=line_id,
        name=name,
        network=network,
        limit=limit,
        metadata=dict(metadata) if metadata is not None else None,
    )


def parse_rename(body: Any) -> str:
    """An `UpdateWalletRequest`: the new name."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    _require(body, ("name",))
    name = body["name"]
    if not isinstance(name, str):
        raise _Invalid("name: expected a string")
    _check_name(name)
    return name


def _webhook_events(value: Any) -> tuple[tuple[str, str], ...]:
    """`EventTypes[]`: shape errors are 422; an empty list is 400 invalid_webhook."""
    if not isinstance(value, list):
        raise _Invalid("events: expected a list")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or len(item) != 1:
            raise _Invalid(f"events[{index}]: expected one of send, receive or test")
        ((kind, event),) = item.items()
        if kind not in WEBHOOK_EVENTS:
            raise _Invalid(f"events[{index}]: expected one of send, receive or test")
        if event not in WEBHOOK_EVENTS[kind]:
            raise _Invalid(
                f"events[{index}].{kind}: expected one of {', '.join(WEBHOOK_EVENTS[kind])}"
            )
        if (kind, event) not in pairs:
            pairs.append((kind, event))
    if not pairs:
        raise RuleError(400, "invalid_webhook", "a webhook must subscribe to at least one event")
    return tuple(pairs)


def _webhook_url(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("url: expected a string")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or len(value) > 2048 or any(c.isspace() for c in value):
        raise RuleError(400, "invalid_webhook", "url must be an absolute http or https URL")
    return value


def _webhook_name(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("name: expected a string")
    if not 1 <= len(value.strip()) <= 256 or len(value) > 256:
        raise RuleError(400, "invalid_webhook", "name must be 1 to 256 characters long")
    return value


def parse_new_webhook(body: Any, environment_id: str) -> NewWebhook:
    """A `NewWebhookRequest`; raises _Invalid (422) or RuleError (400)."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    _require(body, ("id", "url", "name", "events"))
    webhook_id = _field_uuid(body, "id")
    events = _webhook_events(body["events"])
    return NewWebhook(
        id=webhook_id,
        environment_id=environment_id,
        url=_webhook_url(body["url"]),
        name=_webhook_name(body["name"]),
        events=events,
    )


def parse_webhook_update(body: Any) -> dict[str, Any]:
    """An `UpdateWebhookRequest`: `events` (replaced whole), `url` and `name` (null or
    omitted: left as they are)."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    _require(body, ("events",))
    events = _webhook_events(body["events"])
    change: dict[str, Any] = {"events": [list(e) for e in events]}
    if body.get("url") is not None:
        change["url"] = _webhook_url(body["url"])
    if body.get("name") is not None:
        change["name"] = _webhook_name(body["name"])
    return change


def _receive_invalid(field_name: str, detail: str) -> RuleError:
    return RuleError(
        400,
        "invalid_receive_payment",
        detail,
        {"fields": [field_name]},
        code="validation_failed",
    )


def parse_new_receive(body: Any) -> NewReceive:
    """A receive `PaymentRequest` (fixed amount, any amount or the legacy `amount_msats`);
    sends and other kinds are refused with 400."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    if "payment_kind" not in body and "type" in body:
        raise RuleError(400, "invalid_payment", "the emulator emulates receive payments only")
    _require(body, ("id", "wallet_id", "payment_kind"))
    payment_id = _field_uuid(body, "id")
    wallet_id = _field_uuid(body, "wallet_id")
    kind = body["payment_kind"]
    if kind not in ("bolt11", "onchain", "bip21", "taprootasset"):
        raise _Invalid("payment_kind: expected bolt11, onchain, bip21 or taprootasset")
    amount: int | None = None
    if "amount" in body and "amount_msats" in body:
        raise _Invalid("send either amount or amount_msats, not both")
    if "amount" in body:
        value = body["amount"]
        if not isinstance(value, dict):
            raise _Invalid("amount: expected an object {currency, amount}")
        _require(value, ("currency", "amount"))
        if not isinstance(value["currency"], str):
            raise _Invalid("amount.currency: expected a string")
        amount = _field_int(value["amount"], "amount.amount", -(2**63), 2**63 - 1)
        if value["currency"] != "btc":
            raise RuleError(400, "invalid_currency", "the emulator's wallets hold BTC only")
        if amount <= 0 or value.get("negative") is True:
            raise RuleError(400, "invalid_amount", "amount must be a positive number of msats")
    elif "amount_msats" in body:
        amount = _field_int(body["amount_msats"], "amount_msats", 1, 2**63 - 1)
        if body.get("currency", "btc") != "btc":
            raise _Invalid("currency: the legacy amount_msats form takes btc only")
    elif "amount_sats" in body:
        raise RuleError(400, "invalid_payment", "amount_sats is for on-chain receives")
    elif body.get("currency") != "btc":
        raise _Invalid("an any-amount receive needs currency btc")
    if kind != "bolt11":
        raise RuleError(400, "invalid_payment", "the emulator issues bolt11 receives only")
    expiration = body.get("expiration", 3600)
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise _Invalid("expiration: expected an integer")
    if not 1 <= expiration <= 86_400:
        raise _receive_invalid("expiration", "expiration must be 1 to 86400 seconds")
    description = body.get("description")
    if "description" in body:
        if not isinstance(description, str):
            raise _Invalid("description: expected a string")
        if len(description.encode("utf-8")) > MAX_DESCRIPTION_BYTES:
            raise _receive_invalid(
                "description", f"description must fit {MAX_DESCRIPTION_BYTES} bytes"
            )
    metadata = body.get("metadata")
    if "metadata" in body and (
        not isinstance(metadata, dict)
        or len(metadata) > 50
        or not all(
            isinstance(v, str) and len(k) <= 256 and len(v) <= 256 for k, v in metadata.items()
        )
    ):
        raise _Invalid("metadata: up to 50 strings of up to 256 characters")
    return NewReceive(
        id=payment_id,
        wallet_id=wallet_id,
        amount_msats=amount,
        description=description,
        expiration=expiration,
        metadata=dict(metadata) if metadata else None,
    )


def parse_policy_update(body: Any) -> dict[str, Any]:
    """An `UpdateWalletPolicyRequest` (no other fields allowed); values normalised."""
    if not isinstance(body, dict):
        raise _Invalid("expected a JSON object")
    unknown = sorted(set(body) - set(POLICY_TYPES))
    if unknown:
        raise _Invalid(f"unknown field(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if value is None:
            changes[name] = None
        elif name in ("max_payment_size_sats", "transactions_per_minute", "send_volume_limit_sats"):
            changes[name] = _field_int(value, name, 1, U64_MAX)
        elif name == "template_id":
            changes[name] = _field_uuid(body, name)
        elif name == "ofac_compliant":
            if not isinstance(value, bool):
                raise _Invalid("ofac_compliant: expected true, false or null")
            changes[name] = value
        else:  # processing_fee
            if not isinstance(value, dict):
                raise _Invalid("processing_fee: expected an object or null")
            _require(value, ("send_basis_points", "receive_basis_points"))
            changes[name] = {
                key: _field_int(value[key], f"processing_fee.{key}", 0, 10000)
                for key in ("send_basis_points", "receive_basis_points")
            }
    return changes


async def _json_body(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RuleError(415, "missing_content_type", "expected a JSON body (application/json)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RuleError(413, "payload_too_large", "the request body is too large")
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


class _DuplicateKey(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): an object naming a key twice, NaN/Infinity, bad UTF-8 or
    bad syntax is 400 `invalid_syntax`, never "last one wins"."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise RuleError(
            400, "invalid_syntax", f"the JSON body names the key {str(exc)!r} more than once"
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RuleError(400, "invalid_syntax", "the body is not valid JSON") from None


# --- the application ---------------------------------------------------------------------


class EmulatorApp:
    """ASGI application of the emulator: `/v1` (the API) and `/_emulator` (admin)."""

    def __init__(
        self, store: Store, faults: Faults, *, keys: Mapping[str, KeyGrant] | None = None
    ) -> None:
        self.store = store
        self.faults = faults
        # Requests waiting out injected latency now, and the most at once (read by tests).
        self.latency_waiting = 0
        self.latency_waiting_most = 0
        self._keys: dict[str, KeyGrant] = {}
        # the body of each listing last served, while the store answers with the same views
        self._listing_bodies: dict[tuple[str, str | None, bool], tuple[object, bytes]] = {}
        for key, grant in (keys or {}).items():
            self.add_key(key, grant)
        self._app = Starlette(
            routes=self._routes(),
            exception_handlers={HTTPException: self._http_exception},
        )

    def add_key(self, key: str, grant: KeyGrant) -> None:
        """Accept `key` in this process only (never written to the database)."""
        if not key:
            raise ValueError("an API key cannot be empty")
        self._keys[hash_key(key)] = grant

    # ASGI entry point: request ids and faults around the routed application.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        send = _with_request_id(send, request_id)
        path: str = scope["path"]
        if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            await self._app(scope, receive, send)
            return
        method: str = scope["method"].upper()
        decision = self.faults.decide(method, path[len(API_PREFIX) :])
        if decision.latency_ms:
            await self._wait_latency(decision.latency_ms / 1000)
        if decision.rate_limited:
            retry_ms = decision.retry_after_ms
            response = error_response(
                429,
                "rate_limited",
                "too many requests; retry later",
                headers={
                    "Retry-After": str(math.ceil(retry_ms / 1000)),
                    "x-retry-after-ms": str(retry_ms),
                },
            )
            await response(scope, receive, send)
            return
        is_write = method in WRITE_METHODS
        if is_write and decision.fail_before_commit:
            await _internal_error()(scope, receive, send)
            return
        scope = dict(scope)
        scope[DECISION_KEY] = decision
        if not is_write or not (decision.fail_after_commit or decision.drop_after_commit):
            await self._app(scope, receive, send)
            return
        # Post-commit faults: run the write, hold its answer, then spoil it if it succeeded.
        messages: list[Message] = []

        async def hold(message: Message) -> None:
            messages.append(message)

        await self._app(scope, receive, hold)
        status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 500)
        if not 200 <= status < 300:
            for message in messages:
                await send(message)
        elif decision.fail_after_commit:
            await _internal_error()(scope, receive, send)
        else:
            await _cut_off(send, status)

    async def _wait_latency(self, seconds: float) -> None:
        # Awaited, so the event loop answers other requests meanwhile.
        self.latency_waiting += 1
        self.latency_waiting_most = max(self.latency_waiting_most, self.latency_waiting)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.latency_waiting -= 1

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return error_response(
            status, kind, str(getattr(exc, "detail", "")) or kind, headers=headers
        )

    def _routes(self) -> list[Route]:
        api = API_PREFIX + "/organizations/{organization_id}"
        env = api + "/environments/{environment_id}"
        admin = ADMIN_PREFIX
        # One route per path with every method it has, so a 405 names them all (Allow).
        table: dict[str, dict[str, Handler]] = {
            api + "/wallets": {"GET": self.list_wallets, "POST": self.create_wallet},
            api + "/wallets/{wallet_id}": {
                "GET": self.get_wallet,
                "PATCH": self.update_wallet,
                "DELETE": self.delete_wallet,
            },
            api + "/wallets/{wallet_id}/policies": {
                "GET": self.get_policies,
                "PATCH": self.update_policies,
            },
            api + "/lines_of_credit/summaries": {"GET": self.line_summaries},
            api + "/lines_of_credit/{line_id}/summary": {"GET": self.line_summary},
            api + "/webhooks": {"GET": self.list_webhooks},
            env + "/webhooks": {"POST": self.create_webhook},
            env + "/webhooks/{webhook_id}": {
                "GET": self.get_webhook,
                "PATCH": self.update_webhook,
                "DELETE": self.delete_webhook,
            },
            env + "/webhooks/{webhook_id}/keys": {"POST": self.rotate_webhook_key},
            env + "/webhooks/{webhook_id}/start": {"POST": self.start_webhook},
            env + "/webhooks/{webhook_id}/stop": {"POST": self.stop_webhook},
            env + "/payments": {"GET": self.list_payments, "POST": self.create_payment},
            env + "/payments/{payment_id}": {"GET": self.get_payment},
        }
        admin_table: dict[str, dict[str, Handler]] = {
            admin + "/health": {"GET": self.admin_health},
            admin + "/state": {"GET": self.admin_state},
            admin + "/faults": {
                "GET": self.admin_get_faults,
                "PUT": self.admin_put_faults,
                "PATCH": self.admin_patch_faults,
            },
            admin + "/faults/schedule": {"POST": self.admin_add_rules},
            admin + "/seed": {"POST": self.admin_seed},
            admin + "/reset": {"POST": self.admin_reset},
            admin + "/wallets/{wallet_id}/balance": {"PUT": self.admin_balance},
            admin + "/payments/{payment_id}/settle": {"POST": self.admin_settle},
        }
        routes = [
            Route(
                path,
                _dispatch({m: self._api(h) for m, h in methods.items()}),
                methods=list(methods),
            )
            for path, methods in table.items()
        ]
        routes += [
            Route(path, _dispatch(methods), methods=list(methods))
            for path, methods in admin_table.items()
        ]
        return routes

    @staticmethod
    def _api(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except RuleError as exc:
                return _rule_response(exc)
            except _Invalid as exc:
                return error_response(422, "invalid_data", str(exc))

        return endpoint

    # --- access ----------------------------------------------------------------------

    def _grant(self, request: Request) -> KeyGrant:
        key = request.headers.get("x-api-key", "")
        if not key:
            raise RuleError(400, "missing_credentials", "send an API key in the x-api-key header")
        digest = hash_key(key)
        for known, grant in self._keys.items():
            if hmac.compare_digest(known, digest):
                return grant
        stored = self.store.authenticate(key)
        if stored is None:
            raise RuleError(401, "wrong_credentials", "the API key is not valid")
        return stored

    def _authorize(self, request: Request, *, write: bool) -> tuple[str, KeyGrant]:
        """Check the key for the path's organization; returns (organization id, grant)."""
        grant = self._grant(request)
        organization_id = _path_uuid(request, "organization_id")
        if grant.organization_id is not None and grant.organization_id != organization_id:
            raise _forbidden("this key has no access to the organization")
        if not self.store.organization_exists(organization_id):
            raise _forbidden("this key has no access to the organization")
        if write and grant.access != "write":
            raise _forbidden("organization WRITE access required; this key can only read")
        return organization_id, grant

    @staticmethod
    def _check_environment(grant: KeyGrant, environment_id: str) -> None:
        if grant.environment_id is not None and grant.environment_id != environment_id:
            raise _forbidden("this key has no access to that environment")

    def _environment_ids(self, request: Request, grant: KeyGrant) -> list[str] | None:
        """The `environment_ids` query (each one the key may see), else the key's own
        environment, else None (all)."""
        environment_ids = _query_uuids(request, "environment_ids")
        if environment_ids is not None:
            for environment_id in environment_ids:
                self._check_environment(grant, environment_id)
        elif grant.environment_id is not None:
            environment_ids = [grant.environment_id]
        return environment_ids

    def _delay(self, request: Request) -> float:
        return self.faults.base_visibility_delay() + _decision(request).extra_visibility

    def _wallet_target(self, request: Request, *, write: bool) -> tuple[str, str]:
        """(organization id, wallet id) of the path, once the key may act on that wallet."""
        organization_id, grant = self._authorize(request, write=write)
        wallet_id = _path_uuid(request, "wallet_id")
        view = self.store.get_wallet(organization_id, wallet_id)
        if view is not None:
            self._check_environment(grant, view.environment_id)
        return organization_id, wallet_id

    # --- wallets ---------------------------------------------------------------------

    async def list_wallets(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        raw_env = request.query_params.get("environment_id")
        environment_id = None
        if raw_env is not None:
            environment_id = _canonical_uuid(raw_env)
            if environment_id is None:
                raise RuleError(400, "invalid_parameter", "environment_id must be a UUID")
            self._check_environment(grant, environment_id)
        elif grant.environment_id is not None:
            environment_id = grant.environment_id
        include_inactive = _query_bool(request, "inactive")
        views = self.store.list_wallets(
            organization_id, environment_id=environment_id, include_inactive=include_inactive
        )
        key = (organization_id, environment_id, include_inactive)
        cached = self._listing_bodies.get(key)
        if cached is not None and cached[0] is views:
            return Response(cached[1], media_type="application/json")
        response = JSONResponse([wallet_json(v) for v in views])
        if len(response.body) <= MAX_CACHED_LISTING_BYTES:
            self._listing_bodies[key] = (views, bytes(response.body))
        return response

    async def create_wallet(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=True)
        new = parse_new_wallet(await _json_body(request))
        self._check_environment(grant, new.environment_id)
        self.store.create_wallet(organization_id, new, delay=self._delay(request))
        return Response(status_code=202)

    async def get_wallet(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        wallet_id = _path_uuid(request, "wallet_id")
        view = _found(
            self.store.get_wallet(organization_id, wallet_id), wallet_not_found(wallet_id)
        )
        self._check_environment(grant, view.environment_id)
        return JSONResponse(wallet_json(view))

    async def update_wallet(self, request: Request) -> Response:
        organization_id, wallet_id = self._wallet_target(request, write=True)
        name = parse_rename(await _json_body(request))
        self.store.rename_wallet(organization_id, wallet_id, name, delay=self._delay(request))
        return Response(status_code=202)

    async def delete_wallet(self, request: Request) -> Response:
        organization_id, wallet_id = self._wallet_target(request, write=True)
        self.store.delete_wallet(
            organization_id,
            wallet_id,
            delay=self._delay(request),
            fails=_decision(request).deletion_fails,
        )
        return Response(status_code=202)

    async def get_policies(self, request: Request) -> Response:
        organization_id, wallet_id = self._wallet_target(request, write=False)
        view = _found(
            self.store.get_policies(organization_id, wallet_id),
            RuleError(
                404,
                "wallet_policies_not_found",
                "no policies found for this wallet",
                {"wallet_id": wallet_id},
            ),
        )
        return JSONResponse(policies_json(view))

    async def update_policies(self, request: Request) -> Response:
        organization_id, wallet_id = self._wallet_target(request, write=True)
        changes = parse_policy_update(await _json_body(request))
        self.store.update_policies(organization_id, wallet_id, changes, delay=self._delay(request))
        return Response(status_code=202)

    # --- lines of credit -------------------------------------------------------------

    async def line_summaries(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        network = request.query_params.get("network")
        if network is not None and network not in REQUEST_NETWORKS:
            raise RuleError(
                400,
                "invalid_parameter",
                f"network must be one of {', '.join(REQUEST_NETWORKS)}",
            )
        environment_ids = self._environment_ids(request, grant)
        summaries = self.store.line_summaries(
            organization_id,
            network=network,
            environment_ids=environment_ids,
            include_disabled=_query_bool(request, "include_disabled"),
        )
        return JSONResponse([line_json(s) for s in summaries])

    async def line_summary(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        line_id = _path_uuid(request, "line_id")
        summary = _found(
            self.store.line_summary(organization_id, line_id),
            RuleError(
                404,
                "line_of_credit_not_found",
                "no line of credit with this id in the organization",
                {"line_of_credit_id": line_id},
            ),
        )
        self._check_environment(grant, summary.environment_id)
        return JSONResponse(line_json(summary))

    # --- webhooks --------------------------------------------------------------------

    def _environment_path(self, request: Request, grant: KeyGrant) -> str:
        environment_id = _path_uuid(request, "environment_id")
        self._check_environment(grant, environment_id)
        return environment_id

    async def list_webhooks(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        environment_ids = self._environment_ids(request, grant)
        statuses = _query_list(request, "statuses")
        for status in statuses or ():
            if status not in WEBHOOK_STATUSES:
                raise RuleError(
                    400,
                    "invalid_parameter",
                    f"statuses takes {', '.join(WEBHOOK_STATUSES)}",
                )
        sort_key = _query_choice(request, "sort_key", ("created_at", "updated_at"))
        sort_order = _query_choice(request, "sort_order", ("ASC", "DESC"))
        views = self.store.list_webhooks(
            organization_id,
            environment_ids=environment_ids,
            statuses=statuses,
            sort_key=sort_key or "created_at",
            descending=sort_order == "DESC",
        )
        return JSONResponse([webhook_json(v) for v in views])

    async def create_webhook(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=True)
        environment_id = self._environment_path(request, grant)
        new = parse_new_webhook(await _json_body(request), environment_id)
        secret = new_shared_secret()
        self.store.create_webhook(organization_id, new, secret, delay=self._delay(request))
        return JSONResponse({"id": new.id, "shared_secret": secret}, status_code=202)

    def _webhook_target(self, request: Request, *, write: bool) -> tuple[str, str, str]:
        organization_id, grant = self._authorize(request, write=write)
        environment_id = self._environment_path(request, grant)
        return organization_id, environment_id, _path_uuid(request, "webhook_id")

    async def get_webhook(self, request: Request) -> Response:
        organization_id, environment_id, webhook_id = self._webhook_target(request, write=False)
        view = _found(
            self.store.get_webhook(organization_id, environment_id, webhook_id),
            webhook_not_found(webhook_id),
        )
        return JSONResponse(webhook_json(view))

    async def _change_webhook(
        self, request: Request, kind: str, payload: Mapping[str, Any]
    ) -> Response:
        organization_id, environment_id, webhook_id = self._webhook_target(request, write=True)
        self.store.change_webhook(
            organization_id,
            environment_id,
            webhook_id,
            kind,
            payload,
            delay=self._delay(request),
        )
        return Response(status_code=202)

    async def update_webhook(self, request: Request) -> Response:
        self._webhook_target(request, write=True)  # access before the body
        change = parse_webhook_update(await _json_body(request))
        return await self._change_webhook(request, "update", change)

    async def delete_webhook(self, request: Request) -> Response:
        return await self._change_webhook(request, "delete", {})

    async def start_webhook(self, request: Request) -> Response:
        return await self._change_webhook(request, "start", {})

    async def stop_webhook(self, request: Request) -> Response:
        return await self._change_webhook(request, "stop", {})

    async def rotate_webhook_key(self, request: Request) -> Response:
        organization_id, environment_id, webhook_id = self._webhook_target(request, write=True)
        secret = new_shared_secret()
        self.store.rotate_webhook_secret(organization_id, environment_id, webhook_id, secret)
        return JSONResponse({"id": webhook_id, "shared_secret": secret}, status_code=202)

    # --- receive payments ------------------------------------------------------------

    async def create_payment(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=True)
        environment_id = self._environment_path(request, grant)
        new = parse_new_receive(await _json_body(request))
        decision = _decision(request)
        outcome = "invoice"
        if decision.receive_fee_refused:
            outcome = "fee_refused"
        elif decision.receive_fails:
            outcome = "failed"
        self.store.create_receive(
            organization_id,
            environment_id,
            new,
            delay=self._delay(request),
            invoice_delay=self.faults.base_invoice_delay() + decision.slow_invoice,
            outcome=outcome,
        )
        return Response(status_code=202)

    async def get_payment(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        environment_id = self._environment_path(request, grant)
        payment_id = _path_uuid(request, "payment_id")
        view = _found(
            self.store.get_receive(organization_id, environment_id, payment_id),
            RuleError(
                404,
                "payment_not_found",
                "no payment with this id in the organization and environment",
                {"payment_id": payment_id},
            ),
        )
        return JSONResponse(receive_json(view))

    async def list_payments(self, request: Request) -> Response:
        organization_id, grant = self._authorize(request, write=False)
        environment_id = self._environment_path(request, grant)
        query = request.query_params
        views = self.store.list_receives(organization_id, environment_id)
        wallet_id = _query_uuid(request, "wallet_id")
        line_id = _query_uuid(request, "line_of_credit_id")
        statuses = _query_list(request, "statuses")
        for status in statuses or ():
            if status not in PAYMENT_STATUSES:
                raise RuleError(400, "invalid_parameter", "statuses takes payment statuses")
        category = _query_choice(request, "payment_category", ("standard", "treasury"))
        direction = _query_choice(request, "direction", ("send", "receive"))
        kind = _query_choice(
            request, "kind", ("bolt11", "onchain", "bip21", "taprootasset", "usdbatch")
        )
        sort_key = _query_choice(request, "sort_key", ("created_at", "updated_at")) or "created_at"
        sort_order = _query_choice(request, "sort_order", ("ASC", "DESC")) or "DESC"
        start = _query_time(request, "start_date")
        end = _query_time(request, "end_date")
        metadata = {
            key[len("metadata[") : -1]: value
            for key, value in query.multi_items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        limit = _query_count(request, "limit", 100)
        offset = _query_count(request, "offset", 0)
        cursor = query.get("cursor")
        mode = _query_choice(request, "pagination", ("offset", "cursor")) or "offset"
        if cursor is not None:
            mode = "cursor"
            offset = _cursor_offset(cursor)
        elif mode == "cursor":
            offset = 0
        selected = [
            v
            for v in views
            if (wallet_id is None or v.wallet_id == wallet_id)
            and (line_id is None or v.line_of_credit_id == line_id)
            and (statuses is None or v.status in statuses)
            and category in (None, "standard")
            and direction in (None, "receive")
            and kind in (None, "bolt11")
            and (start is None or v.created_at >= start)
            and (end is None or v.created_at <= end)
            and all((v.metadata or {}).get(k) == val for k, val in metadata.items())
        ]
        selected.sort(key=lambda v: (getattr(v, sort_key), v.id), reverse=sort_order == "DESC")
        page = selected[offset : offset + limit]
        has_more = offset + len(page) < len(selected)
        body: dict[str, Any] = {
            "items": [receive_json(v) for v in page],
            "offset": offset if mode == "offset" else 0,
            "limit": limit,
            "has_more": has_more,
            "next_cursor": _cursor(offset + len(page)) if has_more and mode == "cursor" else None,
        }
        if mode == "offset":
            body["total"] = len(selected)
        return JSONResponse(body)

    # --- admin (not part of the contract) --------------------------------------------

    async def admin_health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def admin_state(self, request: Request) -> Response:
        return JSONResponse(self.store.snapshot())

    async def admin_get_faults(self, request: Request) -> Response:
        return JSONResponse(self.faults.to_dict())

    async def admin_put_faults(self, request: Request) -> Response:
        return await self._admin_faults(
            request, lambda body: self.faults.replace(Faults.from_dict(body))
        )

    async def admin_patch_faults(self, request: Request) -> Response:
        return await self._admin_faults(request, lambda body: self.faults.update(**body))

    async def _admin_faults(
        self, request: Request, change: Callable[[dict[str, Any]], None]
    ) -> Response:
        body = await _admin_body(request)
        if not isinstance(body, dict):
            return _admin_error("expected a JSON object of fault settings")
        try:
            change(body)
        except ValueError as exc:
            return _admin_error(str(exc))
        return JSONResponse(self.faults.to_dict())

    async def admin_add_rules(self, request: Request) -> Response:
        body = await _admin_body(request)
        rules = body if isinstance(body, list) else [body]
        try:
            parsed = [FaultRule.from_dict(rule) for rule in rules]
        except ValueError as exc:
            return _admin_error(str(exc))
        for rule in parsed:
            self.faults.add_rule(
                rule.fault, method=rule.method, path_contains=rule.path_contains, times=rule.times
            )
        return JSONResponse(self.faults.to_dict())

    async def admin_seed(self, request: Request) -> Response:
        body = await _admin_body(request)
        try:
            seed = self.store.load_seed(body)
        except SeedError as exc:
            return _admin_error(str(exc))
        return JSONResponse({"organization_id": seed["organization_id"]})

    async def admin_reset(self, request: Request) -> Response:
        raw = await request.body()
        body = await _admin_body(request) if raw.strip() else None
        if raw.strip() and not isinstance(body, dict):
            return _admin_error("expected no body, or a seed document")
        self.store.reset()
        if body:
            try:
                self.store.load_seed(body)
            except SeedError as exc:
                return _admin_error(str(exc))
        return JSONResponse({"reset": True})

    async def admin_settle(self, request: Request) -> Response:
        raw = await request.body()
        body = await _admin_body(request) if raw.strip() else {}
        if not isinstance(body, dict):
            return _admin_error('expected no body, or {"amount_msats": <integer>}')
        payment_id = _canonical_uuid(request.path_params["payment_id"]) or ""
        try:
            view = self.store.settle_receive(payment_id, body.get("amount_msats"))
        except KeyError:
            return error_response(404, "not_found", "no such payment")
        except ValueError as exc:
            return _admin_error(str(exc))
        return JSONResponse(receive_json(view))

    async def admin_balance(self, request: Request) -> Response:
        body = await _admin_body(request)
        wallet_id = _canonical_uuid(request.path_params["wallet_id"]) or ""
        if not isinstance(body, dict) or "balance_msats" not in body:
            return _admin_error('expected {"balance_msats": <integer>}')
        try:
            self.store.set_balance(wallet_id, body["balance_msats"])
        except ValueError as exc:
            return _admin_error(str(exc))
        except KeyError:
            return error_response(404, "not_found", "no such wallet")
        return JSONResponse({"wallet_id": wallet_id, "balance_msats": body["balance_msats"]})


def _dispatch(methods: Mapping[str, Handler]) -> Handler:
    """One endpoint for several methods of a path (HEAD is answered as GET)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return endpoint


def _decision(request: Request) -> Decision:
    """The faults decided for this request (none outside the fault layer)."""
    decision: Decision = request.scope.get(DECISION_KEY) or Decision()
    return decision


def _found(found: Found | None, not_found: RuleError) -> Found:
    """`found`, or the 404 `not_found` when there is nothing."""
    if found is None:
        raise not_found
    return found


def _forbidden(detail: str) -> RuleError:
    return RuleError(403, "access_rights", detail)


def _internal_error() -> JSONResponse:
    return error_response(500, "internal_error", "the server failed to complete the request")


async def _admin_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


def _admin_error(detail: str) -> JSONResponse:
    return error_response(400, "invalid_request", detail)


def _with_request_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((b"x-request-id", request_id.encode("ascii")))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _cut_off(send: Send, status: int) -> None:
    """Answer with a body shorter than its Content-Length, then stop: the server closes
    the connection and the client sees a broken response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"128")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"error": {"ty', "more_body": True})


def create_app(
    store: Store, faults: Faults | None = None, *, keys: Mapping[str, KeyGrant] | None = None
) -> EmulatorApp:
    """The emulator's ASGI app over `store`; `keys` are accepted in this process only."""
    return EmulatorApp(store, faults if faults is not None else Faults(), keys=keys)
