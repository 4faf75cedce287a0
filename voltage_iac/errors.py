"""Errors and exit codes: the one vocabulary every module raises and the CLI turns into output.

Imports nothing of the package. Every exception a user can meet derives from
`VoltageIacError`, which carries a user-facing message and the process exit code.
Lower-level exceptions (httpx, yaml, jsonschema) are translated into these at the edge
that meets them (client, config); the CLI prints them in one place.
Messages never contain secrets: callers build them from non-secret parts only.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INVALID = 3
EXIT_AUTH = 4
EXIT_SAFETY = 5
EXIT_INTERRUPTED = 130


class VoltageIacError(Exception):
    """Root of every error meant for a user: a message and an exit code."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(VoltageIacError):
    """The command line was used wrongly (bad flag combination, missing file...)."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, located and with a fix."""

    file: str
    line: int | None
    column: int | None
    message: str
    hint: str | None = None
    path: str = ""  # dotted path inside the document, e.g. "wallets.payouts-eu.limit"

    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        if self.path:
            text = f"{self.location()}: {self.path}: {self.message}"
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text


class ConfigError(VoltageIacError):
    """The configuration is invalid: carries every issue found, not just the first."""

    exit_code = EXIT_INVALID

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        head = f"invalid configuration: {count} problem{'s' if count != 1 else ''}"
        body = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{head}\n{body}")


class ApiError(VoltageIacError):
    """The API answered with an error, or could not be reached or understood."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        context: dict[str, object] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.request_id = request_id
        self.context = dict(context or {})


class AuthError(ApiError):
    """401 or 403: the key is wrong, expired, or lacks the access needed."""

    exit_code = EXIT_AUTH


class NotFoundError(ApiError):
    """404 for a single object."""


class InvalidRequestError(ApiError):
    """400/413/415/422: the API refused the request as sent (business rule or shape)."""


class RateLimitedError(ApiError):
    """429 that did not clear within the retry budget."""


class ServerError(ApiError):
    """5xx that did not clear within the retry budget."""


class TransportError(ApiError):
    """The request could not be completed: time-out, refused or dropped connection."""


class MalformedResponseError(ApiError):
    """The API answered something that is not what the contract describes."""


class WriteOutcomeUnknown(ApiError):
    """A write was sent but its outcome is unknown (time-out, dropped connection, 5xx).

    The server may or may not have done it. Callers must read before sending again.
    """


class SafetyError(VoltageIacError):
    """The plan contains changes a safety rule refuses without an explicit flag."""

    exit_code = EXIT_SAFETY

    def __init__(self, violations: list[SafetyViolation]) -> None:
        self.violations = list(violations)
        lines = [f"  - {v}" for v in self.violations]
        super().__init__("refused by safety rules:\n" + "\n".join(lines))


@dataclass(frozen=True)
class SafetyViolation:
    """One change refused: what is unsafe and which flag (if any) allows it."""

    key: str
    what: str
    flag: str | None = None

    def __str__(self) -> str:
        if self.flag:
            return f"{self.key}: {self.what} (pass {self.flag} to allow)"
        return f"{self.key}: {self.what} (no flag allows this)"


class StalePlanError(VoltageIacError):
    """A saved plan no longer matches the live state or the configuration."""

    exit_code = EXIT_SAFETY

    def __init__(self, message: str, differences: list[str] | None = None) -> None:
        self.differences = list(differences or [])
        body = "".join(f"\n  - {d}" for d in self.differences)
        super().__init__(message + body)


@dataclass
class ApplyFailure:
    key: str
    action: str
    message: str


class ApplyError(VoltageIacError):
    """Some operations of an apply failed; the others are reported as done."""

    exit_code = EXIT_ERROR

    def __init__(self, failures: list[ApplyFailure], *, interrupted: bool = False) -> None:
        self.failures = failures
        self.interrupted = interrupted
        if interrupted:
            self.exit_code = EXIT_INTERRUPTED
        lines = "\n".join(f"  - {f.key} ({f.action}): {f.message}" for f in failures)
        head = "apply interrupted" if interrupted else f"{len(failures)} operation(s) failed"
        super().__init__(f"{head}\n{lines}" if lines else head)


class Interrupted(VoltageIacError):
    """The user pressed Ctrl-C (exit 130)."""

    exit_code = EXIT_INTERRUPTED
