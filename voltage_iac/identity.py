"""Identity and ownership without a state file (Voltage backend rules, pure functions).

Imports only the model. A wallet's id is a UUIDv5 over (organization, environment,
stack, key, generation): the same config always names the same id, so a repeated or
crashed apply can only ever address the wallet it meant. A replacement bumps the
generation, because the API never lets a deleted wallet's id be used again.

Ownership is written into the wallet's metadata at creation under reserved keys; a
wallet whose labels name this stack is "owned", anything else is "unmanaged" and is
never changed or deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from voltage_iac.model import Ownership

# Fixed namespace for voltage-iac wallet ids. Changing it would re-key every wallet.
WALLET_NAMESPACE = uuid.UUID("8f4f2a3e-6c1b-5d0e-9a57-3b2f0c9d1e64")

LABEL_PREFIX = "voltage-iac."
LABEL_STACK = "voltage-iac.stack"
LABEL_KEY = "voltage-iac.key"
LABEL_GENERATION = "voltage-iac.generation"
#: Written at creation on a `protect: true` wallet (metadata is fixed then): the wallet
#: stays protected after its entry leaves the configuration.
LABEL_PROTECT = "voltage-iac.protect"
RESERVED_LABELS = (LABEL_STACK, LABEL_KEY, LABEL_GENERATION, LABEL_PROTECT)


def wallet_id(
    organization_id: str, environment_id: str, stack: str, key: str, generation: int = 0
) -> str:
    """The deterministic id of generation `generation` of wallet `key` in `stack`."""
    return resource_id(WALLET_NAMESPACE, organization_id, environment_id, stack, key, generation)


def resource_id(
    namespace: uuid.UUID,
    organization_id: str,
    environment_id: str,
    stack: str,
    key: str,
    generation: int = 0,
) -> str:
    """A UUIDv5 in a kind's `namespace` over organization, environment, stack, key and
    generation (the ids are canonicalised first, so their spelling does not matter)."""
    name = "/".join(
        [
            str(uuid.UUID(organization_id)),
            str(uuid.UUID(environment_id)),
            stack,
            key,
            str(generation),
        ]
    )
    return str(uuid.uuid5(namespace, name))


def is_reserved_label(metadata_key: str) -> bool:
    """True for metadata keys the tool writes itself (case-insensitive prefix)."""
    return metadata_key.strip().lower().startswith(LABEL_PREFIX)


def ownership_labels(stack: str, key: str, generation: int) -> dict[str, str]:
    return {LABEL_STACK: stack, LABEL_KEY: key, LABEL_GENERATION: str(generation)}


def with_labels(
    user_metadata: Mapping[str, str],
    stack: str,
    key: str,
    generation: int,
    *,
    protect: bool = False,
) -> dict[str, str]:
    """The metadata to send at creation: the user's plus the ownership labels."""
    merged = dict(user_metadata)
    merged.update(ownership_labels(stack, key, generation))
    if protect:
        merged[LABEL_PROTECT] = "true"
    return merged


def is_protected(metadata: Mapping[str, str] | None) -> bool:
    """True when the wallet was created protected (its protection label says so)."""
    return any(
        k.strip().lower() == LABEL_PROTECT and v.strip().lower() == "true"
        for k, v in (metadata or {}).items()
    )


def split_labels(metadata: Mapping[str, str] | None) -> tuple[dict[str, str], Ownership | None]:
    """Split live metadata into (user metadata, ownership or None)."""
    user: dict[str, str] = {}
    labels: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if is_reserved_label(k):
            labels[k] = v
        else:
            user[k] = v
    stack = labels.get(LABEL_STACK)
    key = labels.get(LABEL_KEY)
    if not stack or not key:
        return user, None
    try:
        generation = int(labels.get(LABEL_GENERATION, "0"))
    except ValueError:
        generation = 0
    return user, Ownership(stack=stack, key=key, generation=max(0, generation))
