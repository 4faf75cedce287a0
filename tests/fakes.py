"""An in-memory backend for engine tests (the engine needs no HTTP)."""

from __future__ import annotations

import dataclasses
import threading
import time

from voltage_iac import identity
from voltage_iac.errors import ApiError
from voltage_iac.kinds.base import Operation
from voltage_iac.kinds.wallet import LiveWallet, Policies
from voltage_iac.model import DesiredState, LiveState, Ownership, frozen_map
from voltage_iac.providers import registry


class FakeProvider:
    spec = registry.VOLTAGE

    def __init__(self, lines=None, *, delay: float = 0.0):
        self.wallets: dict[str, LiveWallet] = {}
        self.lines = dict(lines or {})
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], str | ApiError] = {}  # (operation, id) -> error
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "fake"

    def close(self) -> None:
        pass

    def read(self, desired: DesiredState) -> LiveState:
        return LiveState(
            resources=frozen_map({"wallet": tuple(self.wallets.values())}),
            lines_of_credit=self.lines,
            environments_read=tuple(desired.environments),
        )

    def execute(self, op: Operation) -> str | None:
        assert op.kind == "wallet"
        if op.verb == "create":
            return self.create_wallet(op)
        assert op.id is not None
        if op.verb == "update":
            self.rename_wallet(op.id, op.desired.name)
        elif op.verb == "set_policies":
            self.update_policies(op.id, op.desired.policies)
        elif op.verb == "delete":
            self.delete_wallet(op.id)
        else:
            raise AssertionError(op.verb)
        return op.id

    def _op(self, name: str, wallet_id: str) -> None:
        with self._lock:
            self.calls.append((name, wallet_id))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.delay:
                time.sleep(self.delay)
            failure = self.fail.get((name, wallet_id))
            if isinstance(failure, ApiError):
                raise failure
            if failure is not None:
                raise ApiError(failure)
        finally:
            with self._lock:
                self.running -= 1

    def create_wallet(self, op: Operation) -> str:
        assert op.id is not None and op.generation is not None
        self._op("create", op.id)
        w = op.desired
        self.wallets[op.id] = LiveWallet(
            id=op.id,
            name=w.name,
            environment_id=w.environment_id,
            network="testnet" if w.network == "testnet3" else w.network,
            line_of_credit_id=w.line_of_credit_id,
            limit=w.limit,
            metadata=w.metadata,
            owner=Ownership(op.stack, w.key, op.generation),
            policies=Policies() if w.policies is not None else None,
            protected=w.protect,
        )
        assert (
            identity.wallet_id(
                op.organization_id, w.environment_id or "", op.stack, w.key, op.generation
            )
            == op.id
        )
        return op.id

    def rename_wallet(self, wallet_id: str, name: str) -> None:
        self._op("rename", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], name=name)

    def update_policies(self, wallet_id: str, after) -> None:
        self._op("policies", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], policies=after)

    def delete_wallet(self, wallet_id: str) -> None:
        self._op("delete", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], active=False)
