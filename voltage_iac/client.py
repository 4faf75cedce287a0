"""Client of the Voltage Payments API: its paths, answers and error envelopes.

Where it sits in the flow::

    provider.read / apply (provider writes) --> VoltageClient --> Voltage API (or the emulator)

The provider calls it to read live wallets, policies and lines of credit and to send the
writes an apply decides on; the apply engine calls it from a thread pool, so one client
is shared between threads. JSON goes in and out as plain dicts and lists: turning them
into the model is the provider's job.

What it guarantees to its callers:

- Every failure is one of the typed errors of `voltage_iac.errors`, with the HTTP status,
  the API's `error.type` and `error.code` and the `x-request-id`, and a message that names
  the operation and the object.
- Requests go through `voltage_iac.http.HttpCore`: reads are retried on time-outs,
  dropped connections, 5xx and 429, with jittered exponential backoff; a 429 pauses every
  thread as long as the API asks (capped); each request has a per-read time-out and a
  total deadline.
- Writes are never re-sent blindly: once a write may have reached the API, a time-out,
  a dropped connection or a 5xx raises `WriteOutcomeUnknown` so that the caller reads
  the live state before deciding. Only a 429 (not processed) and a failure to connect
  (nothing sent) are retried.
- The API key goes into the `x-api-key` header and nowhere else: not in reprs, log
  lines or exception messages.
"""

from __future__ import annotations

import codecs
import json
import logging
import random as _random_module
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from voltage_iac import __version__
from voltage_iac.errors import (
    ApiError,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    WriteOutcomeUnknown,
)
from voltage_iac.http import (
    DEFAULT_DEADLINE,
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    WRITE_UNKNOWN_TAIL,
    Answer,
    BaseTransport,
    HttpCore,
)
from voltage_iac.secret import Secret

__all__ = ["MAX_LISTING_BYTES", "MAX_RESPONSE_BYTES", "VoltageClient"]

#: Largest wallet listing of one environment accepted (about 300,000 wallets).
MAX_LISTING_BYTES = 256 * 1024 * 1024

logger = logging.getLogger("voltage_iac.client")

_EXCERPT_CHARS = 200

# What json.loads skips between values, and its decoder (the same rules: NaN accepted).
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_GOES_ON = re.compile(r"[0-9.eE+\-]*")  # what could still belong to a number
_DECODER = json.JSONDecoder()

_AUTH_HINTS = {
    401: (
        "check VOLTAGE_API_KEY: the key may be wrong, revoked, or belong to another "
        "environment or organization"
    ),
    403: (
        "check the API key's access: it needs READ access for plans and WRITE access for "
        "apply, in this organization and environment"
    ),
}

# Friendly phrases for the well-known `error.type` values. Unknown types are tolerated:
# the message then uses the API's detail text or a phrase for the HTTP status.
_TYPE_PHRASES = {
    "wrong_credentials": "the API key was not accepted",
    "invalid_token": "the token was not accepted",
    "invalid_issuer": "the token's issuer was not accepted",
    "missing_credentials": "no credentials were sent",
    "access_rights": "the API key does not have the access this needs",
    "not_allowed": "the API key is not allowed to do this",
    "instance_not_found": "not found",
    "wallet_policies_not_found": "no policies were found for the wallet",
    "line_of_credit_not_found": "the line of credit was not found",
    "line_of_credit_not_found_in_organization": (
        "the line of credit was not found in the organization"
    ),
    "line_of_credit_not_ready": "the line of credit is not ready yet",
    "line_of_credit_disabled": "the line of credit is disabled",
    "line_of_credit_network_mismatch": (
        "the wallet's network differs from the line of credit's network"
    ),
    "line_of_credit_cannot_allocate_wallet_limit": (
        "the line of credit cannot allocate the wallet's limit"
    ),
    "missing_bank_details": "the line of credit is missing bank details",
    "application_not_approved": "the organization's application is not approved yet",
    "wallet_not_empty": "the wallet still holds funds",
    "wallet_not_credit_backed": "the wallet is not backed by a line of credit",
    "feature_flag_disabled": "the feature is not enabled for the organization",
    "invalid_request": "the request is invalid",
    "invalid_parameter": "a parameter is invalid",
    "missing_parameter": "a required parameter is missing",
    "invalid_syntax": "the request's syntax is invalid",
    "no_updates_provided": "the update contains no change",
    "wallet_policies_exist": "the wallet's policies already exist",
    "payload_too_large": "the request body is too large",
    "missing_content_type": "the request was not sent as JSON",
    "invalid_data": "the request data is invalid",
    "internal_error": "the API failed with an internal error",
}

