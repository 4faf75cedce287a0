"""An in-memory provider for engine tests (the engine needs no HTTP)."""

from __future__ import annotations

import dataclasses
import threading
import time

from voltage_iac import identity
from voltage_iac.errors import ApiError
from voltage_iac.model import Capabilities, DesiredState, LiveState, LiveWallet, Ownership, Policies
from voltage_iac.providers.base import CreateRequest


class FakeProvider:
    capabilities = Capabilities()

    def __init__(self, lines=None, *, delay: float = 0.0):
        self.wallets: dict[str, LiveWallet] = {}
        self.lines = dict(lines or {})
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], str] = {}  # (operation, wallet id) -> message
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
            wallets=tuple(self.wallets.values()),
            lines_of_credit=self.lines,
            environments_read=tuple(desired.environments),
        )

    def _op(self, name: str, wallet_id: str) -> None:
        with self._lock:
            self.calls.append((name, wallet_id))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.delay:
                time.sleep(self.delay)
            if (name, wallet_id) in self.fail:
                raise ApiError(self.fail[(name, wallet_id)])
        finally:
            with self._lock:
                self.running -= 1

    def create_wallet(self, request: CreateRequest) -> str:
        assert request.wallet_id is not None
        self._op("create", request.wallet_id)
        w = request.wallet
        self.wallets[request.wallet_id] = LiveWallet(
            id=request.wallet_id,
            name=w.name,
            environment_id=w.environment_id,
            network="testnet" if w.network == "testnet3" else w.network,
            line_of_credit_id=w.line_of_credit_id,
            limit=w.limit,
            metadata=w.metadata,
            owner=Ownership(request.stack, w.key, request.generation),
            policies=Policies() if w.policies is not None else None,
        )
        assert (
            identity.wallet_id(
                request.organization_id,
                w.environment_id or "",
                request.stack,
                w.key,
                request.generation,
            )
            == request.wallet_id
        )
        return request.wallet_id

    def rename_wallet(self, wallet_id: str, name: str) -> None:
        self._op("rename", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], name=name)

    def update_policies(self, wallet_id: str, before, after) -> None:
        self._op("policies", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], policies=after)

    def delete_wallet(self, wallet_id: str) -> None:
        self._op("delete", wallet_id)
        self.wallets[wallet_id] = dataclasses.replace(self.wallets[wallet_id], active=False)
