"""The emulator's world: SQLite state and the business rules of the Voltage wallets API.

Sits behind the emulator's HTTP front (`app.py`), which validates request shapes, checks
access and renders JSON; this module decides what a write does and what a read sees.
The embedded server (`server.py`), the emulator's command line (`command.py`) and tests
use it directly too (seeding, inspection, setting a balance).

State lives in one SQLite file (WAL, one connection guarded by a lock), so successive
command-line runs and several processes see the same world. Eventual consistency is
kept as timestamps, never as background tasks: an accepted create gets a `visible_at`,
every later change of a wallet (rename, delete, policy update) is an event with an
`effective_at`, and reads fold in the events that are due at the time of the read.
Events of one wallet take effect in the order they were accepted. The clock is injected
(`clock`, seconds since the epoch) so tests can move time by hand.

Allocation out of a line of credit is kept as a running total, so a write costs the same
however many wallets a line has: `allocations.committed_units` is the sum of the limits
of the line's wallets minus every accepted delete that will succeed, and `releases` holds
those deletes with the time they take effect. A read at `now` sees the committed total
plus the releases not yet due. Limits are u64, past SQLite's integers, so totals are
stored as decimal text and added in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voltage_iac.emulator import invoice
from voltage_iac.emulator.networks import network_response_name
from voltage_iac.emulator.seed import validate_seed

SCHEMA_VERSION = "2"
POLICY_NAMESPACE = uuid.UUID("2b7f5a8e-0d4c-5e1f-8a3b-6c9d0e1f2a3b")

# Request field of UpdateWalletPolicyRequest -> policy type in WalletPolicies.
POLICY_TYPES: dict[str, str] = {
    "max_payment_size_sats": "max_payment_size",
    "transactions_per_minute": "transaction_velocity",
    "send_volume_limit_sats": "send_volume_limit",
    "template_id": "reflex_approval",
    "ofac_compliant": "ofac_compliant",
    "processing_fee": "processing_fee",
}
POLICY_ORDER = tuple(POLICY_TYPES.values())

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS organizations (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    access TEXT NOT NULL,
    environment_id TEXT
);
CREATE TABLE IF NOT EXISTS environments (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name TEXT,
    network TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lines_of_credit (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    network TEXT NOT NULL,
    limit_units TEXT NOT NULL,
    currency TEXT NOT NULL,
    disabled_at REAL
);
CREATE TABLE IF NOT EXISTS wallets (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    line_of_credit_id TEXT NOT NULL,
    name TEXT NOT NULL,
    limit_units TEXT NOT NULL,
    network TEXT NOT NULL,
    metadata TEXT,
    balance_msats INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    visible_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS wallets_by_org ON wallets (organization_id, environment_id);
CREATE INDEX IF NOT EXISTS wallets_by_line ON wallets (line_of_credit_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    effective_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_wallet ON events (wallet_id, seq);
CREATE TABLE IF NOT EXISTS allocations (
    line_of_credit_id TEXT PRIMARY KEY,
    committed_units TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    wallet_id TEXT PRIMARY KEY,
    line_of_credit_id TEXT NOT NULL,
    units TEXT NOT NULL,
    effective_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_by_line ON releases (line_of_credit_id, effective_at);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    url TEXT NOT NULL,
    name TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    visible_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_by_org ON webhooks (organization_id, environment_id);
CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    effective_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_by_webhook ON webhook_events (webhook_id, seq);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    wallet_id TEXT NOT NULL,
    line_of_credit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    requested_msats TEXT,
    fee_basis_points INTEGER,
    fee_msats TEXT,
    description TEXT,
    expiration INTEGER NOT NULL,
    metadata TEXT,
    outcome TEXT NOT NULL,
    payment_request TEXT,
    payment_hash TEXT,
    preimage TEXT,
    created_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    invoice_at REAL NOT NULL,
    settled_at REAL,
    settled_msats TEXT
);
CREATE INDEX IF NOT EXISTS payments_by_env ON payments (organization_id, environment_id);
"""


