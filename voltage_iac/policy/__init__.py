"""Policy as code: Rego rules (conftest's layout) evaluated on every plan and drift report.

The flow: `load_policies` reads the `.rego` files (`policies:` in the configuration and
`--policy` on the command line) and the `data` files, and checks what can be checked
without evaluating (every module parses as Rego, the namespace's package exists, no
reference to a name bound nowhere); `evaluate` runs the rules on a document (the plan
JSON, or the drift report JSON) as `input` in a child process with a time limit, and
turns the `deny`, `violation` and `warn` rules' messages into `Verdict`s; `judge`
attaches them to a Plan. Every problem of a policy file is a `ConfigError` (exit 3)
naming file:line:column.

The engine is rego-cpp through its Python binding regopy: a library with wheels on PyPI
(no opa/conftest binary to fetch, no compiler), maintained by Microsoft, Rego v1. It has
no time limit of its own, hence the child process; docs/policy.md lists its differences
from OPA and what this package does about them.
Kind-neutral: a verdict names a resource by the `kind`/`key` its rule gives.
"""

from voltage_iac.policy.core import (
    PolicyRun,
    evaluate,
    including,
    judge,
    judge_document,
    load_policies,
    policy_run,
    render_verdicts,
)

__all__ = [
    "PolicyRun",
    "evaluate",
    "including",
    "judge",
    "judge_document",
    "load_policies",
    "policy_run",
    "render_verdicts",
]
