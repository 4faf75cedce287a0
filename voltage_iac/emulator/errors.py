"""The emulator's own errors and API keys: it shares nothing with the product but the
contract, so it carries these itself.

`EmulatorError` is a usage error (bad seed, non-loopback host, port taken): the
emulator's commands turn it into a command-line error (exit 3), and the product's
Voltage backend into its own usage error when it starts the embedded emulator.
`ApiKey` is a key the emulator accepts, shown as `***`.
"""

from __future__ import annotations


class EmulatorError(Exception):
    """A mistake in how the emulator was asked to run: a message and a hint."""

    exit_code = 3
    #: the command line prints it as an error message (no traceback), with exit_code
    user_facing = True

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ApiKey:
    """An API key the emulator accepts; never shown by `repr()` or `str()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)
