"""The LNbits provider: LNbits wallet JSON <-> model, and writes that are safe to repeat.

Sits between the engine and an LNbits server (it speaks HTTP through the shared core,
`voltage_iac.http.HttpCore`: retries, per-read time-out and total deadline per request,
back-pressure on 429, secrets masked; the LNbits API is small). Called by
`connect.open_provider` for `provider.kind: lnbits`.

LNbits picks wallet ids itself, ignores ids sent by a client, keeps no free-form metadata
and lets several wallets share a name. Ownership therefore lives in the only field a
client sets atomically at creation, the name: a wallet this tool creates for entry `tips`
of stack `acme` is named `"<display name> [iac:acme:tips]"`. The suffix is the ownership
marker, the part before it is the display name the configuration manages. Rules (see
docs/lnbits.md):
- a wallet whose name ends in a well-formed marker of this stack is owned by that entry;
  every other wallet (no marker, another stack, a shared wallet) is unmanaged;
- two live wallets with the same marker are ambiguous: `read` refuses (SafetyError) and
  names them, nothing is planned or changed until a person resolves it in LNbits;
- `create_wallet` lists first and returns the wallet an earlier (crashed) attempt left
  behind instead of creating a second one; a create whose outcome is unknown is resolved
  by listing, never by sending again blindly;
- rename and delete act only on wallets that still carry this stack's marker.

Receive requests (`verify`, the `Receiver` capability): an invoice is created with the
wallet's invoice key (`POST /api/v1/payments`, `out: false`), marked in its memo and
`extra`, and tagged with the verification's id as LNbits' `external_id`. Every read
looks it up by that id in the wallet's recent payments, so an answer lost after the
request was sent is resolved by reading, never by asking again. LNbits does not say
which Bitcoin network its funding source is on: `provider.network` does (default
mainnet), and verify checks the invoices' prefix against it.

Listing uses only the paginated endpoint (`GET /api/v1/wallets` creates a wallet for an
account that has none), pages through every wallet in id order, and checks the pages
add up to the server's total: a listing that changed underneath is retried, then refused.
"""

from __future__ import annotations

import contextlib
import json as _json_module
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from voltage_iac.errors import (
    ApiError,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    SafetyError,
    SafetyViolation,
    ServerError,
    UsageError,
    VoltageIacError,
    WriteOutcomeUnknown,
)
from voltage_iac.http import (
    DEFAULT_DEADLINE,
    MAX_RESPONSE_BYTES,
    WRITE_UNKNOWN_TAIL,
    Answer,
    BaseTransport,
    HttpCore,
)
from voltage_iac.kinds.base import Operation
from voltage_iac.kinds.wallet import LiveWallet
from voltage_iac.model import DesiredState, LiveState, Ownership, frozen_map
from voltage_iac.providers import registry
from voltage_iac.providers.base import (
    ConnectOptions,
    ReceiveRequest,
    ReceiveState,
    unsupported,
)
from voltage_iac.secret import Secret, redact
from voltage_iac.waiting import poll_until

log = logging.getLogger("voltage_iac.provider.lnbits")


ENV_URL = "LNBITS_URL"
ENV_TOKEN = "LNBITS_ACCESS_TOKEN"
ENV_USERNAME = "LNBITS_USERNAME"
ENV_PASSWORD = "LNBITS_PASSWORD"

DEFAULT_PAGE_SIZE = 1000  # the most LNbits returns in one page
DEFAULT_MAX_PAGES = 1000
DEFAULT_TIMEOUT = 30.0  # seconds for each socket operation
DEFAULT_WAIT_TIMEOUT = 30.0
READ_ATTEMPTS = 3  # tries for a read that meets a transport error, 429 or 5xx
LISTING_ATTEMPTS = 3  # complete listings tried when wallets change while paging

ENVIRONMENT = "default"  # LNbits has no environments; the config loader uses this name

DEFAULT_NETWORK = "mainnet"  # when the configuration does not name provider.network
NETWORK_SETTING = "provider.network"
RECEIVE_EXPIRY = 3600  # seconds an unpaid verify invoice stays open
RECEIVE_LOOKUP_LIMIT = 20  # recent payments read when looking a receive up by its id
VERIFY_ID_KEY = "voltage_iac_verify_id"  # in a verify invoice's `extra`: its id
#: The status of LNbits' own refusal to make an invoice (its InvoiceError handler): the
#: answer says nothing was stored.
INVOICE_REFUSED_STATUS = 520