_STATUS_PHRASES = {
    400: "the API refused the request as invalid",
    401: "the API key was not accepted",
    403: "the API key is not allowed to do this",
    404: "not found",
    413: "the request body is too large",
    415: "the request was not sent as JSON",
    422: "the request data is invalid",
    429: "the API is rate limiting requests",
}


class _Envelope:
    """The parts of an error answer the client uses: `{"error": {type, detail, ...}}`."""

    __slots__ = ("code", "context", "detail", "error_type")

    def __init__(
        self,
        error_type: str | None,
        code: str | None,
        detail: str | None,
        context: dict[str, Any] | None,
    ) -> None:
        self.error_type = error_type
        self.code = code
        self.detail = detail
        self.context = context


class VoltageClient:
    """Synchronous, thread-safe client of the Voltage Payments API (wallets, policies,
    lines of credit). One instance is shared by every thread of an apply.

    A thin layer over `voltage_iac.http.HttpCore`, which sends the requests (retries,
    per-read time-out `timeout`, total `deadline` per request, back-pressure shared by
    every thread, the optional `max_requests_per_second` cap); this class knows the
    Voltage paths and turns the API's answers and error envelopes into typed errors."""

    #: Largest success body accepted (class attribute so tests can lower it).
    max_response_bytes: int = MAX_RESPONSE_BYTES
    #: Largest wallet listing accepted: one environment's listing is unpaginated in the
    #: contract; 256 MiB holds about 300,000 wallets (see docs/client.md).
    max_listing_bytes: int = MAX_LISTING_BYTES

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_attempts: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 2.0,
        max_retry_after: float = 30.0,
        max_requests_per_second: float | None = None,
        transport: BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random_module.random,
        user_agent: str = f"voltage-iac/{__version__}",
    ) -> None:
        if not isinstance(api_key, Secret):
            raise TypeError("api_key must be a Secret")
        self._api_key = api_key
        self._sleep = sleep
        self._core = HttpCore(
            base_url,
            server="the API",
            secrets=lambda: (self._api_key,),
            timeout=timeout,
            deadline=deadline,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            max_requests_per_second=max_requests_per_second,
            transport=transport,
            headers={"accept": "application/json", "user-agent": user_agent},
            random=random,
            pause=lambda seconds, operation, why: self._pause(seconds, operation, why),
            logger=logger,
            transport_hint="check the API URL and the network connection",
        )
        self._base_url = self._core.base_url
        self.timeout = timeout
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.max_requests_per_second = max_requests_per_second

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def request_count(self) -> int:
        """HTTP requests actually sent so far, retries included (thread-safe).

        Attempts that failed before anything was sent (connection refused) are not
        counted."""
        return self._core.request_count

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> VoltageClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VoltageClient(base_url={self._base_url!r})"

    # -- wallets -----------------------------------------------------------------------

    def list_wallets(
        self, org: str, environment_id: str, *, inactive: bool
    ) -> list[dict[str, Any]]:
        """Every wallet of one environment (deleted ones too when `inactive`)."""
        data = self._request(
            "GET",
            _path("organizations", org, "wallets"),
            f"list wallets of environment {environment_id}",
            params=[
                ("environment_id", environment_id),
                ("inactive", "true" if inactive else "false"),
            ],
            listing=True,
        )
        return self._expect_list_of_objects(data, f"list wallets of environment {environment_id}")

    def scan_wallets(
        self,
        org: str,
        environment_id: str,
        each: Callable[[dict[str, Any]], None],
        *,
        inactive: bool,
    ) -> int:
        """Every wallet of one environment, like `list_wallets`, handed to `each` one at a
        time as the answer is parsed: a listing of 100,000 wallets is never held as one
        JSON tree beside what `each` makes of it. Returns the number of wallets.

        The answer is checked as `list_wallets` checks it, and refused with the same
        errors first: not JSON, not an array, an item that is not an object. Only then is
        the first error raised by `each` re-raised (after it, `each` is not called again)."""
        operation = f"list wallets of environment {environment_id}"
        found: list[int] = []

        def parse(answer: Answer) -> None:
            found.append(self._scan_listing(answer, operation, each))

        self._request(
            "GET",
            _path("organizations", org, "wallets"),
            operation,
            params=[
                ("environment_id", environment_id),
                ("inactive", "true" if inactive else "false"),
            ],
            listing=True,
            parse=parse,
        )
        return found[0]

    def get_wallet(self, org: str, wallet_id: str) -> dict[str, Any] | None:
        """One wallet, or None when the API says it does not exist (404)."""
        operation = f"read wallet {wallet_id}"
        try:
            data = self._request(
                "GET", _path("organizations", org, "wallets", wallet_id), operation
            )
        except NotFoundError as exc:
            _raise_unless_documented_404(exc)
            return None
        return self._expect_object(data, operation)

    def create_wallet(self, org: str, body: dict[str, Any]) -> None:
        """Ask for a wallet to be created (the API answers 202 and creates it shortly)."""
        wallet_id = body.get("id") if isinstance(body, dict) else None
        label = wallet_id if isinstance(wallet_id, str) else "(without id)"
        self._request(
            "POST", _path("organizations", org, "wallets"), f"create wallet {label}", body=body
        )

    def update_wallet(self, org: str, wallet_id: str, name: str) -> None:
        """Rename a wallet: the name is the only field a wallet update can change."""
        self._request(
            "PATCH",
            _path("organizations", org, "wallets", wallet_id),
            f"update wallet {wallet_id}",
            body={"name": name},
        )

    def delete_wallet(self, org: str, wallet_id: str) -> None:
        """Ask for a wallet to be deleted (soft and asynchronous on the API's side)."""
        self._request(
            "DELETE",
            _path("organizations", org, "wallets", wallet_id),
            f"delete wallet {wallet_id}",
        )

    # -- receive payments --------------------------------------------------------------

    def create_payment(self, org: str, environment_id: str, body: dict[str, Any]) -> None:
        """Ask for a payment (202, empty body; read it by the id in `body`). voltage-iac
        only ever sends receive requests: nothing it sends can move funds out."""
        payment_id = body.get("id") if isinstance(body, dict) else None
        label = payment_id if isinstance(payment_id, str) else "(without id)"
        self._request(
            "POST",
            _path("organizations", org, "environments", environment_id, "payments"),
            f"create receive payment {label}",
            body=body,
        )

    def get_payment(self, org: str, environment_id: str, payment_id: str) -> dict[str, Any] | None:
        """One payment, or None while the API does not show it yet (404)."""
        operation = f"read payment {payment_id}"
        try:
            data = self._request(
                "GET",
                _path("organizations", org, "environments", environment_id, "payments", payment_id),
                operation,
            )
        except NotFoundError as exc:
            _raise_unless_documented_404(exc)
            return None
        return self._expect_object(data, operation)

    # -- wallet policies ---------------------------------------------------------------

    def get_policies(self, org: str, wallet_id: str) -> dict[str, Any] | None:
        """A wallet's policy record, or None on 404 (the caller decides what that means)."""
        operation = f"read policies of wallet {wallet_id}"
        try:
            data = self._request(
                "GET", _path("organizations", org, "wallets", wallet_id, "policies"), operation
            )
        except NotFoundError as exc:
            _raise_unless_documented_404(exc)
            return None
        return self._expect_object(data, operation)

    def update_policies(self, org: str, wallet_id: str, body: dict[str, Any]) -> None:
        """Change a wallet's policies: a field sent as null removes that policy."""
        self._request(
            "PATCH",
            _path("organizations", org, "wallets", wallet_id, "policies"),
            f"update policies of wallet {wallet_id}",
            body=body,
        )

    # -- lines of credit ---------------------------------------------------------------

    def line_of_credit_summaries(
        self,
        org: str,
        *,
        environment_ids: Sequence[str] | None = None,
        include_disabled: bool = True,
    ) -> list[dict[str, Any]]:
        """Summaries of the organization's lines of credit (limit, allocated limit...)."""
        if isinstance(environment_ids, str):
            raise TypeError("environment_ids must be a sequence of ids, not one string")
        params: list[tuple[str, str]] = [
            ("environment_ids", env) for env in (environment_ids or ())
        ]
        params.append(("include_disabled", "true" if include_disabled else "false"))
        operation = "list lines of credit"
        data = self._request(
            "GET",
            _path("organizations", org, "lines_of_credit", "summaries"),
            operation,
            params=params,
        )
        return self._expect_list_of_objects(data, operation)

    def line_of_credit_summary(self, org: str, line_id: str) -> dict[str, Any] | None:
        """One line of credit's summary, or None when the API says it does not exist."""
        operation = f"read line of credit {line_id}"
        try:
            data = self._request(
                "GET", _path("organizations", org, "lines_of_credit", line_id, "summary"), operation
            )
        except NotFoundError as exc:
            _raise_unless_documented_404(exc)
            return None
        return self._expect_object(data, operation)

    # -- webhooks ----------------------------------------------------------------------

    def list_webhooks(self, org: str, environment_id: str) -> list[dict[str, Any]]:
        """Every webhook of one environment: active, stopped and deleted (deleted ones
        keep their id, which can never be used again)."""
        operation = f"list webhooks of environment {environment_id}"
        data = self._request(
            "GET",
            _path("organizations", org, "webhooks"),
            operation,
            params=[
                ("environment_ids", environment_id),
                *(("statuses", status) for status in ("active", "stopped", "deleted")),
            ],
        )
        return self._expect_list_of_objects(data, operation)

    def get_webhook(self, org: str, environment_id: str, webhook_id: str) -> dict[str, Any] | None:
        """One webhook, or None when the API says it does not exist (404)."""
        operation = f"read webhook {webhook_id}"
        try:
            data = self._request("GET", _webhook_path(org, environment_id, webhook_id), operation)
        except NotFoundError as exc:
            _raise_unless_documented_404(exc)
            return None
        return self._expect_object(data, operation)

    def create_webhook(self, org: str, environment_id: str, body: dict[str, Any]) -> Secret:
        """Create a webhook (202); returns the signing secret the answer shows once, as a
        `Secret`. An answer without a readable secret raises `MalformedResponseError`
        (the webhook may exist then: the caller reads before anything else)."""
        webhook_id = body.get("id") if isinstance(body, dict) else None
        label = webhook_id if isinstance(webhook_id, str) else "(without id)"
        answer = self._request(
            "POST",
            _path("organizations", org, "environments", environment_id, "webhooks"),
            f"create webhook {label}",
            body=body,
            secret_answer=True,
        )
        assert isinstance(answer, Secret)
        return answer

    def update_webhook(
        self, org: str, environment_id: str, webhook_id: str, body: dict[str, Any]
    ) -> None:
        """Change url, name and events (events are replaced whole)."""
        self._request(
            "PATCH",
            _webhook_path(org, environment_id, webhook_id),
            f"update webhook {webhook_id}",
            body=body,
        )

    def delete_webhook(self, org: str, environment_id: str, webhook_id: str) -> None:
        self._request(
            "DELETE", _webhook_path(org, environment_id, webhook_id), f"delete webhook {webhook_id}"
        )

    def start_webhook(self, org: str, environment_id: str, webhook_id: str) -> None:
        self._request(
            "POST",
            _webhook_path(org, environment_id, webhook_id, "start"),
            f"start webhook {webhook_id}",
        )

    def stop_webhook(self, org: str, environment_id: str, webhook_id: str) -> None:
        self._request(
            "POST",
            _webhook_path(org, environment_id, webhook_id, "stop"),
            f"stop webhook {webhook_id}",
        )

    def rotate_webhook_key(self, org: str, environment_id: str, webhook_id: str) -> Secret:
        """A new signing secret for the webhook (the old one stops working at once)."""
        answer = self._request(
            "POST",
            _webhook_path(org, environment_id, webhook_id, "keys"),
            f"rotate the key of webhook {webhook_id}",
            secret_answer=True,
        )
        assert isinstance(answer, Secret)
        return answer

    # -- the request ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        listing: bool = False,
        secret_answer: bool = False,
        parse: Callable[[Answer], Any] | None = None,
    ) -> Any:
        """Send one logical request through the core; return the parsed JSON body of a
        read (None for a write). `secret_answer`: a write whose answer carries a secret
        shown once (`WebhookPlainSecret`); it is returned as a `Secret`, and no error
        message ever quotes that answer's body."""
        is_write = method != "GET"
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        cap = self.max_listing_bytes if listing else self.max_response_bytes
        answer = self._core.request(
            method,
            path,
            operation,
            write=is_write,
            params=params,
            content=content,
            headers={"x-api-key": self._api_key.reveal()},
            # an accepted write's body carries nothing the tool needs, but a secret
            read_body=not is_write or secret_answer,
            max_body_bytes=cap,
        )
        status = answer.status
        if 200 <= status < 300:
            if secret_answer:
                return self._parse_secret(answer, operation)
            if is_write:
                return None
            if parse is not None and not answer.too_large and answer.body is not None:
                return parse(answer)
            return self._parse_success(answer, operation, cap)
        if status == 429:
            raise self._api_error(answer, operation, suffix=f", {_attempts(answer.attempts)}")
        if status >= 500:
            if is_write:
                envelope = self._envelope(answer)
                kind = f" ({envelope.error_type})" if envelope and envelope.error_type else ""
                raise self._error(
                    WriteOutcomeUnknown,
                    f"{operation}: the outcome is unknown: the API answered HTTP "
                    f"{status}{kind} after the request was sent; {WRITE_UNKNOWN_TAIL}",
                    answer=answer,
                    envelope=envelope,
                )
            raise self._api_error(answer, operation, suffix=f", {_attempts(answer.attempts)}")
        if 400 <= status < 500:
            raise self._api_error(answer, operation)
        raise self._error(
            MalformedResponseError,
            f"{operation}: unexpected HTTP status {status}",
            answer=answer,
        )

    def _pause(self, seconds: float, operation: str, why: str) -> None:
        logger.debug("%s: retrying after %s in %.3f s", operation, why, seconds)
        self._sleep(seconds)

    def _parse_success(self, answer: Answer, operation: str, cap: int) -> Any:
        if answer.too_large or answer.body is None:
            raise self._error(
                MalformedResponseError,
                f"{operation}: the answer is larger than {cap} bytes",
                answer=answer,
            )
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):
            raise self._error(
                MalformedResponseError,
                f"{operation}: the answer (HTTP {answer.status}) is not JSON: "
                f"{self._scrub(_excerpt(answer.body))}",
                answer=answer,
            ) from None

    def _scan_listing(
        self,
        answer: Answer,
        operation: str,
        each: Callable[[dict[str, Any]], None],
    ) -> int:
        """Parse a JSON array of objects one item at a time (see `scan_wallets`): the
        text is decoded a piece at a time too, so the body is never held twice."""
        body = answer.body or b""

        def not_json() -> ApiError:
            return self._error(
                MalformedResponseError,
                f"{operation}: the answer (HTTP {answer.status}) is not JSON: "
                f"{self._scrub(_excerpt(body))}",
                answer=answer,
            )

        count = 0
        not_object: ApiError | None = None
        failed: Exception | None = None
        try:
            # decoded as json.loads decodes bytes (UTF-8, -16 or -32, a UTF-8 BOM skipped)
            window = _Window(body, json.detect_encoding(body))
            index = window.next_value(0)
            if not window.text.startswith("[", index):
                # not an array: the whole answer, checked as `list_wallets` checks it
                data = json.loads(window.rest())
                for item in self._expect_list_of_objects(data, operation):
                    each(item)
                return len(data)
            index = window.next_value(index + 1)
            if window.text.startswith("]", index):
                index += 1
            else:
                while True:
                    item, index = window.decode(index)
                    if not isinstance(item, dict):
                        if not_object is None:
                            not_object = self._error(
                                MalformedResponseError,
                                f"{operation}: item {count} of the answer is "
                                f"{_json_kind(item)}, not a JSON object",
                            )
                    elif not_object is None and failed is None:
                        try:
                            each(item)
                        except Exception as exc:  # raised once the answer is checked
                            failed = exc
                    del item
                    count += 1
                    index = window.next_value(index)
                    if window.text.startswith(",", index):
                        index = window.next_value(index + 1)
                        continue
                    if window.text.startswith("]", index):
                        index += 1
                        break
                    raise ValueError("expected ',' or ']'")
            if window.next_value(index) != len(window.text):
                raise ValueError("extra data after the array")
        except (ValueError, LookupError, RecursionError):
            raise not_json() from None
        if not_object is not None:
            raise not_object
        if failed is not None:
            raise failed
        return count

    def _parse_secret(self, answer: Answer, operation: str) -> Secret:
        """The `shared_secret` of a `WebhookPlainSecret` answer, wrapped at once. Errors
        describe the answer's shape only: the body is never quoted."""
        data: Any = None
        if not answer.too_large and answer.body is not None:
            try:
                data = json.loads(answer.body)
            except (ValueError, RecursionError):
                data = None
        value = data.get("shared_secret") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise self._error(
                MalformedResponseError,
                f"{operation}: the answer (HTTP {answer.status}) carries no readable shared_secret",
                answer=answer,
            )
        return Secret(value)

    def _expect_object(self, data: Any, operation: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self._error(
                MalformedResponseError,
                f"{operation}: expected a JSON object, got {_json_kind(data)}",
            )
        return data

    def _expect_list_of_objects(self, data: Any, operation: str) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            raise self._error(
                MalformedResponseError,
                f"{operation}: expected a JSON array, got {_json_kind(data)}",
            )
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise self._error(
                    MalformedResponseError,
                    f"{operation}: item {index} of the answer is {_json_kind(item)}, "
                    "not a JSON object",
                )
        return data

    def _api_error(self, answer: Answer, operation: str, *, suffix: str = "") -> ApiError:
        """The typed error for a 4xx/5xx answer, with a message naming the operation."""
        status = answer.status
        cls: type[ApiError]
        if status in (401, 403):
            cls = AuthError
        elif status == 404:
            cls = NotFoundError
        elif status == 429:
            cls = RateLimitedError
        elif status >= 500:
            cls = ServerError
        else:
            cls = InvalidRequestError
        envelope = self._envelope(answer)
        if envelope is not None and envelope.error_type == "missing_credentials":
            cls = AuthError  # a 400 by status, but an authentication failure to the user
        if envelope is not None and envelope.error_type is not None:
            phrase = _TYPE_PHRASES.get(envelope.error_type) or _short(envelope.detail, 200)
            phrase = phrase or _status_phrase(status)
            reason = envelope.error_type
            if envelope.code:
                reason += f", code {envelope.code}"
            message = f"{operation}: {phrase} ({reason}, HTTP {status}{suffix})"
            context = self._scrub(_render_context(envelope.context))
            if context:
                message += f"; {context}"
            detail = _short(envelope.detail, 200)
            if detail and detail != phrase:
                message += f"; detail: {detail}"
        else:
            message = f"{operation}: {_status_phrase(status)} (HTTP {status}{suffix})"
            if answer.too_large:
                message += "; the error body is too large to show"
            elif answer.body:
                message += f"; body: {self._scrub(_excerpt(answer.body))}"
            else:
                message += "; empty body"
        hint = _AUTH_HINTS.get(status)
        if cls is AuthError and hint is None:
            hint = "set VOLTAGE_API_KEY (or VOLTAGE_API_KEY_FILE) to the environment's API key"
        if status == 429:
            hint = "the API is rate limiting: wait a little and run the command again"
        return self._error(cls, message, answer=answer, envelope=envelope, hint=hint)

    def _scrub(self, text: str) -> str:
        """Mask the API key (whole, or any run of 8 or more of its characters) in text that
        came from the server (bodies, details, ids)."""
        return self._core.scrub(text)

    def _envelope(self, answer: Answer) -> _Envelope | None:
        """The answer's error envelope, with every text field scrubbed of the API key."""
        found = _envelope(answer)
        if found is None:
            return None
        for name in ("error_type", "code", "detail"):
            value = getattr(found, name)
            if value:
                setattr(found, name, self._scrub(value))
        return found

    def _error(
        self,
        cls: type[ApiError],
        message: str,
        *,
        answer: Answer | None = None,
        envelope: _Envelope | None = None,
        hint: str | None = None,
    ) -> ApiError:
        """Build an error. Server-sourced parts are always scrubbed; the whole message is
        scrubbed too as a last guard, unless the key is so short (a test key such as
        "dev") that masking it would garble ordinary words."""
        request_id = None
        status = None
        if answer is not None:
            status = answer.status
            raw_id = answer.headers.get("x-request-id")
            request_id = self._scrub(raw_id)[:128] if raw_id else None
            if request_id:
                message += f" [request id {request_id}]"
        message = self._core.scrub_message(message)
        hint = self._core.scrub_message(hint) if hint else hint
        return cls(
            message,
            status=status,
            error_type=envelope.error_type if envelope else None,
            code=envelope.code if envelope else None,
            request_id=request_id,
            context=envelope.context if envelope and isinstance(envelope.context, dict) else None,
            hint=hint,
        )


# -- module helpers ----------------------------------------------------------------------


def _path(*segments: str) -> str:
    """A path below the base URL, each segment percent-encoded (ids cannot add segments)."""
    return "/" + "/".join(quote(str(segment), safe="") for segment in segments)


def _webhook_path(org: str, environment_id: str, webhook_id: str, *rest: str) -> str:
    return _path(
        "organizations", org, "environments", environment_id, "webhooks", webhook_id, *rest
    )


def _raise_unless_documented_404(exc: NotFoundError) -> None:
    """A 404 that carries the API's error envelope means "no such object". A 404 without
    it (a proxy, a wrong base URL) is not evidence of absence and is raised."""
    if exc.error_type is None:
        raise exc


def _envelope(answer: Answer) -> _Envelope | None:
    """The documented error envelope of an answer, or None when there is none."""
    if not answer.body:
        return None
    try:
        data = json.loads(answer.body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    error = data["error"]

    def text(key: str) -> str | None:
        value = error.get(key)
        return value if isinstance(value, str) and value else None

    context = error.get("context")
    return _Envelope(
        error_type=text("type"),
        code=text("code"),
        detail=text("detail"),
        context=context if isinstance(context, dict) else None,
    )


def _render_context(context: dict[str, Any] | None) -> str:
    """`fields: name, limit; wallet_id: ...` from an error's context (scalars and lists)."""
    if not context:
        return ""
    parts = []
    for key, value in context.items():
        if isinstance(value, list):
            shown = ", ".join(_short(str(item), 120) for item in value[:20])
            if len(value) > 20:
                shown += f", ... ({len(value)} in all)"
        elif isinstance(value, (str, int, float, bool)) or value is None:
            shown = _short(str(value), 120)
        else:
            shown = _short(json.dumps(value, sort_keys=True, default=str), 120)
        parts.append(f"{_short(str(key), 60)}: {shown}")
    return "; ".join(parts)


def _status_phrase(status: int) -> str:
    if status in _STATUS_PHRASES:
        return _STATUS_PHRASES[status]
    if status >= 500:
        return "the API failed"
    return "the API refused the request"


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _short(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Window:
    """JSON text decoded from bytes a piece at a time. `text` holds the decoded text not
    yet consumed; indexes given out are into `text` and shift when a piece is added."""

    PIECE = 1 << 20  # bytes decoded at a time (more when one value is larger)

    def __init__(self, body: bytes, encoding: str) -> None:
        self._view = memoryview(body)
        self._at = 0
        self._decode = codecs.getincrementaldecoder(encoding)("surrogatepass").decode
        self.text = ""
        self._more(0)

    @property
    def exhausted(self) -> bool:
        return self._at >= len(self._view)

    def _more(self, keep_from: int) -> int:
        """Drop the text before `keep_from`, decode the next piece; returns the shift."""
        size = max(self.PIECE, len(self.text) - keep_from)
        piece = self._view[self._at : self._at + size]
        self._at += len(piece)
        self.text = self.text[keep_from:] + self._decode(piece, final=self.exhausted)
        return keep_from

    def next_value(self, index: int) -> int:
        """Where the next non-space character is (or the end, once everything is read)."""
        while True:
            match = _JSON_SPACE.match(self.text, index)
            index = match.end() if match else index
            if index < len(self.text) or self.exhausted:
                return index
            index -= self._more(index)

    def decode(self, index: int) -> tuple[Any, int]:
        """The JSON value at `index` (a value cut at the end of a piece is read whole)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, index)
            except ValueError:
                if self.exhausted:
                    raise
                index -= self._more(index)
                continue
            if not self.exhausted and (
                end == len(self.text)
                or (type(value) in (int, float) and _NUMBER_GOES_ON.fullmatch(self.text, end))
            ):
                # a number cut at the end of a piece (`0.` of `0.5`) may go on in the next
                index -= self._more(index)
                continue
            return value, end

    def rest(self) -> str:
        """Every remaining character (from the start when nothing was consumed)."""
        while not self.exhausted:
            self._more(0)
        return self.text


def _excerpt(body: bytes) -> str:
    text = body[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return repr(_short(text, _EXCERPT_CHARS))


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"
