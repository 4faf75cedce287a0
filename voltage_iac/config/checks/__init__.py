"""Step 4 of loading: the meaning checks, one module per section kind.

`registry.py` holds the registry (section name -> checker). Importing this package
registers every section; the order of the imports is the order of the sections in
messages and in the digest. `build.py` runs them.
"""

from voltage_iac.config.checks import references, wallets, webhooks
from voltage_iac.config.checks.registry import Context, Section, register, sections

__all__ = [
    "Context",
    "Section",
    "references",
    "register",
    "sections",
    "wallets",
    "webhooks",
]
