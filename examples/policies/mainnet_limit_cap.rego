# No mainnet wallet may be given a spending limit above 0.1 BTC.
#
# Limits are integers in msats in the plan JSON: 0.1 BTC = 10,000,000 sat = 10^10 msat.
# A larger mainnet limit needs a reviewed override:
#   voltage-iac plan wallets.yaml --override-policy mainnet-limit-cap --out plan.json
package main

import rego.v1

cap_msats := 10000000000

deny contains verdict if {
	some change in input.changes
	change.mainnet
	change.action in {"create", "update", "replace"}
	some field in change.changes
	field.field == "limit"
	field.after > cap_msats
	verdict := {
		"id": "mainnet-limit-cap",
		"kind": change.kind,
		"key": change.key,
		"msg": sprintf(
			"mainnet limit %v msat is above the cap of %v msat (0.1 BTC)",
			[field.after, cap_msats],
		),
	}
}
