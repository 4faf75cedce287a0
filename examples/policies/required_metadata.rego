# Every new wallet says who pays for it (`metadata.cost-centre`, a deny) and which team
# runs it (`metadata.team`, a warning); an update may not remove either.
package main

import rego.v1

required_deny := {"cost-centre"}

required_warn := {"team"}

# The metadata keys a change sets (its field changes are `metadata.<key>`).
sets(change, name) if {
	some field in change.changes
	field.field == concat(".", ["metadata", name])
	field.after != null
}

removes(change, name) if {
	some field in change.changes
	field.field == concat(".", ["metadata", name])
	field.before != null
	field.after == null
}

deny contains verdict if {
	some change in input.changes
	change.kind == "wallet"
	change.action in {"create", "replace"}
	some name in required_deny
	not sets(change, name)
	verdict := {
		"kind": change.kind,
		"key": change.key,
		"msg": sprintf("metadata.%s is required (who pays for this wallet)", [name]),
	}
}

deny contains verdict if {
	some change in input.changes
	change.action == "update"
	some name in required_deny
	removes(change, name)
	verdict := {
		"kind": change.kind,
		"key": change.key,
		"msg": sprintf("metadata.%s may not be removed", [name]),
	}
}

warn contains verdict if {
	some change in input.changes
	change.kind == "wallet"
	change.action in {"create", "replace"}
	some name in required_warn
	not sets(change, name)
	verdict := {
		"kind": change.kind,
		"key": change.key,
		"msg": sprintf("metadata.%s is missing (which team runs this wallet)", [name]),
	}
}
