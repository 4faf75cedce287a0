"""The Voltage provider: API JSON <-> model, and writes that are safe to repeat.

Sits between the engine and `client.VoltageClient` (which only speaks HTTP). Reads turn
the contract's `Wallet`, `WalletPolicies` and `SummaryLineOfCredit` objects into the
model, checking their shape (a malformed answer is an error, never a wrong plan).
Writes follow the API's rules: every 202 is followed by polling with a deadline until
the change is visible, and a write whose outcome is unknown is resolved by reading
before anything is sent again. Wallet ids are chosen by us and deterministic, so a
repeated create can only ever address the same wallet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from voltage_iac import identity
from voltage_iac.client import VoltageClient
from voltage_iac.errors import (
    ApiError,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    UsageError,
    VoltageIacError,
    WriteOutcomeUnknown,
)
from voltage_iac.kinds.base import Operation
from voltage_iac.kinds.wallet import LiveWallet, Policies, ProcessingFee
from voltage_iac.model import (
    RESPONSE_NETWORKS,
    U64_MAX,
    DesiredState,
    LineOfCreditSummary,
    LiveState,
    Ownership,
    canonical_uuid,
    frozen_map,
    same_network,
)
from voltage_iac.providers import registry
from voltage_iac.providers.base import (
    ConnectOptions,
    ReceiveRequest,
    ReceiveState,
    unsupported,
)
from voltage_iac.providers.voltage_webhooks import VoltageWebhooks
from voltage_iac.secret import Secret
from voltage_iac.waiting import poll_until

log = logging.getLogger("voltage_iac.provider")

T = TypeVar("T")


class VisibilityTimeout(VoltageIacError):
    """An accepted (202) change did not become visible before the deadline."""


#: Creates are confirmed from shared environment listings while an environment holds at
#: most this many wallets; past it, one GET per created wallet is cheaper than listings.
LISTING_CONFIRM_MAX_WALLETS = 5_000
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Shortest time between the starts of two confirming listings of one environment; when a
#: listing takes longer than this, the next starts once it is done.
LISTING_MIN_INTERVAL = 0.25


class _SharedListings:
    """Environment listings shared by the creates waiting to become visible.

    A waiter asks for its wallet in a listing that started after its own check began;
    if one is already being fetched from before that, it waits for the next. So however
    many creates wait in an environment, each poll round costs one request for them all.
    A failed listing fails only the waiter that fetched it; the others fetch again."""

    def __init__(
        self,
        fetch: Callable[[str], Any],
        clock: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._sleep = sleep
        self._state = threading.Condition()
        self._snapshots: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._fetching: set[str] = set()
        self._next_start: dict[str, float] = {}  # per environment: no listing before then

    def lookup(self, env_id: str, wallet_id: str, *, since: float) -> dict[str, Any] | None:
        with self._state:
            while True:
                snapshot = self._snapshots.get(env_id)
                if snapshot is not None and snapshot[0] >= since:
                    return snapshot[1].get(wallet_id)
                if env_id not in self._fetching:
                    self._fetching.add(env_id)
                    break
                self._state.wait(timeout=1.0)
        try:
            # Listings are spaced: each one answers every create accepted before it
            # started, so a pause between them costs a create a little waiting (its
            # worker has moved on) and saves the API a listing of the whole environment.
            pause = self._next_start.get(env_id, 0.0) - self._clock()
            if pause > 0:
                self._sleep(pause)
            started = self._clock()
            raw = self._fetch(env_id)
            took = self._clock() - started
            self._next_start[env_id] = started + max(LISTING_MIN_INTERVAL, took)
            if not isinstance(raw, list):
                raise MalformedResponseError(
                    f"list wallets of environment {env_id}: expected a JSON array"
                )
            by_id: dict[str, dict[str, Any]] = {}
            for item in raw:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    raw_id = item["id"]
                    if not _CANONICAL_ID.fullmatch(raw_id):  # most ids already are
                        raw_id = canonical_uuid(raw_id) or raw_id
                    by_id[raw_id] = item
            with self._state:
                previous = self._snapshots.get(env_id)
                if previous is None or previous[0] <= started:
                    self._snapshots[env_id] = (started, by_id)
            return by_id.get(wallet_id)
        finally:
            with self._state:
                self._fetching.discard(env_id)
                self._state.notify_all()


class VoltageProvider:
    spec = registry.VOLTAGE

    def __init__(
        self,
        client: VoltageClient,
        organization_id: str,
        *,
        description: str = "Voltage API",
        wait_timeout: float = 120.0,
        poll_initial: float = 0.05,
        poll_max: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.organization_id = organization_id
        self._description = description
        self.wait_timeout = wait_timeout
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self._clock = clock
        self._sleep = sleep
        self._listings = _SharedListings(
            lambda env_id: self.client.list_wallets(organization_id, env_id, inactive=True),
            clock,
            sleep,
        )
        self._env_sizes: dict[str, int] = {}  # wallets per environment, as last listed
        self.webhooks = VoltageWebhooks(self)

    def describe(self) -> str:
        return self._description

    @property
    def request_count(self) -> int:
        """Requests sent so far, retries included (for the timings of `-v`)."""
        return self.client.request_count

    def close(self) -> None:
        self.client.close()

    # -- reads ---------------------------------------------------------------------------
    def read(self, desired: DesiredState) -> LiveState:
        org = self.organization_id
        wallets: list[LiveWallet] = []
        seen_ids: set[str] = set()
        env_ids = [env.id for env in desired.environments.values()]
        shared: dict[str, str] = {}  # one string per repeated id (environment, line, stack)
        for env in desired.environments.values():
            listing = f"list wallets of environment {env.name} ({env.id})"

            def take(item: dict[str, Any], env_id: str = env.id, listing: str = listing) -> None:
                with _context(listing):
                    wallet = parse_wallet(item, shared)
                if wallet.environment_id != env_id:
                    raise MalformedResponseError(
                        f"{listing}: wallet {wallet.id} belongs to environment "
                        f"{wallet.environment_id}"
                    )
                if wallet.id in seen_ids:
                    # Listed twice, a wallet would look like a leftover of its own replacement.
                    raise MalformedResponseError(
                        f"{listing}: wallet {wallet.id} is listed more than once"
                    )
                seen_ids.add(wallet.id)
                wallets.append(wallet)

            # Parsed one wallet at a time: the listing is never held whole as JSON.
            self._env_sizes[env.id] = self.client.scan_wallets(org, env.id, take, inactive=True)
        wallets = self._with_policies(desired, wallets)
        summaries: dict[str, LineOfCreditSummary] = {}
        if env_ids:
            raw_lines = self.client.line_of_credit_summaries(
                org, environment_ids=env_ids, include_disabled=True
            )
            if not isinstance(raw_lines, list):
                raise MalformedResponseError("line of credit summaries: expected a JSON array")
            for item in raw_lines:
                with _context("list lines of credit"):
                    summary = parse_line_of_credit(item)
                summaries[summary.id] = summary
        webhooks = self.webhooks.read(desired)
        return LiveState(
            resources=frozen_map(
                {"wallet": tuple(sorted(wallets, key=lambda w: w.id)), "webhook": webhooks}
            ),
            lines_of_credit=frozen_map(summaries),
            environments_read=tuple(sorted(desired.environments)),
            client_chosen_ids=self.spec.client_chosen_ids,
        )

    def _with_policies(self, desired: DesiredState, wallets: list[LiveWallet]) -> list[LiveWallet]:
        """Read policies only for active owned wallets whose config manages policies:
        a wallet without `policies:` costs no request."""
        managed = {k for k, w in desired.wallets.items() if w.policies is not None}
        pinned = {w.pinned_id for w in desired.wallets.values() if w.pinned_id}

        def wants(wallet: LiveWallet) -> bool:
            owner = wallet.owner
            return wallet.active and (
                wallet.id in pinned
                or (owner is not None and owner.stack == desired.stack and owner.key in managed)
            )

        def with_policies(wallet: LiveWallet) -> LiveWallet:
            raw = self.client.get_policies(self.organization_id, wallet.id)
            with _context(f"read policies of wallet {wallet.id}"):
                policies = parse_policies(raw) if raw is not None else Policies()
            return _replace_policies(wallet, policies)

        todo = [w for w in wallets if wants(w)]
        if not todo:
            return wallets
        # One read per wallet is the API's shape; do them a few at a time. Any failure
        # propagates (the whole read fails closed).
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            read = {w.id: w for w in pool.map(with_policies, todo)}
        return [read.get(w.id, w) for w in wallets]

    # -- writes --------------------------------------------------------------------------
    def execute(self, operation: Operation) -> str | None:
        if operation.kind == "webhook":
            return self.webhooks.execute(operation)
        if operation.kind != "wallet":
            raise unsupported("voltage", operation)
        if operation.verb == "create":
            return self.create_wallet(operation)
        assert operation.id is not None, operation.describe()
        if operation.verb == "update":
            self.rename_wallet(operation.id, operation.desired.name)
        elif operation.verb == "set_policies":
            before = operation.live.policies if operation.live is not None else None
            self.update_policies(operation.id, before, operation.desired.policies)
        elif operation.verb == "delete":
            self.delete_wallet(operation.id)
        else:
            raise unsupported("voltage", operation)
        return operation.id

    def begin(self, operation: Operation) -> Callable[[], str | None]:
        """A wallet create returns once the API accepted it: the wait for it to show (one
        environment listing shared by every waiting create) is left to the caller, so
        its request slot can send the next create meanwhile. Anything else runs whole."""
        if operation.kind == "wallet" and operation.verb == "create":
            return self._begin_create(operation)
        result = self.execute(operation)
        return lambda: result

    def create_wallet(self, request: Operation) -> str:
        return self._begin_create(request)()

    def _begin_create(self, request: Operation) -> Callable[[], str]:
        """Send a create (settling an unknown outcome by reading, never by re-sending
        blindly); the function returned waits until the wallet shows and checks it."""
        want = request.desired
        if request.id is None or want.environment_id is None or request.generation is None:
            raise VoltageIacError(f"{want.key}: no wallet id was planned")
        if want.line_of_credit_id is None or want.network is None or want.limit is None:
            raise VoltageIacError(f"{want.key}: line of credit, network and limit are required")
        wallet_id = request.id
        body = {
            "id": wallet_id,
            "environment_id": want.environment_id,
            "line_of_credit_id": want.line_of_credit_id,
            "name": want.name,
            "network": want.network,
            "limit": want.limit,
            "metadata": identity.with_labels(
                want.metadata, request.stack, want.key, request.generation, protect=want.protect
            ),
        }
        org = self.organization_id

        last: dict[str, Any] = {}

        def exists() -> bool:
            found = self.client.get_wallet(org, wallet_id)
            if found is not None:
                last["wallet"] = found
            return found is not None

        env_id = want.environment_id

        def listed() -> bool:
            # One listing of the environment answers every create waiting in it: about
            # one request per create instead of two. The first check takes any listing
            # started after the API accepted the create; a later one, a listing started
            # after that check began.
            since = accepted.pop() if accepted else self._clock()
            found = self._listings.lookup(env_id, wallet_id, since=since)
            if found is not None:
                last["wallet"] = found
            return found is not None

        batched = self._env_sizes.get(env_id, 0) <= LISTING_CONFIRM_MAX_WALLETS
        accepted: list[float] = []  # when the API accepted the create (its answer came)

        try:
            self.client.create_wallet(org, body)
        except WriteOutcomeUnknown as exc:
            log.info("create %s: outcome unknown (%s); reading before re-sending", wallet_id, exc)
            if not self._poll(exists, self._ambiguity_window()):
                self._resend_create(org, body)
        except InvalidRequestError as exc:
            if not _is_id_conflict(exc):
                raise
            # The id is already taken: an earlier attempt got through. Make sure it is ours.
            self._poll(exists, self._ambiguity_window())
        accepted.append(self._clock())
        return lambda: self._confirm_create(body, want, listed if batched else exists, last)

    def _confirm_create(
        self,
        body: dict[str, Any],
        want: Any,
        visible: Callable[[], bool],
        last: dict[str, Any],
    ) -> str:
        wallet_id = str(body["id"])
        self._wait(visible, f"wallet {wallet_id} ({want.key}) to appear")
        current = last.get("wallet")
        if current is not None and not current.get("active", True):
            raise VoltageIacError(
                f"{want.key}: wallet id {wallet_id} belongs to a deleted wallet; "
                "deleted ids cannot be reused",
                hint="re-run plan: the next plan picks the next generation's id",
            )
        if current is not None:
            # The id may have been taken by an earlier apply's create that showed up late,
            # made for an older version of the configuration: never report it as created.
            differing = _fixed_fields_differ(body, current)
            if differing:
                raise VoltageIacError(
                    f"{want.key}: wallet {wallet_id} already exists with another "
                    f"{', '.join(differing)} (created by an earlier apply for an older "
                    "configuration)",
                    hint="re-run apply: the next plan replaces it with the configured settings",
                )
            if current.get("name") != want.name:
                self.rename_wallet(wallet_id, want.name)
        return wallet_id

    def _resend_create(self, org: str, body: dict[str, Any]) -> None:
        try:
            self.client.create_wallet(org, body)
        except InvalidRequestError as exc:
            if not _is_id_conflict(exc):
                raise
        except WriteOutcomeUnknown:
            log.info("create %s: outcome unknown again; waiting for it to appear", body["id"])

    def rename_wallet(self, wallet_id: str, name: str) -> None:
        org = self.organization_id

        def renamed() -> bool:
            current = self.client.get_wallet(org, wallet_id)
            return current is not None and current.get("name") == name

        self._write_then_wait(
            lambda: self.client.update_wallet(org, wallet_id, name),
            renamed,
            f"wallet {wallet_id} to be renamed",
        )

    def update_policies(self, wallet_id: str, before: Policies | None, after: Policies) -> None:
        body = after.update_body(before)
        if not body:
            return
        org = self.organization_id

        def applied() -> bool:
            raw = self.client.get_policies(org, wallet_id)
            current = parse_policies(raw) if raw is not None else Policies()
            return current == after

        self._write_then_wait(
            lambda: self.client.update_policies(org, wallet_id, body),
            applied,
            f"policies of wallet {wallet_id} to change",
        )

    def delete_wallet(self, wallet_id: str) -> None:
        org = self.organization_id
        failed: list[str] = []
        # A deletion that failed before this one is old news: only a new failure counts.
        before = self.client.get_wallet(org, wallet_id)
        earlier_failure = before.get("deletion_failed_at") if before is not None else None

        def gone() -> bool:
            current = self.client.get_wallet(org, wallet_id)
            if current is None:
                return True
            failed_at = current.get("deletion_failed_at")
            if failed_at and failed_at != earlier_failure and current.get("active", True):
                failed.append(str(failed_at))
                return True
            return not current.get("active", True)

        def send() -> None:
            with contextlib.suppress(NotFoundError):  # already gone
                self.client.delete_wallet(org, wallet_id)

        self._write_then_wait(send, gone, f"wallet {wallet_id} to be deleted")
        if failed:
            raise ApiError(
                f"the API accepted the deletion of wallet {wallet_id} but it failed at {failed[0]}",
                hint="check the wallet in the dashboard; re-run apply to try again",
            )

    # -- receive requests (verify) -------------------------------------------------------
    def start_receive(self, request: ReceiveRequest) -> str:
        """Ask for a fixed-amount BOLT11 receive into the wallet, once. A 409 (the id is
        taken: an earlier attempt got through) or an unknown outcome is left to the reads
        of that id; the request is never sent twice."""
        wallet = request.target
        if request.kind != "wallet" or wallet.environment_id is None:
            raise VoltageIacError(f"{request.key}: only wallets of an environment can receive")
        body = {
            "id": request.payment_id,
            "wallet_id": wallet.id,
            "payment_kind": "bolt11",
            "amount": {"currency": "btc", "amount": request.amount_msats},
            "description": request.description,
            "expiration": 3600,
            "metadata": dict(request.metadata),
        }
        try:
            self.client.create_payment(self.organization_id, wallet.environment_id, body)
        except WriteOutcomeUnknown as exc:
            log.info("receive %s: outcome unknown (%s); reading it", request.payment_id, exc)
        except InvalidRequestError as exc:
            if exc.status != 409:
                raise
            log.info("receive %s: id already taken; reading it", request.payment_id)
        return request.payment_id

    def read_receive(self, request: ReceiveRequest, reference: str) -> ReceiveState | None:
        raw = self.client.get_payment(
            self.organization_id, request.target.environment_id, reference
        )
        if raw is None:
            return None
        return parse_receive(raw, request)

    # -- helpers -------------------------------------------------------------------------
    def _write_then_wait(
        self, send: Callable[[], None], done: Callable[[], bool], what: str
    ) -> None:
        try:
            send()
        except WriteOutcomeUnknown as exc:
            log.info("%s: outcome unknown (%s); reading before re-sending", what, exc)
            if not self._poll(done, self._ambiguity_window()):
                try:
                    send()
                except WriteOutcomeUnknown:
                    log.info("%s: outcome unknown again; waiting", what)
        self._wait(done, what)

    def _ambiguity_window(self) -> float:
        return min(self.wait_timeout, 10.0)

    def _poll(self, check: Callable[[], bool], budget: float) -> bool:
        """Call `check` with growing pauses until it is true or `budget` seconds pass."""
        return poll_until(
            check,
            budget,
            initial=self.poll_initial,
            maximum=self.poll_max,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _wait(self, check: Callable[[], bool], what: str) -> None:
        if not self._poll(check, self.wait_timeout):
            raise VisibilityTimeout(
                f"timed out after {self.wait_timeout:g}s waiting for {what}",
                hint="the API accepted the change and may still apply it; "
                "re-run apply to finish (it never duplicates a wallet)",
            )


def _fixed_fields_differ(body: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields fixed at creation on which a live wallet differs from a create body."""
    out = []
    for name in ("environment_id", "line_of_credit_id"):
        if str(current.get(name) or "").lower() != str(body[name]).lower():
            out.append(name)
    if not same_network(body["network"], current.get("network")):
        out.append("network")
    if current.get("limit") != body["limit"]:
        out.append("limit")
    if (current.get("metadata") or {}) != body["metadata"]:
        out.append("metadata")
    return out


