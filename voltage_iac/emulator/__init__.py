"""The emulator of the Voltage Payments API: the quick-start backend and the test double.

Sits where the real API would be: the tool's HTTP client talks to it exactly as to
https://voltageapi.com/v1. The command line starts an `EmbeddedEmulator` for the quick
start (or `voltage-iac emulator serve` runs one in the foreground); tests start one per
test. Modules: `store` (SQLite world and business rules), `app` (the HTTP API and admin
endpoints), `faults` (deterministic fault injection), `seed` (seed format, demo world),
`server` (serving on loopback) and `command` (the `emulator` click group).
"""

from voltage_iac.emulator.faults import Decision, FaultRule, Faults
from voltage_iac.emulator.seed import DEMO_SEED, SeedError, demo_seed, load_seed_file
from voltage_iac.emulator.server import EmbeddedEmulator, serve
from voltage_iac.emulator.store import KeyGrant, RuleError, Store

__all__ = [
    "DEMO_SEED",
    "Decision",
    "EmbeddedEmulator",
    "FaultRule",
    "Faults",
    "KeyGrant",
    "RuleError",
    "SeedError",
    "Store",
    "demo_seed",
    "load_seed_file",
    "serve",
]
