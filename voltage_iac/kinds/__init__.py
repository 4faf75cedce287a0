"""Resource kinds as registered units (wallets first, then webhooks).

Each kind module defines its types and rules and registers one `ResourceKind`; the
generic diff, engine, renderers and drift iterate over `registered()` and look kinds up
by name, so adding a kind is a module here (plus its config checker and its backend
operations), never an edit of the generic code.
"""

from __future__ import annotations

from voltage_iac.kinds.base import DiffContext, Operation, ResourceKind

_KINDS: dict[str, ResourceKind] = {}


def register(kind: ResourceKind) -> ResourceKind:
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"resource kind {kind.name!r} is unnamed or registered twice")
    _KINDS[kind.name] = kind
    return kind


def registered() -> tuple[ResourceKind, ...]:
    """Every kind, in a stable order (registration order)."""
    return tuple(_KINDS.values())


def get(name: str) -> ResourceKind:
    return _KINDS[name]


def by_section(section: str) -> ResourceKind | None:
    return next((k for k in _KINDS.values() if k.section == section), None)


def _register_builtin() -> None:
    from voltage_iac.kinds.wallet import WALLET
    from voltage_iac.kinds.webhook import WEBHOOK

    register(WALLET)
    register(WEBHOOK)


_register_builtin()

__all__ = [
    "DiffContext",
    "Operation",
    "ResourceKind",
    "by_section",
    "get",
    "register",
    "registered",
]