@contextlib.contextmanager
def _context(operation: str) -> Iterator[None]:
    """Prefix a malformed-answer error with the read it came from."""
    try:
        yield
    except MalformedResponseError as exc:
        raise MalformedResponseError(f"{operation}: {exc.message}", hint=exc.hint) from None


def _is_id_conflict(exc: InvalidRequestError) -> bool:
    fields = exc.context.get("fields")
    return exc.error_type == "invalid_request" and isinstance(fields, list) and "id" in fields


def _replace_policies(wallet: LiveWallet, policies: Policies) -> LiveWallet:
    return dataclasses.replace(wallet, policies=policies)


# -- parsing (contract JSON -> model) -----------------------------------------------------


def _require(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedResponseError(f"{what}: field {name!r} is missing or has the wrong type")
    return value


def _uuid(value: Any, what: str) -> str:
    if isinstance(value, str) and _CANONICAL_ID.fullmatch(value):
        return value  # already as canonical_uuid spells it (the API's answers are)
    canonical = canonical_uuid(value)
    if canonical is None:
        raise MalformedResponseError(f"{what}: {value!r} is not a UUID")
    return canonical


def _optional_int(data: Mapping[str, Any], name: str, what: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise MalformedResponseError(
            f"{what}: field {name!r} is not an unsigned 64-bit integer: {_shown(value)}"
        )
    return value


def _bounded_int(data: Mapping[str, Any], name: str, what: str, low: int, high: int) -> int:
    value = _require(data, name, int, what)
    if not low <= value <= high:
        raise MalformedResponseError(
            f"{what}: field {name!r} is {_shown(value)}, outside {low}..{high}"
        )
    return int(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_wallet(data: Any, shared: dict[str, str] | None = None) -> LiveWallet:
    """A contract `Wallet` object -> LiveWallet (ownership labels split off).

    `shared`, when given, keeps one string for each environment id, line-of-credit id,
    network and stack name seen, instead of one per wallet (a large listing's memory)."""
    if not isinstance(data, dict):
        raise MalformedResponseError("wallet: expected a JSON object")
    wallet_id = _uuid(_require(data, "id", str, "wallet"), "wallet id")
    what = f"wallet {wallet_id}"
    name = _require(data, "name", str, what)
    active = _require(data, "active", bool, what)
    network = _require(data, "network", str, what)
    if network not in RESPONSE_NETWORKS:
        raise MalformedResponseError(f"{what}: unknown network {_shown(network)}")
    env = _uuid(_require(data, "environment_id", str, what), what)
    loc = data.get("line_of_credit_id")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise MalformedResponseError(f"{what}: metadata is not a string-to-string object")
    user_metadata, owner = identity.split_labels(metadata)
    limit = _optional_int(data, "limit", what)
    if owner is not None and (limit is None or loc is None):
        # voltage-iac creates every wallet with both: an answer without them is incomplete,
        # and planning from it would replace the wallet.
        missing = "limit" if limit is None else "line_of_credit_id"
        raise MalformedResponseError(
            f"{what}: field {missing!r} is missing, but this wallet was created with one "
            "(an incomplete answer; nothing is planned from it)"
        )
    balances = data.get("balances")
    if not isinstance(balances, list):
        raise MalformedResponseError(f"{what}: field 'balances' is missing or not an array")
    line_id = _uuid(loc, what) if loc is not None else None
    if shared is not None:
        env = shared.setdefault(env, env)
        network = shared.setdefault(network, network)
        if line_id is not None:
            line_id = shared.setdefault(line_id, line_id)
        if owner is not None and owner.stack in shared:
            owner = Ownership(shared[owner.stack], owner.key, owner.generation)
        elif owner is not None:
            shared[owner.stack] = owner.stack
    return LiveWallet(
        id=wallet_id,
        name=name,
        environment_id=env,
        network=network,
        line_of_credit_id=line_id,
        limit=limit,
        metadata=frozen_map(user_metadata),
        active=active,
        deleted_at=data.get("deleted_at"),
        deletion_failed_at=data.get("deletion_failed_at"),
        owner=owner,
        has_funds=_has_funds(balances),
        protected=identity.is_protected(metadata),
    )


def parse_receive(data: Any, request: ReceiveRequest) -> ReceiveState:
    """A contract `Payment` (direction receive) -> ReceiveState."""
    what = f"payment {request.payment_id}"
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{what}: expected a JSON object")
    if str(data.get("wallet_id", "")).lower() != request.target.id.lower():
        raise MalformedResponseError(f"{what}: belongs to another wallet")
    if data.get("direction") not in (None, "receive"):
        raise MalformedResponseError(f"{what}: is not a receive")
    status = _require(data, "status", str, what)
    raw_body = data.get("data")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    raw_error = data.get("error")
    if status == "failed" or isinstance(raw_error, dict):
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        return ReceiveState(
            "failed",
            error_type=str(error.get("type") or "receive_failed"),
            error_code=str(error["code"]) if error.get("code") else None,
            detail=str(error.get("detail") or ""),
        )
    invoice = body.get("payment_request")
    if isinstance(invoice, str) and invoice:
        owed = None
        amount = body.get("amount")
        if isinstance(amount, dict) and isinstance(amount.get("amount"), int):
            owed = amount["amount"]
        return ReceiveState("ready", payment_request=invoice, owed_msats=owed)
    if status in ("generating", "receiving", "pending", "detected"):
        return ReceiveState("pending")
    return ReceiveState(
        "failed",
        error_type=f"receive_{status}",
        detail=f"the receive is {status} and has no invoice",
    )


def _has_funds(balances: Any) -> bool:
    if not isinstance(balances, list):
        return False
    for balance in balances:
        if not isinstance(balance, dict):
            continue
        for field in ("total", "available"):
            amount = balance.get(field)
            if (
                isinstance(amount, dict)
                and isinstance(amount.get("amount"), int)
                and amount["amount"] != 0
            ):
                return True
    return False


_POLICY_TYPES = {
    "max_payment_size",
    "transaction_velocity",
    "send_volume_limit",
    "reflex_approval",
    "ofac_compliant",
    "processing_fee",
}


def parse_policies(data: Any) -> Policies:
    """A contract `WalletPolicies` object -> Policies."""
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list):
        raise MalformedResponseError("wallet policies: expected an object with a policies array")
    values: dict[str, Any] = {}
    seen_types: set[Any] = set()
    for item in data["policies"]:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise MalformedResponseError("wallet policies: malformed policy entry")
        kind, body = item.get("type"), item["data"]
        what = f"wallet policy {_shown(kind)}"
        if kind in seen_types:
            raise MalformedResponseError(f"wallet policies: policy type {kind!r} appears twice")
        seen_types.add(kind)
        if kind == "max_payment_size":
            values["max_payment_size_sats"] = _bounded_int(body, "max_size_sats", what, 1, U64_MAX)
        elif kind == "transaction_velocity":
            values["transactions_per_minute"] = _bounded_int(
                body, "transactions_per_minute", what, 1, U64_MAX
            )
        elif kind == "send_volume_limit":
            values["send_volume_limit_sats"] = _bounded_int(body, "limit_sats", what, 1, U64_MAX)
        elif kind == "reflex_approval":
            values["template_id"] = _uuid(_require(body, "template_id", str, what), what)
        elif kind == "ofac_compliant":
            values["ofac_compliant"] = True
        elif kind == "processing_fee":
            rates = _require(body, "rates", dict, what)
            values["processing_fee"] = ProcessingFee(
                send_basis_points=_bounded_int(rates, "send_basis_points", what, 0, 10_000),
                receive_basis_points=_bounded_int(rates, "receive_basis_points", what, 0, 10_000),
            )
        else:
            # A policy type this version does not know: refuse rather than plan blindly.
            raise MalformedResponseError(
                f"wallet policies: unknown policy type {_shown(kind)}",
                hint="upgrade voltage-iac, or remove `policies:` from this wallet's config",
            )
    return Policies(**values)


def parse_line_of_credit(data: Any) -> LineOfCreditSummary:
    if not isinstance(data, dict):
        raise MalformedResponseError("line of credit summary: expected a JSON object")
    loc_id = _uuid(_require(data, "id", str, "line of credit"), "line of credit id")
    what = f"line of credit {loc_id}"
    network = _require(data, "network", str, what)
    if network not in RESPONSE_NETWORKS:
        raise MalformedResponseError(f"{what}: unknown network {_shown(network)}")
    limit = _optional_int(data, "limit", what)
    allocated = _optional_int(data, "allocated_limit", what)
    if limit is None or allocated is None:
        raise MalformedResponseError(f"{what}: limit and allocated_limit are required")
    return LineOfCreditSummary(
        id=loc_id,
        environment_id=_uuid(_require(data, "environment_id", str, what), what),
        network=network,
        limit=limit,
        allocated_limit=allocated,
        currency=str(data.get("currency", "btc")),
        disabled=data.get("disabled_at") is not None,
    )


# -- opening (a registry lookup lands here) -------------------------------------------------

DEFAULT_API_URL = "https://voltageapi.com/v1"
EMULATOR = "emulator"
DEFAULT_EMULATOR_DB = ".voltage-iac/emulator.db"


def api_key_from_environment(environ: Mapping[str, str]) -> Secret:
    """The Voltage API key from VOLTAGE_API_KEY or VOLTAGE_API_KEY_FILE (never echoed)."""
    value = environ.get("VOLTAGE_API_KEY", "").strip()
    key_file = environ.get("VOLTAGE_API_KEY_FILE", "").strip()
    if value and key_file:
        raise UsageError(
            "both VOLTAGE_API_KEY and VOLTAGE_API_KEY_FILE are set",
            hint="set only one of them",
        )
    if key_file:
        try:
            value = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            raise UsageError(
                f"cannot read the API key file named by VOLTAGE_API_KEY_FILE ({key_file}): {reason}"
            ) from None
        if not value:
            raise UsageError(f"the API key file {key_file} is empty")
    if not value:
        raise AuthError(
            "no API key: set VOLTAGE_API_KEY (or VOLTAGE_API_KEY_FILE to a file holding it)",
            hint="or use the embedded emulator: provider.api_url: emulator",
        )
    return Secret(value)


def resolve_api_url(
    desired: DesiredState, options: ConnectOptions, environ: Mapping[str, str]
) -> str:
    """`--api-url`, else VOLTAGE_API_URL, else `provider.api_url`, else the public API."""
    url = (
        options.api_url
        or environ.get("VOLTAGE_API_URL", "").strip()
        or desired.api_url
        or DEFAULT_API_URL
    )
    if url == EMULATOR:
        return url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"API URL {url!r} is not an http(s) URL",
            hint=f"use e.g. {DEFAULT_API_URL}, or `{EMULATOR}` for the embedded emulator",
        )
    return url.rstrip("/")


@contextlib.contextmanager
def open_backend(
    desired: DesiredState, options: ConnectOptions, environ: Mapping[str, str]
) -> Iterator[VoltageProvider]:
    """The Voltage API, or the embedded emulator when the URL is `emulator`."""
    env = environ
    url = resolve_api_url(desired, options, env)
    if url == EMULATOR:
        from voltage_iac.emulator.errors import EmulatorError
        from voltage_iac.emulator.server import EmbeddedEmulator

        db = options.emulator_db or env.get("VOLTAGE_IAC_EMULATOR_DB") or DEFAULT_EMULATOR_DB
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        try:
            emulator = EmbeddedEmulator(db).start()
        except EmulatorError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
        try:
            provider = _provider(
                desired,
                options,
                emulator.base_url,
                Secret(emulator.api_key.reveal()),
                f"embedded emulator, state in {db}",
            )
            try:
                yield provider
            finally:
                provider.close()
        finally:
            emulator.stop()
        return

    key = api_key_from_environment(env)
    provider = _provider(desired, options, url, key, f"Voltage API at {url}")
    try:
        yield provider
    finally:
        provider.close()


def _provider(
    desired: DesiredState, options: ConnectOptions, url: str, key: Secret, description: str
) -> VoltageProvider:
    client = VoltageClient(
        url,
        key,
        timeout=options.request_timeout,
        deadline=options.request_deadline,
        max_requests_per_second=options.max_requests_per_second,
    )
    return VoltageProvider(
        client,
        desired.organization_id,
        description=description,
        wait_timeout=options.wait_timeout,
    )
