# Deletes and replacements only inside the change window (by default Tuesday to
# Thursday, 09:00 to 16:00 UTC); `data.delete_window` can set another one.
#
# The clock is the machine's (`time.now_ns()`), unless `data.clock.now` pins it
# (RFC 3339, e.g. "2026-12-01T10:30:00Z"): tests and dry runs pin it in a data file.
# A reviewed plan stays valid only while its verdicts do: a plan made inside the window
# and applied after it closed is refused as stale.
package main

import rego.v1

default_window := {"days": ["Tuesday", "Wednesday", "Thursday"], "from_hour": 9, "to_hour": 16}

window := data.delete_window if {
	data.delete_window
} else := default_window

# RFC 3339 with a "Z" is written as "+00:00" for engines that read only offsets.
utc(text) := concat("", [trim_suffix(text, "Z"), "+00:00"]) if {
	endswith(text, "Z")
} else := text

now_ns := time.parse_rfc3339_ns(utc(data.clock.now)) if {
	data.clock.now
} else := time.now_ns()

in_window if {
	time.weekday(now_ns) in window.days
	hour := time.clock(now_ns)[0]
	hour >= window.from_hour
	hour < window.to_hour
}

deny contains verdict if {
	some change in input.changes
	change.action in {"delete", "replace"}
	not in_window
	verdict := {
		"kind": change.kind,
		"key": change.key,
		"msg": concat("", [
			change.action, " outside the change window (", concat("/", window.days), ", ",
			format_int(window.from_hour, 10), ":00-", format_int(window.to_hour, 10), ":00 UTC)",
		]),
	}
}