class RuleError(Exception):
    """A request the API refuses: HTTP status, error type, detail and context."""

    def __init__(
        self,
        status: int,
        error_type: str,
        detail: str,
        context: dict[str, Any] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error_type = error_type
        self.detail = detail
        self.context = context
        self.code = code


@dataclass(frozen=True)
class KeyGrant:
    """What an API key may do. `organization_id=None` means every organization."""

    access: str  # "read" or "write"
    organization_id: str | None = None
    environment_id: str | None = None


@dataclass(frozen=True)
class NewWallet:
    """A create request whose shape the HTTP front has already checked."""

    id: str
    environment_id: str
    line_of_credit_id: str
    name: str
    network: str  # request spelling
    limit: int
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class Environment:
    id: str
    organization_id: str
    name: str | None
    network: str  # request spelling


@dataclass(frozen=True)
class PolicyRecord:
    """One policy of a wallet; `value` is the request value (int, str, True or rates)."""

    type: str
    id: str
    value: Any
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class WalletPoliciesView:
    wallet_id: str
    organization_id: str
    policies: tuple[PolicyRecord, ...]
    updated_at: float


@dataclass(frozen=True)
class WalletView:
    """A wallet as a read at one instant sees it (events due by then applied)."""

    id: str
    organization_id: str
    environment_id: str
    line_of_credit_id: str
    name: str
    limit: int
    network: str  # request spelling; render with network_response_name
    metadata: dict[str, str] | None
    balance_msats: int
    created_at: float
    updated_at: float
    visible: bool
    active: bool
    deleted_at: float | None
    deletion_failed_at: float | None
    delete_pending: bool  # a delete that will succeed was accepted and is not visible yet
    holds_allocation: bool  # its limit still counts against the line of credit
    policies: WalletPoliciesView | None = field(default=None, compare=False)

    @property
    def response_network(self) -> str:
        return network_response_name(self.network)


@dataclass(frozen=True)
class LineSummary:
    id: str
    organization_id: str
    environment_id: str
    network: str  # request spelling
    limit: int
    allocated_limit: int
    currency: str
    disabled_at: float | None


WEBHOOK_STATUSES = ("active", "stopped", "deleted")


@dataclass(frozen=True)
class NewWebhook:
    """A webhook create whose shape the HTTP front has already checked."""

    id: str
    environment_id: str
    url: str
    name: str
    events: tuple[tuple[str, str], ...]  # (kind, event), e.g. ("send", "succeeded")


@dataclass(frozen=True)
class WebhookView:
    """A webhook as a read at one instant sees it."""

    id: str
    organization_id: str
    environment_id: str
    url: str
    name: str
    events: tuple[tuple[str, str], ...]
    status: str  # active | stopped | deleted
    created_at: float
    updated_at: float
    stopped_at: float | None
    deleted_at: float | None
    visible: bool
    delete_pending: bool


@dataclass(frozen=True)
class NewReceive:
    """A receive-payment create whose shape the HTTP front has already checked."""

    id: str
    wallet_id: str
    amount_msats: int | None  # None: any amount
    description: str | None
    expiration: int
    metadata: dict[str, str] | None


@dataclass(frozen=True)
class ReceiveView:
    """A receive payment as a read at one instant sees it."""

    id: str
    organization_id: str
    environment_id: str
    wallet_id: str
    line_of_credit_id: str
    requested_msats: int | None
    fee_basis_points: int | None
    fee_msats: int | None
    description: str | None
    expiration: int
    metadata: dict[str, str] | None
    status: str  # generating | receiving | completed | expired | failed
    error: tuple[str, str, str] | None  # (type, code, detail)
    payment_request: str | None  # only once generated
    payment_hash: str | None
    preimage: str | None  # only once completed
    created_at: float
    updated_at: float
    visible: bool
    settled_msats: int | None


def hash_key(key: str) -> str:
    """Keys are stored as SHA-256 digests, never as given."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Listing:
    """A wallet listing as read at a version of the database."""

    version: tuple[int, int]  # (writes of this store, SQLite's data_version)
    settled_at: float  # when the last of its creations and changes took effect
    views: tuple[WalletView, ...]


class Store:
    """The emulated world in one SQLite file. Thread-safe; several processes may share it."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._writes = 0  # write transactions of this store (other processes: data_version)
        self._listings: dict[tuple[str, str | None, bool], _Listing] = {}
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._write() as db:
                db.executescript_safe(_SCHEMA)
                row = db.one_or_none("SELECT value FROM meta WHERE key = 'schema_version'")
                if row is not None and row["value"] != SCHEMA_VERSION:
                    # A database of an earlier version: derive the running totals once.
                    self._rebuild_allocations(db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )

    # --- plumbing --------------------------------------------------------------------

    def now(self) -> float:
        return float(self._clock())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """One write transaction, taken with BEGIN IMMEDIATE so checks and writes of
        concurrent processes do not interleave."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._writes += 1
            try:
                yield _Tx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[_Tx]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield _Tx(self._db)
            finally:
                self._db.execute("COMMIT")

    # --- seeding ---------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when no organization has ever been seeded."""
        with self._read() as db:
            return db.one("SELECT COUNT(*) AS n FROM organizations")["n"] == 0

    def load_seed(self, seed: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and write a seed (see seed.py). Re-seeding the same document gives the
        same world: rows are replaced, a seeded wallet's history is cleared. Returns the
        normalised seed."""
        data = validate_seed(seed)
        now = self.now()
        org = data["organization_id"]
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO organizations (id) VALUES (?)", (org,))
            db.executemany(
                "INSERT OR REPLACE INTO environments (id, organization_id, name, network) "
                "VALUES (?, ?, ?, ?)",
                [(env["id"], org, env["name"], env["network"]) for env in data["environments"]],
            )
            db.executemany(
                "INSERT OR REPLACE INTO api_keys "
                "(key_hash, organization_id, access, environment_id) VALUES (?, ?, ?, ?)",
                [
                    (hash_key(key["key"]), org, key["access"], key["environment_id"])
                    for key in data["api_keys"]
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO lines_of_credit (id, organization_id, "
                "environment_id, network, limit_units, currency, disabled_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        line["id"],
                        org,
                        line["environment_id"],
                        line["network"],
                        str(line["limit"]),
                        line["currency"],
                        now if line["disabled"] else None,
                    )
                    for line in data["lines_of_credit"]
                ],
            )
            wallet_ids = [(wallet["id"],) for wallet in data["wallets"]]
            db.executemany("DELETE FROM events WHERE wallet_id = ?", wallet_ids)
            db.executemany("DELETE FROM releases WHERE wallet_id = ?", wallet_ids)
            db.executemany(
                "INSERT OR REPLACE INTO wallets (id, organization_id, environment_id, "
                "line_of_credit_id, name, limit_units, network, metadata, balance_msats, "
                "created_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        wallet["id"],
                        org,
                        wallet["environment_id"],
                        wallet["line_of_credit_id"],
                        wallet["name"],
                        str(wallet["limit"]),
                        wallet["network"],
                        json.dumps(wallet["metadata"]),
                        wallet["balance_msats"],
                        now,
                        now,
                    )
                    for wallet in data["wallets"]
                ],
            )
            deleted = [w for w in data["wallets"] if not w["active"]]
            db.executemany(
                "INSERT INTO events (wallet_id, kind, payload, accepted_at, effective_at) "
                "VALUES (?, 'delete', ?, ?, ?)",
                [(w["id"], json.dumps({"fails": False}), now, now) for w in deleted],
            )
            db.executemany(
                "INSERT INTO releases (wallet_id, line_of_credit_id, units, effective_at) "
                "VALUES (?, ?, ?, ?)",
                [(w["id"], w["line_of_credit_id"], str(w["limit"]), now) for w in deleted],
            )
            self._rebuild_allocations(db, organization_id=org)
            hook_ids = [(hook["id"],) for hook in data["webhooks"]]
            db.executemany("DELETE FROM webhook_events WHERE webhook_id = ?", hook_ids)
            db.executemany(
                "INSERT OR REPLACE INTO webhooks (id, organization_id, environment_id, url, "
                "name, events, secret_hash, created_at, visible_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        hook["id"],
                        org,
                        hook["environment_id"],
                        hook["url"],
                        hook["name"],
                        json.dumps([list(e) for e in hook["events"]]),
                        hash_key(hook["shared_secret"] or secrets.token_urlsafe(32)),
                        now,
                        now,
                    )
                    for hook in data["webhooks"]
                ],
            )
            db.executemany(
                "INSERT INTO webhook_events (webhook_id, kind, payload, accepted_at, "
                "effective_at) VALUES (?, ?, '{}', ?, ?)",
                [
                    (hook["id"], "stop" if hook["status"] == "stopped" else "delete", now, now)
                    for hook in data["webhooks"]
                    if hook["status"] != "active"
                ],
            )
        return data

    def reset(self) -> None:
        """Forget everything (organizations, keys, wallets, history)."""
        with self._write() as db:
            for table in (
                "payments",
                "webhook_events",
                "webhooks",
                "releases",
                "allocations",
                "events",
                "wallets",
                "lines_of_credit",
                "environments",
                "api_keys",
                "organizations",
            ):
                db.execute(f"DELETE FROM {table}")

    # --- access ----------------------------------------------------------------------

    def authenticate(self, key: str) -> KeyGrant | None:
        with self._read() as db:
            row = db.one_or_none(
                "SELECT organization_id, access, environment_id FROM api_keys WHERE key_hash = ?",
                (hash_key(key),),
            )
        if row is None:
            return None
        return KeyGrant(
            access=row["access"],
            organization_id=row["organization_id"],
            environment_id=row["environment_id"],
        )

    def organization_exists(self, organization_id: str) -> bool:
        with self._read() as db:
            row = db.one_or_none("SELECT id FROM organizations WHERE id = ?", (organization_id,))
        return row is not None

    def environment(self, organization_id: str, environment_id: str) -> Environment | None:
        with self._read() as db:
            row = db.one_or_none(
                "SELECT * FROM environments WHERE id = ? AND organization_id = ?",
                (environment_id, organization_id),
            )
        if row is None:
            return None
        return Environment(row["id"], row["organization_id"], row["name"], row["network"])

    # --- wallet reads ----------------------------------------------------------------

    def list_wallets(
        self,
        organization_id: str,
        *,
        environment_id: str | None = None,
        include_inactive: bool = False,
    ) -> tuple[WalletView, ...]:
        """Visible wallets of an organization (one environment if given), oldest first;
        deleted ones only with `include_inactive`."""
        now = self.now()
        sql = "SELECT * FROM wallets WHERE organization_id = ?"
        args: list[Any] = [organization_id]
        if environment_id is not None:
            sql += " AND environment_id = ?"
            args.append(environment_id)
        sql += " ORDER BY created_at, id"
        key = (organization_id, environment_id, include_inactive)
        with self._read() as db:
            version = (self._writes, db.one("PRAGMA data_version")[0])
            cached = self._listings.get(key)
            if cached is not None and cached.version == version and now >= cached.settled_at:
                return cached.views
            rows = db.all(sql, args)
            events = self._events_of(db, [row["id"] for row in rows])
            views = [_fold(row, events[row["id"]], now) for row in rows]
        listed = tuple(v for v in views if v.visible and (include_inactive or v.active))
        # Kept for the next listing while nothing is written (by this store or another
        # process) and nothing listed is still to take effect: planning reads the same
        # large listing again and again, and gets the same answer.
        times = [float(row["visible_at"]) for row in rows]
        times += [float(ev["effective_at"]) for evs in events.values() for ev in evs]
        settled_at = max(times, default=0.0)
        if settled_at <= now:
            self._listings[key] = _Listing(version, settled_at, listed)
        return listed

    def get_wallet(self, organization_id: str, wallet_id: str) -> WalletView | None:
        """The wallet if its creation is visible (deleted wallets included), else None."""
        view = self._peek(organization_id, wallet_id)
        return view if view is not None and view.visible else None

    def get_policies(self, organization_id: str, wallet_id: str) -> WalletPoliciesView | None:
        """The wallet's policies, or None when the wallet is not visible or has never had
        a policy update take effect."""
        view = self.get_wallet(organization_id, wallet_id)
        return view.policies if view is not None else None

    def _peek(self, organization_id: str, wallet_id: str) -> WalletView | None:
        with self._read() as db:
            return self._view_in(db, organization_id, wallet_id, self.now())

    def _view_in(
        self, db: _Tx, organization_id: str, wallet_id: str, now: float
    ) -> WalletView | None:
        row = db.one_or_none(
            "SELECT * FROM wallets WHERE id = ? AND organization_id = ?",
            (wallet_id, organization_id),
        )
        if row is None:
            return None
        return self._views(db, [row], now)[0]

    def _views(self, db: _Tx, rows: Sequence[sqlite3.Row], now: float) -> list[WalletView]:
        events = self._events_of(db, [row["id"] for row in rows])
        return [_fold(row, events[row["id"]], now) for row in rows]

    @staticmethod
    def _events_of(db: _Tx, ids: Sequence[str]) -> dict[str, list[sqlite3.Row]]:
        """Each wallet's events, in acceptance order."""
        events: dict[str, list[sqlite3.Row]] = {i: [] for i in ids}
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" for _ in chunk)
            for ev in db.all(
                f"SELECT * FROM events WHERE wallet_id IN ({marks}) ORDER BY seq", chunk
            ):
                events[ev["wallet_id"]].append(ev)
        return events

    # --- wallet writes ---------------------------------------------------------------

    def create_wallet(self, organization_id: str, request: NewWallet, *, delay: float) -> None:
        """Accept a create: checks the rules, takes the allocation now, and makes the
        wallet visible `delay` seconds later. Raises RuleError."""
        now = self.now()
        with self._write() as db:
            if not _has_environment(db, organization_id, request.environment_id):
                raise RuleError(
                    400,
                    "invalid_request",
                    "environment_id does not name an environment of this organization",
                    {"fields": ["environment_id"]},
                )
            if db.one_or_none("SELECT id FROM wallets WHERE id = ?", (request.id,)) is not None:
                raise RuleError(
                    400,
                    "invalid_request",
                    "a wallet with this id already exists or existed; wallet ids are never "
                    "reused: read the wallet instead of creating it again",
                    {"fields": ["id"]},
                )
            line = db.one_or_none(
                "SELECT * FROM lines_of_credit WHERE id = ? AND organization_id = ? "
                "AND environment_id = ?",
                (request.line_of_credit_id, organization_id, request.environment_id),
            )
            if line is None:
                raise RuleError(
                    400,
                    "line_of_credit_not_found",
                    "no line of credit with this id in the wallet's environment",
                )
            if line["disabled_at"] is not None:
                raise RuleError(
                    400,
                    "line_of_credit_disabled",
                    "the line of credit is disabled",
                    {"line_of_credit_id": line["id"]},
                )
            if network_response_name(line["network"]) != network_response_name(request.network):
                raise RuleError(
                    400,
                    "line_of_credit_network_mismatch",
                    f"the line of credit is on {network_response_name(line['network'])}, "
                    f"the wallet on {network_response_name(request.network)}",
                )
            allocated = self._allocated(db, line["id"], now)
            line_limit = int(line["limit_units"])
            if allocated + request.limit > line_limit:
                raise RuleError(
                    400,
                    "line_of_credit_cannot_allocate_wallet_limit",
                    f"the line of credit has {max(0, line_limit - allocated)} left to allocate, "
                    f"the wallet asks for {request.limit}",
                )
            db.execute(
                "INSERT INTO wallets (id, organization_id, environment_id, line_of_credit_id, "
                "name, limit_units, network, metadata, balance_msats, created_at, visible_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    request.id,
                    organization_id,
                    request.environment_id,
                    request.line_of_credit_id,
                    request.name,
                    str(request.limit),
                    request.network,
                    json.dumps(request.metadata) if request.metadata is not None else None,
                    now,
                    now + max(0.0, delay),
                ),
            )
            self._commit_units(db, line["id"], request.limit)

    def rename_wallet(
        self, organization_id: str, wallet_id: str, name: str, *, delay: float
    ) -> None:
        """Accept a rename of a visible, active wallet; the name shows after `delay`."""
        now = self.now()
        with self._write() as db:
            view = self._view_in(db, organization_id, wallet_id, now)
            if view is None or not view.visible or not view.active:
                raise wallet_not_found(wallet_id)
            self._add_event(db, wallet_id, "rename", {"name": name}, now, now + delay)

    def delete_wallet(
        self, organization_id: str, wallet_id: str, *, delay: float, fails: bool = False
    ) -> None:
        """Accept a soft delete. After `delay` the wallet is inactive and its limit goes back
        to the line of credit, or, when `fails`, `deletion_failed_at` is set and nothing
        else changes. A second delete while one is pending is accepted and does nothing."""
        now = self.now()
        with self._write() as db:
            view = self._view_in(db, organization_id, wallet_id, now)
            if view is None or not view.visible or not view.active:
                raise wallet_not_found(wallet_id)
            if view.balance_msats != 0:
                raise RuleError(
                    400,
                    "wallet_not_empty",
                    "the wallet still holds funds; move them out before deleting it",
                    {"wallet_id": wallet_id},
                )
            if view.delete_pending:
                return
            effective = self._add_event(db, wallet_id, "delete", {"fails": fails}, now, now + delay)
            if not fails:
                # The limit goes back to the line when the delete takes effect.
                db.execute(
                    "INSERT INTO releases (wallet_id, line_of_credit_id, units, effective_at) "
                    "VALUES (?, ?, ?, ?)",
                    (wallet_id, view.line_of_credit_id, str(view.limit), effective),
                )
                self._commit_units(db, view.line_of_credit_id, -view.limit)

    def update_policies(
        self, organization_id: str, wallet_id: str, changes: Mapping[str, Any], *, delay: float
    ) -> None:
        """Accept a policy update (request field -> value, None removes). Raises RuleError
        for an empty update or a wallet that is not visible and active."""
        now = self.now()
        unknown = sorted(set(changes) - set(POLICY_TYPES))
        if unknown:
            raise ValueError(f"unknown policy field(s): {', '.join(unknown)}")
        with self._write() as db:
            view = self._view_in(db, organization_id, wallet_id, now)
            if view is None or not view.visible or not view.active:
                raise RuleError(
                    404,
                    "wallet_policies_not_found",
                    "no wallet with this id in the organization",
                    {"wallet_id": wallet_id},
                )
            if not changes:
                raise RuleError(
                    400,
                    "no_updates_provided",
                    "the update names no policy",
                    {"wallet_id": wallet_id},
                )
            self._add_event(db, wallet_id, "policies", dict(changes), now, now + delay)

    def _add_event(
        self,
        db: _Tx,
        wallet_id: str,
        kind: str,
        payload: Mapping[str, Any],
        accepted_at: float,
        effective_at: float,
    ) -> float:
        """Record a change of a wallet; returns when it takes effect."""
        return _add_change(db, _WALLET_CHANGES, wallet_id, kind, payload, accepted_at, effective_at)

    def _allocated(self, db: _Tx, line_id: str, now: float) -> int:
        """What the line has allocated at `now`: the running total plus the deletes
        accepted but not yet effective (their limits are still held)."""
        row = db.one_or_none(
            "SELECT committed_units FROM allocations WHERE line_of_credit_id = ?", (line_id,)
        )
        committed = int(row["committed_units"]) if row is not None else 0
        pending = db.all(
            "SELECT units FROM releases WHERE line_of_credit_id = ? AND effective_at > ?",
            (line_id, now),
        )
        return committed + sum(int(r["units"]) for r in pending)

    def _commit_units(self, db: _Tx, line_id: str, units: int) -> None:
        row = db.one_or_none(
            "SELECT committed_units FROM allocations WHERE line_of_credit_id = ?", (line_id,)
        )
        committed = (int(row["committed_units"]) if row is not None else 0) + units
        db.execute(
            "INSERT OR REPLACE INTO allocations (line_of_credit_id, committed_units) VALUES (?, ?)",
            (line_id, str(committed)),
        )

    def _rebuild_allocations(self, db: _Tx, *, organization_id: str | None = None) -> None:
        """Recompute the running totals from the wallets (of one organization, or all):
        once per seed or upgrade, linear in the wallets."""
        org_filter = "" if organization_id is None else " WHERE organization_id = ?"
        args: tuple[Any, ...] = () if organization_id is None else (organization_id,)
        if organization_id is None:
            # Releases come from the recorded deletes that will succeed.
            db.execute("DELETE FROM releases")
            for ev in db.all("SELECT * FROM events WHERE kind = 'delete' ORDER BY seq"):
                if json.loads(ev["payload"]).get("fails"):
                    continue
                db.execute(
                    "INSERT OR IGNORE INTO releases (wallet_id, line_of_credit_id, units, "
                    "effective_at) SELECT id, line_of_credit_id, limit_units, ? "
                    "FROM wallets WHERE id = ?",
                    (ev["effective_at"], ev["wallet_id"]),
                )
        totals: dict[str, int] = {
            r["id"]: 0 for r in db.all("SELECT id FROM lines_of_credit" + org_filter, args)
        }
        for r in db.all("SELECT line_of_credit_id, limit_units FROM wallets" + org_filter, args):
            line = r["line_of_credit_id"]
            totals[line] = totals.get(line, 0) + int(r["limit_units"])
        released = db.all(
            "SELECT r.line_of_credit_id, r.units FROM releases r JOIN wallets w "
            "ON w.id = r.wallet_id" + org_filter.replace("organization_id", "w.organization_id"),
            args,
        )
        for r in released:
            line = r["line_of_credit_id"]
            totals[line] = totals.get(line, 0) - int(r["units"])
        db.executemany(
            "INSERT OR REPLACE INTO allocations (line_of_credit_id, committed_units) VALUES (?, ?)",
            [(line, str(total)) for line, total in totals.items()],
        )

    def set_balance(self, wallet_id: str, balance_msats: int) -> None:
        """Give a wallet funds (the emulator has no payments; tests and demos use this)."""
        if isinstance(balance_msats, bool) or not isinstance(balance_msats, int):
            raise ValueError("balance_msats must be an integer")
        if not 0 <= balance_msats < 2**63:
            raise ValueError("balance_msats must be >= 0")
        with self._write() as db:
            cur = db.execute(
                "UPDATE wallets SET balance_msats = ? WHERE id = ?", (balance_msats, wallet_id)
            )
            if cur.rowcount == 0:
                raise KeyError(wallet_id)

    # --- webhooks --------------------------------------------------------------------

    def create_webhook(
        self, organization_id: str, request: NewWebhook, secret: str, *, delay: float
    ) -> None:
        """Accept a webhook create (the shared secret is stored as a digest only). Raises
        RuleError 409 `webhook_exists` for an id ever used, pending or deleted."""
        now = self.now()
        with self._write() as db:
            if not _has_environment(db, organization_id, request.environment_id):
                raise RuleError(
                    400,
                    "invalid_webhook",
                    "the environment is not an environment of this organization",
                )
            if db.one_or_none("SELECT id FROM webhooks WHERE id = ?", (request.id,)):
                raise RuleError(
                    409,
                    "webhook_exists",
                    "a webhook with this id already exists or existed",
                    {"webhook_id": request.id},
                )
            db.execute(
                "INSERT INTO webhooks (id, organization_id, environment_id, url, name, events, "
                "secret_hash, created_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id,
                    organization_id,
                    request.environment_id,
                    request.url,
                    request.name,
                    json.dumps([list(e) for e in request.events]),
                    hash_key(secret),
                    now,
                    now + max(0.0, delay),
                ),
            )

    def get_webhook(
        self, organization_id: str, environment_id: str, webhook_id: str
    ) -> WebhookView | None:
        """The webhook if its creation is visible in that environment (deleted included)."""
        with self._read() as db:
            return self._webhook_in(db, organization_id, environment_id, webhook_id, self.now())

    def list_webhooks(
        self,
        organization_id: str,
        *,
        environment_ids: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        sort_key: str = "created_at",
        descending: bool = False,
    ) -> list[WebhookView]:
        """Visible webhooks of an organization. Without `statuses`, deleted ones are left
        out; `statuses` picks exactly the statuses named."""
        now = self.now()
        with self._read() as db:
            rows = db.all(
                "SELECT * FROM webhooks WHERE organization_id = ? ORDER BY created_at, id",
                (organization_id,),
            )
            views = self._webhook_views(db, rows, now)
        wanted = set(statuses) if statuses else {"active", "stopped"}
        result = [
            v
            for v in views
            if v.visible
            and v.status in wanted
            and (environment_ids is None or v.environment_id in environment_ids)
        ]
        result.sort(key=lambda v: (getattr(v, sort_key), v.id), reverse=descending)
        return result

    def change_webhook(
        self,
        organization_id: str,
        environment_id: str,
        webhook_id: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        delay: float,
    ) -> None:
        """Accept an update, start, stop or delete of a visible webhook that is not deleted;
        it takes effect after `delay`. A delete while one is pending does nothing more."""
        if kind not in ("update", "start", "stop", "delete"):
            raise ValueError(f"unknown webhook change {kind!r}")
        now = self.now()
        with self._write() as db:
            view = self._webhook_in(db, organization_id, environment_id, webhook_id, now)
            if view is None or view.status == "deleted":
                raise webhook_not_found(webhook_id)
            if kind == "delete" and view.delete_pending:
                return
            _add_change(db, _WEBHOOK_CHANGES, webhook_id, kind, payload, now, now + delay)

    def rotate_webhook_secret(
        self, organization_id: str, environment_id: str, webhook_id: str, secret: str
    ) -> None:
        """Replace the webhook's shared secret (from this moment; stored as a digest)."""
        now = self.now()
        with self._write() as db:
            view = self._webhook_in(db, organization_id, environment_id, webhook_id, now)
            if view is None or view.status == "deleted" or view.delete_pending:
                raise webhook_not_found(webhook_id)
            db.execute(
                "UPDATE webhooks SET secret_hash = ? WHERE id = ?", (hash_key(secret), webhook_id)
            )

    def webhook_secret_matches(self, webhook_id: str, secret: str) -> bool:
        """True when `secret` is the webhook's current shared secret (for tests and demos:
        the emulator keeps only its digest)."""
        with self._read() as db:
            row = db.one_or_none("SELECT secret_hash FROM webhooks WHERE id = ?", (webhook_id,))
        return row is not None and hmac.compare_digest(row["secret_hash"], hash_key(secret))

    def _webhook_in(
        self, db: _Tx, organization_id: str, environment_id: str, webhook_id: str, now: float
    ) -> WebhookView | None:
        row = db.one_or_none(
            "SELECT * FROM webhooks WHERE id = ? AND organization_id = ? AND environment_id = ?",
            (webhook_id, organization_id, environment_id),
        )
        if row is None:
            return None
        view = self._webhook_views(db, [row], now)[0]
        return view if view.visible else None

    def _webhook_views(self, db: _Tx, rows: Sequence[sqlite3.Row], now: float) -> list[WebhookView]:
        ids = [row["id"] for row in rows]
        events: dict[str, list[sqlite3.Row]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            for ev in db.all(
                f"SELECT * FROM webhook_events WHERE webhook_id IN ({marks}) ORDER BY seq", chunk
            ):
                events[ev["webhook_id"]].append(ev)
        return [_fold_webhook(row, events[row["id"]], now) for row in rows]

    # --- receive payments ------------------------------------------------------------

    def node_key(self) -> str:
        """The emulator's throwaway Lightning node key (hex), made once per database."""
        with self._write() as db:
            row = db.one_or_none("SELECT value FROM meta WHERE key = 'node_key'")
            if row is not None:
                return str(row["value"])
            key = invoice.new_node_key()
            db.execute("INSERT INTO meta (key, value) VALUES ('node_key', ?)", (key,))
            return key

    def create_receive(
        self,
        organization_id: str,
        environment_id: str,
        request: NewReceive,
        *,
        delay: float,
        invoice_delay: float,
        outcome: str = "invoice",
    ) -> None:
        """Accept a receive: visible after `delay`, `generating` until `invoice_delay`
        later, then `receiving` with its invoice, or `failed` (`outcome` "failed" or
        "fee_refused"). An any-amount receive on a wallet with a nonzero receive
        processing fee is refused that way too. Raises RuleError (409 on a used id)."""
        if outcome not in ("invoice", "failed", "fee_refused"):
            raise ValueError(f"unknown receive outcome {outcome!r}")
        now = self.now()
        key = self.node_key()
        with self._write() as db:
            if db.one_or_none("SELECT id FROM payments WHERE id = ?", (request.id,)):
                raise RuleError(
                    409,
                    "payment_exists",
                    "a payment with this id already exists",
                    {"payment_id": request.id},
                )
            wallet = self._view_in(db, organization_id, request.wallet_id, now)
            if wallet is None or not wallet.visible or not wallet.active:
                raise RuleError(
                    400, "invalid_payment", "no active wallet with this id in the organization"
                )
            if wallet.environment_id != environment_id:
                raise RuleError(
                    400,
                    "environment_match_failed",
                    "the wallet is not in the environment of the request",
                )
            fee_bps = 0
            if wallet.policies is not None:
                for policy in wallet.policies.policies:
                    if policy.type == "processing_fee":
                        fee_bps = int(policy.value["receive_basis_points"])
            if request.amount_msats is None and fee_bps > 0:
                outcome = "fee_refused"
            fee = None
            if request.amount_msats is not None and fee_bps > 0:
                fee = -(-request.amount_msats * fee_bps // 10_000)  # rounded up
            visible_at = now + max(0.0, delay)
            invoice_at = visible_at + max(0.0, invoice_delay)
            issued = None
            if outcome == "invoice":
                total = None if request.amount_msats is None else request.amount_msats + (fee or 0)
                issued = invoice.issue(
                    network=wallet.network,
                    amount_msats=total,
                    description=request.description or "",
                    expiry_seconds=request.expiration,
                    created_at=int(invoice_at),
                    private_key_hex=key,
                )
            db.execute(
                "INSERT INTO payments (id, organization_id, environment_id, wallet_id, "
                "line_of_credit_id, kind, requested_msats, fee_basis_points, fee_msats, "
                "description, expiration, metadata, outcome, payment_request, payment_hash, "
                "preimage, created_at, visible_at, invoice_at) "
                "VALUES (?, ?, ?, ?, ?, 'bolt11', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id,
                    organization_id,
                    environment_id,
                    request.wallet_id,
                    wallet.line_of_credit_id,
                    None if request.amount_msats is None else str(request.amount_msats),
                    fee_bps or None,
                    None if fee is None else str(fee),
                    request.description,
                    request.expiration,
                    json.dumps(request.metadata) if request.metadata else None,
                    outcome,
                    issued.payment_request if issued else None,
                    issued.payment_hash if issued else None,
                    issued.preimage if issued else None,
                    now,
                    visible_at,
                    invoice_at,
                ),
            )

    def get_receive(
        self, organization_id: str, environment_id: str, payment_id: str
    ) -> ReceiveView | None:
        now = self.now()
        with self._read() as db:
            row = db.one_or_none(
                "SELECT * FROM payments WHERE id = ? AND organization_id = ? "
                "AND environment_id = ?",
                (payment_id, organization_id, environment_id),
            )
        if row is None:
            return None
        view = _fold_receive(row, now)
        return view if view.visible else None

    def list_receives(self, organization_id: str, environment_id: str) -> list[ReceiveView]:
        """Visible receives of an environment, oldest first (the HTTP front filters,
        sorts and pages)."""
        now = self.now()
        with self._read() as db:
            rows = db.all(
                "SELECT * FROM payments WHERE organization_id = ? AND environment_id = ? "
                "ORDER BY created_at, id",
                (organization_id, environment_id),
            )
        return [v for v in (_fold_receive(r, now) for r in rows) if v.visible]

    def settle_receive(self, payment_id: str, amount_msats: int | None = None) -> ReceiveView:
        """Pay a receive's invoice (the emulator has no payers; tests and demos use this):
        it completes now and its wallet is credited the principal. An any-amount invoice
        needs `amount_msats`. Raises KeyError (unknown) or ValueError (not receiving)."""
        now = self.now()
        with self._write() as db:
            row = db.one_or_none("SELECT * FROM payments WHERE id = ?", (payment_id,))
            if row is None:
                raise KeyError(payment_id)
            view = _fold_receive(row, now)
            if view.status != "receiving":
                raise ValueError(f"the payment is {view.status}, not receiving")
            if view.requested_msats is not None:
                if amount_msats not in (None, view.requested_msats):
                    raise ValueError("a fixed-amount invoice is paid its own amount")
                amount = view.requested_msats
            else:
                if isinstance(amount_msats, bool) or not isinstance(amount_msats, int):
                    raise ValueError("an any-amount invoice needs amount_msats")
                if not 1 <= amount_msats < 2**63:
                    raise ValueError("amount_msats must be >= 1")
                amount = amount_msats
            db.execute(
                "UPDATE payments SET settled_at = ?, settled_msats = ? WHERE id = ?",
                (now, str(amount), payment_id),
            )
            db.execute(
                "UPDATE wallets SET balance_msats = balance_msats + ? WHERE id = ?",
                (amount, view.wallet_id),
            )
            updated = db.one("SELECT * FROM payments WHERE id = ?", (payment_id,))
        return _fold_receive(updated, now)

    # --- lines of credit -------------------------------------------------------------

    def line_summaries(
        self,
        organization_id: str,
        *,
        network: str | None = None,
        environment_ids: Sequence[str] | None = None,
        include_disabled: bool = False,
    ) -> list[LineSummary]:
        now = self.now()
        with self._read() as db:
            rows = db.all(
                "SELECT * FROM lines_of_credit WHERE organization_id = ? ORDER BY id",
                (organization_id,),
            )
            summaries = [self._summary(db, row, now) for row in rows]
        result = []
        for s in summaries:
            if network is not None and network_response_name(s.network) != network_response_name(
                network
            ):
                continue
            if environment_ids is not None and s.environment_id not in environment_ids:
                continue
            if s.disabled_at is not None and not include_disabled:
                continue
            result.append(s)
        return result

    def line_summary(self, organization_id: str, line_id: str) -> LineSummary | None:
        now = self.now()
        with self._read() as db:
            row = db.one_or_none(
                "SELECT * FROM lines_of_credit WHERE id = ? AND organization_id = ?",
                (line_id, organization_id),
            )
            return self._summary(db, row, now) if row is not None else None

    def _summary(self, db: _Tx, row: sqlite3.Row, now: float) -> LineSummary:
        return LineSummary(
            id=row["id"],
            organization_id=row["organization_id"],
            environment_id=row["environment_id"],
            network=row["network"],
            limit=int(row["limit_units"]),
            allocated_limit=self._allocated(db, row["id"], now),
            currency=row["currency"],
            disabled_at=row["disabled_at"],
        )

    # --- inspection ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything in the world as plain data, pending changes included (no keys)."""
        now = self.now()
        with self._read() as db:
            orgs = [r["id"] for r in db.all("SELECT id FROM organizations ORDER BY id")]
            envs = [dict(r) for r in db.all("SELECT * FROM environments ORDER BY id")]
            keys = db.all("SELECT organization_id, access, environment_id FROM api_keys")
            line_rows = db.all("SELECT * FROM lines_of_credit ORDER BY id")
            lines = [self._summary(db, r, now) for r in line_rows]
            wallet_rows = db.all("SELECT * FROM wallets ORDER BY created_at, id")
            wallets = self._views(db, wallet_rows, now)
            payment_rows = db.all("SELECT * FROM payments ORDER BY created_at, id")
            receives = [_fold_receive(r, now) for r in payment_rows]
            node = db.one_or_none("SELECT value FROM meta WHERE key = 'node_key'")
            webhook_rows = db.all("SELECT * FROM webhooks ORDER BY created_at, id")
            webhooks = self._webhook_views(db, webhook_rows, now)
            secret_hashes = {r["id"]: r["secret_hash"] for r in webhook_rows}
            pending = {
                r["wallet_id"]: r["n"]
                for r in db.all(
                    "SELECT wallet_id, COUNT(*) AS n FROM events WHERE effective_at > ? "
                    "GROUP BY wallet_id",
                    (now,),
                )
            }
        return {
            "now": now,
            "organizations": orgs,
            "environments": envs,
            "api_keys": [dict(k) for k in keys],
            "lines_of_credit": [
                {
                    "id": s.id,
                    "organization_id": s.organization_id,
                    "environment_id": s.environment_id,
                    "network": s.network,
                    "limit": s.limit,
                    "allocated_limit": s.allocated_limit,
                    "currency": s.currency,
                    "disabled": s.disabled_at is not None,
                }
                for s in lines
            ],
            "wallets": [
                {
                    "id": w.id,
                    "organization_id": w.organization_id,
                    "environment_id": w.environment_id,
                    "line_of_credit_id": w.line_of_credit_id,
                    "name": w.name,
                    "limit": w.limit,
                    "network": w.network,
                    "metadata": w.metadata,
                    "balance_msats": w.balance_msats,
                    "visible": w.visible,
                    "active": w.active,
                    "deleted": w.deleted_at is not None,
                    "deletion_failed": w.deletion_failed_at is not None,
                    "pending_changes": pending.get(w.id, 0),
                }
                for w in wallets
            ],
            "webhooks": [
                {
                    "id": h.id,
                    "organization_id": h.organization_id,
                    "environment_id": h.environment_id,
                    "url": h.url,
                    "name": h.name,
                    "events": [{kind: event} for kind, event in h.events],
                    "status": h.status,
                    "visible": h.visible,
                    # A digest, never the secret: lets a test tell which secret is current.
                    "shared_secret_sha256": secret_hashes[h.id],
                }
                for h in webhooks
            ],
            "node_public_key": invoice.node_public_key(node["value"]) if node else None,
            "payments": [
                {
                    "id": p.id,
                    "organization_id": p.organization_id,
                    "environment_id": p.environment_id,
                    "wallet_id": p.wallet_id,
                    "direction": "receive",
                    "status": p.status,
                    "visible": p.visible,
                    "requested_msats": p.requested_msats,
                    "settled_msats": p.settled_msats,
                }
                for p in receives
            ],
        }


class _Tx:
    """Small helpers over the connection inside one transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.executemany(sql, rows)

    def executescript_safe(self, script: str) -> None:
        # executescript() would COMMIT the open transaction; run statement by statement.
        for statement in script.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row:
        row = self._db.execute(sql, tuple(args)).fetchone()
        if row is None:  # pragma: no cover - aggregate queries always return a row
            raise LookupError(sql)
        return row

    def one_or_none(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(sql, tuple(args)).fetchone()
        return row

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self._db.execute(sql, tuple(args)).fetchall())


def _has_environment(db: _Tx, organization_id: str, environment_id: str) -> bool:
    row = db.one_or_none(
        "SELECT id FROM environments WHERE id = ? AND organization_id = ?",
        (environment_id, organization_id),
    )
    return row is not None


# (table of changes, table of the resources, column naming the resource) of a kind.
_WALLET_CHANGES = ("events", "wallets", "wallet_id")
_WEBHOOK_CHANGES = ("webhook_events", "webhooks", "webhook_id")


def _add_change(
    db: _Tx,
    tables: tuple[str, str, str],
    owner_id: str,
    kind: str,
    payload: Mapping[str, Any],
    accepted_at: float,
    effective_at: float,
) -> float:
    """Record a change of a wallet or a webhook (`tables`: `_WALLET_CHANGES` or
    `_WEBHOOK_CHANGES`); returns when it takes effect."""
    events, owners, owner_column = tables
    # The changes of one resource take effect in the order they were accepted, never
    # before the resource itself is visible.
    row = db.one(
        f"SELECT MAX(e) AS floor FROM (SELECT MAX(effective_at) AS e FROM {events} "
        f"WHERE {owner_column} = ? UNION ALL SELECT visible_at AS e FROM {owners} WHERE id = ?)",
        (owner_id, owner_id),
    )
    floor = row["floor"]
    effective = max(effective_at, floor) if floor is not None else effective_at
    db.execute(
        f"INSERT INTO {events} ({owner_column}, kind, payload, accepted_at, effective_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (owner_id, kind, json.dumps(dict(payload)), accepted_at, effective),
    )
    return float(effective)


def wallet_not_found(wallet_id: str) -> RuleError:
    """404 for a wallet that is not there (or not visible, or not active for a write)."""
    return RuleError(
        404,
        "instance_not_found",
        "no wallet with this id in the organization",
        {"wallet_id": wallet_id},
    )


def webhook_not_found(webhook_id: str) -> RuleError:
    """404 for a webhook that is not there in the environment."""
    return RuleError(
        404,
        "webhook_not_found",
        "no webhook with this id in the environment",
        {"webhook_id": webhook_id},
    )


def _fold_webhook(row: sqlite3.Row, events: Sequence[sqlite3.Row], now: float) -> WebhookView:
    """The webhook at `now`: its row plus every change due by then, in acceptance order."""
    created_at = float(row["created_at"])
    url, name = row["url"], row["name"]
    subscribed = tuple((kind, event) for kind, event in json.loads(row["events"]))
    status = "active"
    updated_at = created_at
    stopped_at: float | None = None
    deleted_at: float | None = None
    delete_pending = False
    for ev in events:
        at = float(ev["effective_at"])
        if at > now:
            delete_pending = delete_pending or ev["kind"] == "delete"
            continue
        payload = json.loads(ev["payload"])
        if ev["kind"] == "update":
            url = payload.get("url") or url
            name = payload.get("name") or name
            subscribed = tuple((kind, event) for kind, event in payload["events"])
        elif ev["kind"] == "stop" and status == "active":
            status, stopped_at = "stopped", at
        elif ev["kind"] == "start" and status == "stopped":
            status, stopped_at = "active", None
        elif ev["kind"] == "delete":
            status, deleted_at = "deleted", at
        updated_at = at
    return WebhookView(
        id=row["id"],
        organization_id=row["organization_id"],
        environment_id=row["environment_id"],
        url=url,
        name=name,
        events=subscribed,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        stopped_at=stopped_at,
        deleted_at=deleted_at,
        visible=now >= float(row["visible_at"]),
        delete_pending=delete_pending and status != "deleted",
    )


def _fold_receive(row: sqlite3.Row, now: float) -> ReceiveView:
    """A receive at `now`: generating -> receiving -> completed | expired, or failed."""
    visible_at = float(row["visible_at"])
    invoice_at = float(row["invoice_at"])
    expires_at = invoice_at + int(row["expiration"])
    settled_at = row["settled_at"]
    error: tuple[str, str, str] | None = None
    payment_request = None
    preimage = None
    if now < invoice_at:
        status, updated_at = "generating", visible_at
    elif row["outcome"] == "fee_refused":
        status, updated_at = "failed", invoice_at
        error = (
            "receive_failed",
            "invalid_payment_amount",
            "an any-amount receive needs a receive processing fee rate of zero",
        )
    elif row["outcome"] == "failed":
        status, updated_at = "failed", invoice_at
        error = ("receive_failed", "receive_failed", "the invoice could not be generated")
    elif settled_at is not None and float(settled_at) <= now:
        status, updated_at = "completed", float(settled_at)
        payment_request, preimage = row["payment_request"], row["preimage"]
    elif now >= expires_at:
        status, updated_at = "expired", expires_at
        payment_request = row["payment_request"]
    else:
        status, updated_at = "receiving", invoice_at
        payment_request = row["payment_request"]
    metadata_text = row["metadata"]
    return ReceiveView(
        id=row["id"],
        organization_id=row["organization_id"],
        environment_id=row["environment_id"],
        wallet_id=row["wallet_id"],
        line_of_credit_id=row["line_of_credit_id"],
        requested_msats=_int_or_none(row["requested_msats"]),
        fee_basis_points=row["fee_basis_points"],
        fee_msats=_int_or_none(row["fee_msats"]),
        description=row["description"],
        expiration=int(row["expiration"]),
        metadata=json.loads(metadata_text) if metadata_text else None,
        status=status,
        error=error,
        payment_request=payment_request,
        payment_hash=row["payment_hash"] if payment_request else None,
        preimage=preimage,
        created_at=float(row["created_at"]),
        updated_at=updated_at,
        visible=now >= visible_at,
        settled_msats=_int_or_none(row["settled_msats"]) if status == "completed" else None,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _fold(row: sqlite3.Row, events: Sequence[sqlite3.Row], now: float) -> WalletView:
    """The wallet at `now`: its row plus every event due by then, in acceptance order."""
    wallet_id = row["id"]
    created_at = float(row["created_at"])
    name = row["name"]
    updated_at = created_at
    active = True
    deleted_at: float | None = None
    deletion_failed_at: float | None = None
    delete_pending = False
    policies: dict[str, PolicyRecord] = {}
    policies_at: float | None = None
    for ev in events:
        payload = json.loads(ev["payload"])
        at = float(ev["effective_at"])
        if at > now:
            if ev["kind"] == "delete" and not payload.get("fails"):
                delete_pending = True
            continue
        if ev["kind"] == "rename":
            name = payload["name"]
            updated_at = at
        elif ev["kind"] == "delete":
            if payload.get("fails"):
                deletion_failed_at = at
            else:
                active = False
                deleted_at = at
            updated_at = at
        elif ev["kind"] == "policies":
            _apply_policies(wallet_id, ev["seq"], policies, payload, at)
            policies_at = at
    metadata_text = row["metadata"]
    policies_view = None
    if policies_at is not None:
        policies_view = WalletPoliciesView(
            wallet_id=wallet_id,
            organization_id=row["organization_id"],
            policies=tuple(policies[t] for t in POLICY_ORDER if t in policies),
            updated_at=policies_at,
        )
    return WalletView(
        id=wallet_id,
        organization_id=row["organization_id"],
        environment_id=row["environment_id"],
        line_of_credit_id=row["line_of_credit_id"],
        name=name,
        limit=int(row["limit_units"]),
        network=row["network"],
        metadata=json.loads(metadata_text) if metadata_text is not None else None,
        balance_msats=int(row["balance_msats"]),
        created_at=created_at,
        updated_at=updated_at,
        visible=now >= float(row["visible_at"]),
        active=active,
        deleted_at=deleted_at,
        deletion_failed_at=deletion_failed_at,
        delete_pending=delete_pending and active,
        holds_allocation=active,
        policies=policies_view,
    )


def _apply_policies(
    wallet_id: str,
    seq: int,
    policies: dict[str, PolicyRecord],
    changes: Mapping[str, Any],
    at: float,
) -> None:
    for field_name, value in changes.items():
        policy_type = POLICY_TYPES[field_name]
        if value is None or (policy_type == "ofac_compliant" and value is False):
            policies.pop(policy_type, None)
            continue
        current = policies.get(policy_type)
        if current is not None:
            if current.value != value:
                policies[policy_type] = PolicyRecord(
                    policy_type, current.id, value, current.created_at, at
                )
            continue
        policy_id = str(uuid.uuid5(POLICY_NAMESPACE, f"{wallet_id}/{policy_type}/{seq}"))
        policies[policy_type] = PolicyRecord(policy_type, policy_id, value, at, at)