_PART = r"[a-z0-9][a-z0-9._-]{0,63}"
MARKER_PREFIX = "[iac:"
_MARKER_RE = re.compile(
    rf"^(?P<display>.*) \[iac:(?P<stack>{_PART}):(?P<key>{_PART})"
    r"(?::(?P<gen>[1-9][0-9]{0,8}))?(?P<protected>:protected)?\]$",
    re.DOTALL,
)
_PART_RE = re.compile(rf"^{_PART}$")
_MASKED_KEY_RE = re.compile(r"^\*+$")


# --- identity: pure functions --------------------------------------------------------------


def marker(stack: str, key: str, generation: int = 0, *, protected: bool = False) -> str:
    """The ownership marker for entry `key` of `stack`, e.g. `[iac:acme:tips]`, or
    `[iac:acme:vault:protected]` for a wallet created with `protect: true` (the
    protection then outlives the wallet's entry in the configuration)."""
    if not _PART_RE.match(stack) or not _PART_RE.match(key):
        raise UsageError(
            f"stack {stack!r} / key {key!r} cannot be written into an LNbits wallet name",
            hint="use 1-64 characters: lowercase letters, digits, '-', '_' or '.'",
        )
    if generation < 0:
        raise UsageError(f"invalid generation {generation} for {key}")
    suffix = f":{generation}" if generation else ""
    flag = ":protected" if protected else ""
    return f"[iac:{stack}:{key}{suffix}{flag}]"


def full_name(
    display: str, stack: str, key: str, generation: int = 0, *, protected: bool = False
) -> str:
    """The LNbits wallet name: display name, a space, then the ownership marker."""
    check_display_name(display)
    return f"{display} {marker(stack, key, generation, protected=protected)}"


def is_protected_name(name: str) -> bool:
    """True when the stored name's marker records protection."""
    match = _MARKER_RE.match(name)
    return bool(match and match.group("protected"))


def check_display_name(display: str) -> None:
    """Refuse display names that would make the stored name ambiguous."""
    if MARKER_PREFIX in display:
        raise UsageError(
            f"wallet name {display!r} contains {MARKER_PREFIX!r}, which marks ownership on LNbits",
            hint="choose a name without '[iac:'",
        )
    if not display.strip():
        raise UsageError("an LNbits wallet name cannot be empty")


def parse_name(name: str) -> tuple[str, Ownership | None]:
    """Split a stored LNbits wallet name into (display name, ownership or None)."""
    match = _MARKER_RE.match(name)
    if not match:
        return name, None
    generation = int(match.group("gen") or 0)
    return match.group("display"), Ownership(
        stack=match.group("stack"), key=match.group("key"), generation=generation
    )


# --- the provider ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wallet:
    """One wallet as listed, with the fields the provider needs (the admin key stays hidden)."""

    id: str
    raw_name: str
    display: str
    owner: Ownership | None
    balance_msat: int
    admin_key: Secret | None  # None when the token may only read (keys masked)
    shared: bool
    protected: bool = False  # recorded in the marker at creation
    invoice_key: Secret | None = None  # None when the token may only read (keys masked)

    def live(self) -> LiveWallet:
        return LiveWallet(
            id=self.id,
            name=self.display,
            environment_id=None,
            owner=self.owner,
            has_funds=self.balance_msat > 0,
            protected=self.protected,
        )


def _check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"LNbits URL {url!r} is not an http(s) URL",
            hint="set provider.url, e.g. http://127.0.0.1:5000",
        )
    return url.rstrip("/")


