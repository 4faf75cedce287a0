#!/bin/sh
# voltage-iac in any CI system: review a saved plan, apply exactly that plan, check drift.
#
#   voltage-iac-ci.sh plan  CONFIG    # on a change request: write the plan for review
#   voltage-iac-ci.sh apply [CONFIG]  # after approval: apply the reviewed plan file
#   voltage-iac-ci.sh drift CONFIG    # on a schedule: report drift, change nothing
#
# CONFIG is a configuration file or a directory of them. The plan file records the
# desired state it was planned from, so apply needs no CONFIG; given one, it must also
# be the configuration the plan was made from (e.g. the merged commit is the reviewed
# one). POSIX sh; needs voltage-iac.
#
# Environment:
#   VOLTAGE_API_KEY          the API key (a secret of the CI system; never printed)
#   VOLTAGE_API_URL          optional: overrides the configuration's provider.api_url
#   VOLTAGE_IAC              the command to run (default: voltage-iac)
#   VOLTAGE_IAC_OUT          directory for the files below (default: voltage-iac-out)
#   VOLTAGE_IAC_APPLY_FLAGS  extra apply flags a reviewer approved, e.g. --allow-delete
#
# Files written to $VOLTAGE_IAC_OUT:
#   plan:  plan.json (the plan file to keep for apply; owner-only, no secrets),
#          plan.md (the pull-request comment), plan.txt (the plan file shown as text)
#   drift: drift.md (Markdown report), drift.xml (JUnit: one test case per wallet)
#
# Exit codes:
#   plan:  0 plan written (with or without changes; the last line says which)
#   apply: 0 applied; 5 refused: the live wallets (or, given CONFIG, the configuration)
#          changed since the plan was made, or the plan file was edited (plan again and
#          review again), or a safety rule needs a flag
#   drift: 0 in sync; 2 drift found (the reports say where)
#   any:   1 error (API, network), 3 invalid configuration or usage,
#          4 authentication refused, 130 interrupted

set -u

usage() {
    echo "usage: voltage-iac-ci.sh plan|drift CONFIG, or voltage-iac-ci.sh apply [CONFIG]" >&2
    exit 3
}

if [ "$#" -eq 1 ] && [ "$1" = apply ]; then
    config=
elif [ "$#" -eq 2 ]; then
    config=$2
else
    usage
fi
step=$1
out=${VOLTAGE_IAC_OUT:-voltage-iac-out}
iac=${VOLTAGE_IAC:-voltage-iac}

mkdir -p "$out" || exit 1

case "$step" in
plan)
    # The JSON plan (--out) is written owner-only; the Markdown and text go alongside.
    $iac plan "$config" --format markdown --out "$out/plan.json" --detailed-exitcode \
        >"$out/plan.md"
    code=$?
    case "$code" in
    0 | 2) ;;
    *)
        echo "voltage-iac-ci: plan failed (exit $code)" >&2
        exit "$code"
        ;;
    esac
    # The text plan for the CI log, from the saved file itself (no second read of the
    # API, so it is exactly the plan that will be applied; it ends with its checksum).
    $iac show "$out/plan.json" >"$out/plan.txt" || exit $?
    cat "$out/plan.txt"
    if [ "$code" -eq 2 ]; then
        echo "voltage-iac-ci: plan has changes; review $out/plan.md, keep $out/plan.json"
    else
        echo "voltage-iac-ci: no changes"
    fi
    exit 0
    ;;
apply)
    if [ ! -f "$out/plan.json" ]; then
        echo "voltage-iac-ci: $out/plan.json is missing; run the plan step first" >&2
        exit 3
    fi
    # Word splitting of the approved flags is intended.
    if [ -n "$config" ]; then
        # shellcheck disable=SC2086
        $iac apply "$config" --plan "$out/plan.json" --auto-approve ${VOLTAGE_IAC_APPLY_FLAGS:-}
    else
        # shellcheck disable=SC2086
        $iac apply "$out/plan.json" --auto-approve ${VOLTAGE_IAC_APPLY_FLAGS:-}
    fi
    code=$?
    if [ "$code" -eq 5 ]; then
        echo "voltage-iac-ci: apply refused: make a new plan and have it reviewed" >&2
    fi
    exit "$code"
    ;;
drift)
    $iac drift "$config" --format markdown --output "$out/drift.md"
    code=$?
    case "$code" in
    0 | 2) ;;
    *)
        echo "voltage-iac-ci: drift check failed (exit $code)" >&2
        exit "$code"
        ;;
    esac
    $iac drift "$config" --format junit --output "$out/drift.xml"
    junit=$?
    case "$junit" in
    0 | 2) ;;
    *)
        echo "voltage-iac-ci: drift check failed (exit $junit)" >&2
        exit "$junit"
        ;;
    esac
    cat "$out/drift.md"
    if [ "$code" -eq 2 ] || [ "$junit" -eq 2 ]; then
        echo "voltage-iac-ci: drift found; see $out/drift.md and $out/drift.xml" >&2
        exit 2
    fi
    echo "voltage-iac-ci: in sync"
    exit 0
    ;;
*)
    usage
    ;;
esac
