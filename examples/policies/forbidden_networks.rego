# Each environment keeps to its networks: nothing on mainnet outside production, and
# production only on mainnet. Environments are the configuration's names.
package main

import rego.v1

# environment name -> networks no change there may use
forbidden_networks := {
	"sandbox": {"mainnet"},
	"staging": {"mainnet"},
	"production": {"mutinynet", "testnet3", "testnet", "signet"},
}

deny contains verdict if {
	some change in input.changes
	change.action in {"create", "replace"}
	some field in change.changes
	field.field == "network"
	field.after in forbidden_networks[change.environment]
	verdict := {
		"kind": change.kind,
		"key": change.key,
		"msg": sprintf("network %s is not allowed in environment %s", [field.after, change.environment]),
	}
}