class LnbitsProvider:
    """The `Provider` for one LNbits account, authenticated by its bearer token."""

    spec = registry.LNBITS

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        transport: BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_requests_per_second: float | None = None,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        sleep: Callable[[float], None] = time.sleep,
        network: str = DEFAULT_NETWORK,
    ) -> None:
        if not token:
            raise AuthError("no LNbits access token")
        if not 1 <= page_size <= DEFAULT_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{DEFAULT_PAGE_SIZE}")
        self.url = _check_url(url)
        self._token = token
        self._page_size = page_size
        self._max_pages = max_pages
        self._wait_timeout = wait_timeout
        self._sleep = sleep
        self._stack: str | None = None  # the stack of the last read or create
        self._admin_keys: dict[str, Secret] = {}  # for redaction of error texts
        self._invoice_keys: dict[str, Secret] = {}  # wallet id -> invoice key (receives)
        self._refusals: dict[str, ReceiveState] = {}  # verify id -> LNbits' refusal
        self.network = network
        self._sign_in: tuple[Secret, ...] = ()  # the password, while signing in
        self._http = HttpCore(
            self.url,
            server="LNbits",
            secrets=lambda: (
                self._token,
                *self._sign_in,
                *self._admin_keys.values(),
                *self._invoice_keys.values(),
            ),
            timeout=timeout,
            deadline=deadline,
            max_attempts=READ_ATTEMPTS,
            max_requests_per_second=max_requests_per_second,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "voltage-iac"},
            sleep=sleep,
            logger=log,
            transport_hint="check provider.url and the network connection",
        )

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_environment(
        cls,
        desired: DesiredState,
        environ: Mapping[str, str],
        **kwargs: Any,
    ) -> LnbitsProvider:
        """Build from the config's `provider.url` (or LNBITS_URL) and credentials in the
        environment: LNBITS_ACCESS_TOKEN, or LNBITS_USERNAME with LNBITS_PASSWORD."""
        url = str(desired.provider_options.get("url") or "").strip()
        url = url or environ.get(ENV_URL, "").strip()
        if not url:
            raise UsageError(
                "no LNbits URL", hint=f"set provider.url in the configuration, or {ENV_URL}"
            )
        token = environ.get(ENV_TOKEN, "").strip()
        username = environ.get(ENV_USERNAME, "").strip()
        password = environ.get(ENV_PASSWORD, "")
        network = str(desired.provider_options.get("network") or DEFAULT_NETWORK)
        kwargs.setdefault("network", network)
        if token and (username or password):
            raise UsageError(
                f"both {ENV_TOKEN} and {ENV_USERNAME}/{ENV_PASSWORD} are set",
                hint="set only one way of signing in",
            )
        if token:
            provider = cls(url, Secret(token), **kwargs)
        elif username and password:
            provider = cls(url, Secret("pending-login"), **kwargs)
            try:
                provider._token = provider._login(username, Secret(password))
            except BaseException:
                provider.close()
                raise
        else:
            raise AuthError(
                "no LNbits credentials",
                hint=f"set {ENV_TOKEN} (an account access token), "
                f"or {ENV_USERNAME} and {ENV_PASSWORD}",
            )
        provider._stack = desired.stack
        return provider

    def _login(self, username: str, password: Secret) -> Secret:
        what = "POST /api/v1/auth"
        content = _json_module.dumps({"username": username, "password": password.reveal()})
        self._sign_in = (password,)
        try:
            # Signing in changes nothing on the server: safe to retry like a read.
            answer = self._http.request(
                "POST",
                "/api/v1/auth",
                f"LNbits at {self.url}: signing in",
                write=False,
                content=content.encode(),
            )
            if answer.status in (401, 403):
                raise AuthError(
                    f"LNbits at {self.url} refused the username/password of {ENV_USERNAME}",
                    status=answer.status,
                )
            if answer.status == 429:
                raise RateLimitedError(
                    f"LNbits at {self.url}: too many sign-in attempts; wait and try again",
                    status=429,
                )
            if answer.status != 200:
                raise self._error_for(answer, what, secrets=(password,))
            body = self._json(answer, what)
            if not isinstance(body, dict):
                raise self._error_for(answer, what, secrets=(password,))
        finally:
            self._sign_in = ()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise MalformedResponseError(f"LNbits at {self.url}: sign-in returned no token")
        return Secret(token)

    # -- Provider ----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"LNbits at {self.url}"

    @property
    def request_count(self) -> int:
        """Requests sent so far, retries included (for the timings of `-v`)."""
        return self._http.request_count

    def close(self) -> None:
        self._http.close()

    def read(self, desired: DesiredState) -> LiveState:
        self._stack = desired.stack
        wallets = self._list()
        self._refuse_duplicates(wallets, desired.stack)
        return LiveState(
            resources=frozen_map(
                {"wallet": tuple(sorted((w.live() for w in wallets), key=lambda w: w.id))}
            ),
            environments_read=(ENVIRONMENT,),
            client_chosen_ids=self.spec.client_chosen_ids,
        )

    def execute(self, operation: Operation) -> str | None:
        if operation.kind != "wallet":
            raise unsupported("lnbits", operation)
        if operation.verb == "create":
            return self.create_wallet(operation)
        assert operation.id is not None, operation.describe()
        if operation.verb == "update":
            self.rename_wallet(operation.id, operation.desired.name)
        elif operation.verb == "delete":
            self.delete_wallet(operation.id)
        else:
            raise unsupported("lnbits", operation)
        return operation.id

    def create_wallet(self, request: Operation) -> str:
        self._stack = request.stack
        want = request.desired
        generation = request.generation or 0
        owner = Ownership(request.stack, want.key, generation)
        name = full_name(want.name, request.stack, want.key, generation, protected=want.protect)
        existing = self._find_owned(owner)
        if existing is not None:
            # An earlier attempt created it (crash or lost answer): adopt, never duplicate.
            log.info("wallet for %s already exists as %s", want.key, existing.id)
            if existing.raw_name != name:
                self._patch_name(existing, name)
            return existing.id
        try:
            body = self._request("POST", "/api/v1/wallet", json={"name": name}, write=True)
        except WriteOutcomeUnknown:
            found = self._find_owned(owner)
            if found is not None:
                return found.id
            raise
        wallet = self._wallet_from_json(body, "POST /api/v1/wallet")
        if wallet.raw_name != name:
            raise MalformedResponseError(
                f"LNbits at {self.url} stored wallet {wallet.id} under another name than sent"
            )
        self._wait_until(
            lambda: (w := self._get(wallet.id)) is not None and w.raw_name == name,
            f"created wallet {wallet.id} to be listed",
        )
        return wallet.id

    def rename_wallet(self, wallet_id: str, name: str) -> None:
        check_display_name(name)
        wallet = self._get(wallet_id)
        if wallet is None:
            raise NotFoundError(f"LNbits wallet {wallet_id} not found (deleted?)", status=404)
        owner = self._require_owned(wallet, "rename")
        new_name = full_name(
            name, owner.stack, owner.key, owner.generation, protected=wallet.protected
        )
        if wallet.raw_name == new_name:
            return
        self._patch_name(wallet, new_name)

    def delete_wallet(self, wallet_id: str) -> None:
        wallet = self._get(wallet_id)
        if wallet is None:
            return  # already deleted (LNbits deletes are soft and deleted wallets are hidden)
        self._require_owned(wallet, "delete")
        try:
            self._request("DELETE", f"/api/v1/wallet/{wallet_id}", write=True)
        except NotFoundError:
            pass  # deleted meanwhile; confirmed below
        except WriteOutcomeUnknown:
            if self._get(wallet_id) is not None:
                raise
            return
        self._wait_until(lambda: self._get(wallet_id) is None, f"wallet {wallet_id} to go")

    # -- receive requests (verify) ---------------------------------------------------------

    def start_receive(self, request: ReceiveRequest) -> str:
        """Ask LNbits once for an incoming invoice into the wallet, with its invoice key.

        The verification id goes into `external_id` and `extra`, the mark into the memo.
        An answer lost after the request was sent (time-out, dropped connection, 5xx) is
        left to the reads, which look the invoice up by that id; LNbits' own refusal (520
        with its reason: nothing was stored) is recorded and reported by the reads."""
        wallet = request.target
        if request.kind != "wallet":
            raise VoltageIacError(f"{request.key}: only wallets can receive on LNbits")
        if request.amount_msats % 1000:
            raise UsageError(
                f"LNbits invoices are for whole sats; {request.amount_msats} msats is not",
                hint="use an --amount in whole sats, e.g. --amount 1sat",
            )
        key = self._invoice_key(wallet.id)
        body = {
            "out": False,
            "amount": request.amount_msats // 1000,
            "unit": "sat",
            "memo": f"{request.description} (verify id {request.payment_id})",
            "expiry": RECEIVE_EXPIRY,
            "extra": {**dict(request.metadata), VERIFY_ID_KEY: request.payment_id},
            "external_id": request.payment_id,
        }
        what = "POST /api/v1/payments"
        try:
            answer = self._http.request(
                "POST",
                "/api/v1/payments",
                f"LNbits at {self.url}: {what}",
                write=True,
                content=_json_module.dumps(body, separators=(",", ":")).encode(),
                headers={"X-Api-Key": key.reveal(), "Content-Type": "application/json"},
            )
        except WriteOutcomeUnknown as exc:
            log.info("receive %s: %s; looking it up by its id", request.payment_id, exc.message)
            return request.payment_id
        if 200 <= answer.status < 300:
            return request.payment_id
        if answer.status == INVOICE_REFUSED_STATUS and self._detail(answer):
            self._refusals[request.payment_id] = ReceiveState(
                "failed",
                error_type="invoice_refused",
                detail=f"LNbits says{self._detail(answer)}",
                hint="LNbits could not make an invoice for this wallet (its reason is "
                "above): check the amount against the server's limits, the wallet and the "
                "server's funding source in LNbits, then run verify again",
            )
            return request.payment_id
        if answer.status >= 500:
            log.info(
                "receive %s: HTTP %d after the request was sent; the outcome is unknown, "
                "looking it up by its id",
                request.payment_id,
                answer.status,
            )
            return request.payment_id
        raise self._error_for(answer, what)

    def read_receive(self, request: ReceiveRequest, reference: str) -> ReceiveState | None:
        """The invoice made for `reference` (the verification id), looked up among the
        wallet's recent payments; None while LNbits does not show it."""
        payment = self._find_receive(request.target.id, reference)
        if payment is None:
            return self._refusals.get(reference)
        return self._receive_state(payment, reference)

    def _invoice_key(self, wallet_id: str) -> Secret:
        key = self._invoice_keys.get(wallet_id)
        if key is not None:
            return key
        wallet = self._get(wallet_id)
        if wallet is None:
            raise NotFoundError(f"LNbits wallet {wallet_id} not found (deleted?)", status=404)
        if wallet.invoice_key is None:
            raise AuthError(
                f"the LNbits access token may list wallets but not see their invoice keys "
                f"(wallet {wallet_id})",
                hint="use a token with write access to /api/v1/wallet",
            )
        return wallet.invoice_key

    def _find_receive(self, wallet_id: str, verify_id: str) -> dict[str, Any] | None:
        what = "GET /api/v1/payments/paginated"
        body = self._request(
            "GET",
            "/api/v1/payments/paginated",
            params={
                "external_id": verify_id,
                "limit": RECEIVE_LOOKUP_LIMIT,
                "offset": 0,
                "sortby": "time",
                "direction": "desc",
            },
            headers={"X-Api-Key": self._invoice_key(wallet_id).reveal()},
            bearer=False,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise MalformedResponseError(f"LNbits at {self.url}: {what}: no `data` list")
        # The server filters by external_id; the check is repeated here, so a server that
        # ignored the filter could not pass another payment off as this one.
        found = [
            p
            for p in data
            if isinstance(p, dict)
            and (
                p.get("external_id") == verify_id
                or (isinstance(p.get("extra"), dict) and p["extra"].get(VERIFY_ID_KEY) == verify_id)
            )
        ]
        if not found:
            return None
        payment = found[0]
        if str(payment.get("wallet_id", "")) != wallet_id:
            raise MalformedResponseError(
                f"LNbits at {self.url}: payment of verify id {verify_id} belongs to another wallet"
            )
        return payment

    def _receive_state(self, payment: dict[str, Any], verify_id: str) -> ReceiveState:
        what = f"LNbits at {self.url}: the invoice of verify id {verify_id}"
        amount = payment.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise MalformedResponseError(f"{what} has no integer amount")
        if amount < 0:
            raise MalformedResponseError(f"{what} is an outgoing payment")
        status = str(payment.get("status") or "")
        invoice = payment.get("bolt11") or payment.get("payment_request")
        if status == "failed":
            return ReceiveState(
                "failed",
                error_type="invoice_failed",
                detail="LNbits marks the invoice failed (expired or cancelled)",
                hint="check the wallet and the server's funding source in LNbits, then run "
                "verify again",
                network=self.network,
                network_setting=NETWORK_SETTING,
            )
        if isinstance(invoice, str) and invoice:
            return ReceiveState(
                "ready",
                payment_request=invoice,
                owed_msats=amount,
                network=self.network,
                network_setting=NETWORK_SETTING,
            )
        if status == "pending":
            return ReceiveState("pending")
        raise MalformedResponseError(f"{what} has no invoice (status {status or 'missing'})")

    # -- ownership checks ------------------------------------------------------------------

    def _require_owned(self, wallet: _Wallet, action: str) -> Ownership:
        owner = wallet.owner
        if owner is None or wallet.shared or (self._stack and owner.stack != self._stack):
            whose = f"stack {owner.stack}" if owner else "no stack"
            raise SafetyError(
                [
                    SafetyViolation(
                        key=owner.key if owner else wallet.id,
                        what=f"will not {action} LNbits wallet {wallet.id}: its name no "
                        f"longer carries this stack's marker (it belongs to {whose})",
                    )
                ]
            )
        return owner

    def _refuse_duplicates(self, wallets: list[_Wallet], stack: str) -> None:
        by_key: dict[str, list[_Wallet]] = {}
        for wallet in wallets:
            if wallet.owner is not None and wallet.owner.stack == stack:
                by_key.setdefault(wallet.owner.key, []).append(wallet)
        violations = [
            SafetyViolation(
                key=key,
                what=f"{len(found)} LNbits wallets carry the marker "
                f"{marker(stack, key)} ("
                + ", ".join(
                    f"{w.id} {w.raw_name!r}{' with funds' if w.balance_msat else ''}"
                    for w in sorted(found, key=lambda w: w.id)
                )
                + "); keep the marker on one of them only (rename or delete the others in "
                "LNbits), then run again",
            )
            for key, found in sorted(by_key.items())
            if len(found) > 1
        ]
        if violations:
            raise SafetyError(violations)

    def _find_owned(self, owner: Ownership) -> _Wallet | None:
        found = [
            w
            for w in self._list()
            if w.owner is not None
            and not w.shared
            and (w.owner.stack, w.owner.key) == (owner.stack, owner.key)
        ]
        if len(found) > 1:
            self._refuse_duplicates(found, owner.stack)
        return found[0] if found else None

    # -- writes ------------------------------------------------------------------------------

    def _patch_name(self, wallet: _Wallet, new_name: str) -> None:
        if wallet.admin_key is None:
            raise AuthError(
                f"the LNbits access token may list wallets but not change them "
                f"(wallet {wallet.id})",
                hint="use a token with write access to /api/v1/wallet",
            )
        try:
            self._request(
                "PATCH",
                "/api/v1/wallet",
                json={"name": new_name},
                headers={"X-Api-Key": wallet.admin_key.reveal()},
                write=True,
                bearer=False,
            )
        except WriteOutcomeUnknown:
            current = self._get(wallet.id)
            if current is None or current.raw_name != new_name:
                raise
            return
        self._wait_until(
            lambda: (w := self._get(wallet.id)) is not None and w.raw_name == new_name,
            f"wallet {wallet.id} to show its new name",
        )

    def _wait_until(self, done: Callable[[], bool], what: str) -> None:
        if not poll_until(done, self._wait_timeout, maximum=1.0, sleep=self._sleep):
            raise ApiError(
                f"LNbits at {self.url}: timed out after {self._wait_timeout:.0f}s "
                f"waiting for {what}"
            )

    # -- reads -------------------------------------------------------------------------------

    def _get(self, wallet_id: str) -> _Wallet | None:
        """One live wallet by id (through the paginated list, filtered by id)."""
        body = self._request(
            "GET",
            "/api/v1/wallet/paginated",
            params={"id": wallet_id, "limit": 2, "offset": 0},
        )
        data, _ = self._page(body, 2)
        matches = [self._wallet_from_json(item, "wallet list") for item in data]
        matches = [w for w in matches if w.id == wallet_id]
        if len(matches) > 1:
            raise MalformedResponseError(f"LNbits at {self.url} listed wallet {wallet_id} twice")
        return matches[0] if matches else None

    def _list(self) -> list[_Wallet]:
        """Every live wallet of the account, complete or not at all."""
        for attempt in range(1, LISTING_ATTEMPTS + 1):
            listing = self._list_once()
            if listing is not None:
                return listing
            log.info("wallets changed while listing (attempt %d); listing again", attempt)
        raise ApiError(
            f"LNbits at {self.url}: the wallet list kept changing while it was read "
            f"({LISTING_ATTEMPTS} attempts)",
            hint="run again when no one else is changing wallets in this account",
        )

    def _list_once(self) -> list[_Wallet] | None:
        seen: dict[str, _Wallet] = {}
        totals: set[int] = set()
        for page in range(self._max_pages):
            body = self._request(
                "GET",
                "/api/v1/wallet/paginated",
                params={
                    "limit": self._page_size,
                    "offset": page * self._page_size,
                    "sortby": "id",
                    "direction": "asc",
                },
            )
            data, total = self._page(body, self._page_size)
            if data:
                totals.add(total)  # LNbits answers total=0 for an empty page past the end
            for item in data:
                wallet = self._wallet_from_json(item, "wallet list")
                if wallet.id in seen:
                    return None  # the pages shifted under us
                seen[wallet.id] = wallet
            if len(data) < self._page_size:
                if len(totals) > 1 or (totals and totals.pop() != len(seen)):
                    return None
                return list(seen.values())
        raise ApiError(
            f"LNbits at {self.url}: more than {self._max_pages * self._page_size} wallets; "
            "refusing to plan from a partial list"
        )

    def _page(self, body: Any, limit: int) -> tuple[list[Any], int]:
        if not isinstance(body, dict):
            raise MalformedResponseError(f"LNbits at {self.url}: wallet list is not an object")
        data, total = body.get("data"), body.get("total")
        if not isinstance(data, list) or not isinstance(total, int) or isinstance(total, bool):
            raise MalformedResponseError(
                f"LNbits at {self.url}: wallet list lacks `data` (list) or `total` (integer)"
            )
        if len(data) > limit:
            raise MalformedResponseError(
                f"LNbits at {self.url}: a page held more wallets than asked for"
            )
        return data, total

    def _wallet_from_json(self, item: Any, what: str) -> _Wallet:
        if not isinstance(item, dict):
            raise MalformedResponseError(f"LNbits at {self.url}: {what}: a wallet is not an object")
        wallet_id, name = item.get("id"), item.get("name")
        if not isinstance(wallet_id, str) or not wallet_id or not isinstance(name, str):
            raise MalformedResponseError(
                f"LNbits at {self.url}: {what}: a wallet lacks `id` or `name`"
            )
        balance = item.get("balance_msat", 0)
        if not isinstance(balance, int) or isinstance(balance, bool):
            raise MalformedResponseError(
                f"LNbits at {self.url}: {what}: wallet {wallet_id} has no integer balance"
            )
        raw_key = item.get("adminkey")
        admin_key = None
        if isinstance(raw_key, str) and raw_key and not _MASKED_KEY_RE.match(raw_key):
            admin_key = Secret(raw_key)
            self._admin_keys[wallet_id] = admin_key
        raw_inkey = item.get("inkey")
        invoice_key = None
        if isinstance(raw_inkey, str) and raw_inkey and not _MASKED_KEY_RE.match(raw_inkey):
            invoice_key = Secret(raw_inkey)
            self._invoice_keys[wallet_id] = invoice_key
        wallet_type = item.get("wallet_type", "lightning")
        shared = wallet_type != "lightning" or bool(item.get("shared_wallet_id"))
        display, owner = parse_name(name)
        if shared:  # a wallet shared into this account: its name is someone else's
            display, owner = name, None
        return _Wallet(
            id=wallet_id,
            raw_name=name,
            display=display,
            owner=owner,
            balance_msat=balance,
            admin_key=admin_key,
            shared=shared,
            protected=owner is not None and is_protected_name(name),
            invoice_key=invoice_key,
        )

    # -- HTTP --------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        write: bool = False,
        bearer: bool = True,
    ) -> Any:
        what = f"{method} {path}"
        send_headers = dict(headers or {})
        if bearer:
            send_headers["Authorization"] = f"Bearer {self._token.reveal()}"
        content = None
        if json is not None:
            content = _json_module.dumps(json, separators=(",", ":"), allow_nan=False).encode()
        answer = self._http.request(
            method,
            path,
            f"LNbits at {self.url}: {what}",
            write=write,
            params=params,
            content=content,
            headers=send_headers,
        )
        status = answer.status
        if 200 <= status < 300:
            return self._json(answer, what)
        if write and status >= 500:
            raise WriteOutcomeUnknown(
                f"LNbits at {self.url}: {what}: the outcome is unknown: HTTP {status} after "
                f"the request was sent; {WRITE_UNKNOWN_TAIL}",
                status=status,
            )
        raise self._error_for(answer, what)

    def _json(self, answer: Answer, what: str) -> Any:
        if answer.too_large:
            raise MalformedResponseError(
                f"LNbits at {self.url}: {what}: the answer is larger than "
                f"{MAX_RESPONSE_BYTES} bytes",
                status=answer.status,
            )
        if not answer.body:
            return None
        try:
            return _json_module.loads(answer.body)
        except (ValueError, RecursionError):
            raise MalformedResponseError(
                f"LNbits at {self.url}: {what}: the answer is not JSON (HTTP {answer.status})",
                status=answer.status,
            ) from None

    def _detail(self, answer: Answer, secrets: tuple[Secret, ...] = ()) -> str:
        try:
            body = _json_module.loads(answer.body or b"")
        except (ValueError, RecursionError):
            return ""
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # validation errors
            detail = "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        if not isinstance(detail, str):
            return ""
        text = redact(
            detail[:300],
            self._token,
            *secrets,
            *self._admin_keys.values(),
            *self._invoice_keys.values(),
        )
        return f": {text}"

    def _error_for(
        self, answer: Answer, what: str, secrets: tuple[Secret, ...] = ()
    ) -> VoltageIacError:
        status = answer.status
        detail = self._detail(answer, secrets)
        message = f"LNbits at {self.url}: {what}: HTTP {status}{detail}"
        if 300 <= status < 400:
            location = answer.headers.get("location", "")
            if "first_install" in location:
                return ApiError(
                    f"LNbits at {self.url} is not set up yet (first install pending)",
                    status=status,
                    hint="finish the first install in the LNbits web page",
                )
            return ApiError(f"{message} (redirected)", status=status, hint="check provider.url")
        if status in (401, 403):
            return AuthError(
                message,
                status=status,
                hint=f"check {ENV_TOKEN} (or {ENV_USERNAME}/{ENV_PASSWORD})",
            )
        if status == 404:
            return NotFoundError(message, status=status)
        if status in (400, 413, 415, 422):
            return InvalidRequestError(message, status=status)
        if status == 429:
            return RateLimitedError(f"{message} ({answer.attempts} attempts)", status=status)
        if status >= 500:
            return ServerError(f"{message} ({answer.attempts} attempts)", status=status)
        return ApiError(message, status=status)


@contextlib.contextmanager
def open_backend(
    desired: DesiredState, options: ConnectOptions, environ: Mapping[str, str]
) -> Iterator[LnbitsProvider]:
    """The LNbits server named by `provider.url` (or LNBITS_URL), signed in from the
    environment."""
    if options.api_url or options.emulator_db:
        raise UsageError(
            "--api-url and --emulator-db apply to the Voltage provider only",
            hint="an LNbits config names its server in provider.url",
        )
    backend = LnbitsProvider.from_environment(
        desired,
        environ,
        wait_timeout=options.wait_timeout,
        timeout=options.request_timeout,
        deadline=options.request_deadline,
        max_requests_per_second=options.max_requests_per_second,
    )
    try:
        yield backend
    finally:
        backend.close()
