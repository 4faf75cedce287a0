"""Network names as the Voltage API contract spells them, for the emulator alone.

Requests take `mainnet | testnet3 | mutinynet`; responses say `mainnet | testnet |
signet | mutinynet | none`. The emulator keeps its own copy of these spellings (it
shares only the contract with the rest of the tool)."""

from __future__ import annotations

REQUEST_NETWORKS = ("mainnet", "testnet3", "mutinynet")


def network_response_name(network: str) -> str:
    """The response spelling of a request network name (`testnet3` -> `testnet`)."""
    return "testnet" if network == "testnet3" else network
