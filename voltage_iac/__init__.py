"""voltage-iac: infrastructure as code for Voltage Payments wallets.

Data flows one way: YAML (config) -> DesiredState; provider.read -> LiveState;
diff (pure) -> Plan -> render / safety checks -> apply (provider writes).
The command line (cli) sits on top and imports everything; nothing imports cli.
"""

__version__ = "0.1.0"
