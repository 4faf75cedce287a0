"""Real BOLT11 invoices for the emulator's receive payments.

The emulator is no Lightning node, but the invoices it hands out are genuine: encoded
with the `bolt11` library (the one LNbits uses), for the wallet's network, for the
payer-facing amount, with a fresh payment hash and payment secret, and signed with the
emulator's own throwaway node key (kept in its database; it guards nothing). Any BOLT11
decoder reads them, and the signature verifies against `node_public_key`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import bolt11
from bolt11.models.tags import TagChar, Tags
from coincurve import PrivateKey

# Human-readable prefixes by request network. Mutinynet is a signet: `lntbs`, as the
# contract's own examples spell its invoices.
CURRENCY_BY_NETWORK = {"mainnet": "bc", "testnet3": "tb", "mutinynet": "tbs"}
MAX_DESCRIPTION_BYTES = 639  # what fits a BOLT11 `d` field
MIN_FINAL_CLTV_EXPIRY = 80


@dataclass(frozen=True)
class Invoice:
    payment_request: str
    payment_hash: str  # hex
    preimage: str  # hex: the emulator settles its own invoices


def new_node_key() -> str:
    """A throwaway secp256k1 private key, hex."""
    return str(PrivateKey().to_hex())


def node_public_key(private_key_hex: str) -> str:
    """The compressed public key (hex) a decoder recovers from the invoices' signature."""
    return bytes(PrivateKey.from_hex(private_key_hex).public_key.format(compressed=True)).hex()


def issue(
    *,
    network: str,
    amount_msats: int | None,
    description: str,
    expiry_seconds: int,
    created_at: int,
    private_key_hex: str,
) -> Invoice:
    """A signed BOLT11 invoice; `amount_msats=None` gives an any-amount invoice."""
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry_seconds)
    tags.add(TagChar.min_final_cltv_expiry, MIN_FINAL_CLTV_EXPIRY)
    invoice = bolt11.Bolt11(
        currency=CURRENCY_BY_NETWORK[network],
        date=created_at,
        tags=tags,
        amount_msat=bolt11.MilliSatoshi(amount_msats) if amount_msats else None,
    )
    encoded = bolt11.encode(invoice, private_key_hex)
    return Invoice(payment_request=encoded, payment_hash=payment_hash, preimage=preimage.hex())
