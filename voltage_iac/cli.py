"""The command line: `voltage-iac validate | plan | apply | emulator ...`.

The top of the flow: imports everything, and nothing imports it. This is the only
module that prints and the one place where errors become messages and exit codes:

  0 success / no changes   1 error            2 changes present (plan --detailed-exitcode)
  3 invalid configuration or usage             4 authentication or permission refused
  5 blocked by a safety rule                   130 interrupted (Ctrl-C)

A traceback is shown only with `--debug`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from voltage_iac import __version__, kinds
from voltage_iac.config import load_config, state_from_plan
from voltage_iac.connect import ConnectOptions, open_backend
from voltage_iac.engine import (
    ApplyEvents,
    ApplyOptions,
    ApplyReport,
    Engine,
    OperationResult,
    Phase,
)
from voltage_iac.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    ConfigError,
    UsageError,
    VoltageIacError,
)
from voltage_iac.model import DesiredState
from voltage_iac.plan import Change, Plan
from voltage_iac.planfile import plan_file_document, plan_from_document
from voltage_iac.policy import including, judge_document, policy_run, render_verdicts
from voltage_iac.progress import Board, choose_mode, describe_phase
from voltage_iac.render.drift import (
    render_drift_json,
    render_drift_junit,
    render_drift_markdown,
    render_drift_text,
)
from voltage_iac.render.jsonfmt import dump, render_json
from voltage_iac.render.markdown import render_markdown
from voltage_iac.render.stacks import (
    APPLY_FORMAT_VERSION,
    STACKS_FORMAT_VERSION,
    apply_result_dict,
    render_apply_json,
    render_drifts_junit,
    render_drifts_markdown,
    render_plans_markdown,
    render_stacks_json,
    render_stacks_text,
    section_title,
    status_word,
)
from voltage_iac.render.text import render_text
from voltage_iac.stacks import (
    StackRun,
    load_stacks,
    most_severe,
    refuse_with_several,
    require_paths,
    run_stacks,
)
from voltage_iac.stale import ReviewedPlan, is_plan_document, read_plan_document
from voltage_iac.watchdog import DEFAULT_DEADLINE, Watchdog

_state: dict[str, Any] = {"debug": False}


class VoltageGroup(click.Group):
    """Maps every failure to the documented exit codes (click's usage errors included).

    The `emulator` commands are loaded only when named, so a run against a real API
    never imports the emulator or its server."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "emulator":
            from voltage_iac.emulator.command import emulator

            return emulator
        return super().get_command(ctx, cmd_name)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _state["debug"] = False
        _state["watchdog"] = None
        args = _hoist_global_flags(list(args) if args is not None else sys.argv[1:])
        try:
            code = super().main(
                args=args,
                prog_name=prog_name or "voltage-iac",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.UsageError as exc:
            exc.show()
            code = EXIT_INVALID
        except click.ClickException as exc:
            exc.show()
            code = EXIT_INVALID
        except (click.Abort, KeyboardInterrupt):
            dog = _deadline_passed()
            if dog is not None:
                click.echo(f"Error: {dog.message()}", err=True)
                code = EXIT_ERROR
            else:
                click.echo("Interrupted.", err=True)
                code = EXIT_INTERRUPTED
        except VoltageIacError as exc:
            _report_error(exc)
            code = exc.exit_code
        except Exception as exc:  # a bug: say so plainly, traceback only with --debug
            if getattr(exc, "user_facing", False) and isinstance(
                getattr(exc, "exit_code", None), int
            ):
                # A part with errors of its own (the emulator) that are meant for users.
                if _state["debug"]:
                    traceback.print_exc()
                click.echo(f"Error: {exc}", err=True)
                code = exc.exit_code  # type: ignore[attr-defined]
                if standalone_mode:
                    sys.exit(code)
                return code
            if _state["debug"]:
                traceback.print_exc()
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc}", err=True)
            click.echo("  (run again with --debug for the traceback)", err=True)
            code = EXIT_ERROR
        if not isinstance(code, int):
            code = EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


#: Flags of the whole command that are accepted after the subcommand too.
_GLOBAL_FLAGS = frozenset({"--debug", "--no-color", "--verbose"})


def _is_global_flag(arg: str) -> bool:
    return arg in _GLOBAL_FLAGS or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"})


def _hoist_global_flags(args: list[str]) -> list[str]:
    """`voltage-iac plan x.yaml --no-color` works like `voltage-iac --no-color plan x.yaml`:
    the global flags (they take no value) are moved before the subcommand. Arguments
    after `--` are left alone."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags = [a for a in head if _is_global_flag(a)]
    rest = [a for a in head if not _is_global_flag(a)]
    return [*flags, *rest, *tail]


def _report_error(exc: VoltageIacError) -> None:
    if _state["debug"]:
        traceback.print_exc()
    click.echo(f"Error: {exc}", err=True)


def _use_color(no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


@click.group(cls=VoltageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voltage-iac")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: progress and timings of each phase (and each change of an apply) on stderr; "
    "-vv: also every HTTP request (method, path, status, ms; never a header or a secret).",
)
@click.option("--no-color", is_flag=True, help="Never colour the output (NO_COLOR works too).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, no_color: bool) -> None:
    """Lightning wallets as code (Voltage, LNbits): validate, plan, apply, check for drift."""
    _state["debug"] = debug
    ctx.obj = {"color": _use_color(no_color), "verbose": verbose}
    # The HTTP libraries log headers at DEBUG (a server or proxy may echo the API key in
    # one); the client's own log line says what -vv needs (method, path, status, timing).
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _configure_logging(verbose)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever standard error is when a record is logged (a live progress
    display redirects it to draw lines above its bars)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _configure_logging(verbose: int) -> None:
    """-v: the product's progress messages (INFO); -vv: also every HTTP request (DEBUG).

    A handler of the package's own logger, set anew by every command, so the lines
    appear whatever else configured logging in the process."""
    logger = logging.getLogger("voltage_iac")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    if not verbose:
        logger.setLevel(logging.NOTSET)
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


_QUIET_LOGGERS = ("httpx", "httpcore", "h11", "h2", "hpack")


@contextmanager
def _engine(
    desired: DesiredState,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
    echo: Callable[[str], None] | None = None,
) -> Iterator[Engine]:
    obj = click.get_current_context().obj
    options = _connect_options(api_url, emulator_db, timeout)
    dog = Watchdog(obj.get("deadline"))
    _state["watchdog"] = dog
    with dog, open_backend(desired, options) as backend:
        yield Engine(desired, backend, on_phase=_phase_printer("", echo, obj.get("verbose", 0)))


def _connect_options(
    api_url: str | None, emulator_db: str | None, timeout: float
) -> ConnectOptions:
    return ConnectOptions(
        api_url=api_url,
        emulator_db=emulator_db,
        wait_timeout=timeout,
        max_requests_per_second=click.get_current_context().obj.get("rate"),
    )


def _phase_printer(
    prefix: str, echo: Callable[[str], None] | None, verbose: int
) -> Callable[[Phase], None] | None:
    """With -v, a line per finished phase: `read 1,000 wallets in 0.4s (2 requests)`."""
    if not verbose:
        return None
    out = echo or (lambda text: click.echo(text, err=True))
    return lambda phase: out(prefix + describe_phase(phase))


def _deadline_passed() -> Watchdog | None:
    dog = _state.get("watchdog")
    return dog if isinstance(dog, Watchdog) and dog.tripped.is_set() else None


_config_path = click.argument(
    "path", type=click.Path(exists=True, dir_okay=True, readable=True, path_type=Path)
)

#: plan, apply and drift take any number of configuration paths, each a stack of its own
#: (at least one is checked by the command, see stacks.require_paths).
_config_paths = click.argument(
    "paths",
    nargs=-1,
    metavar="PATH...",
    type=click.Path(exists=True, dir_okay=True, readable=True, path_type=Path),
)


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.ensure_object(dict)[name] = value
        return value

    return store


def _backend_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--deadline",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_DEADLINE,
        show_default=True,
        expose_value=False,
        callback=_remember("deadline"),
        help="Seconds the whole command may take; then it stops as on Ctrl-C and exits 1.",
    )(func)
    func = click.option(
        "--max-requests-per-second",
        type=click.FloatRange(min=0.01),
        default=None,
        expose_value=False,
        callback=_remember("rate"),
        help="Cap the request rate, shared by every worker, for APIs that publish one "
        "(default: no cap; a 429 always pauses every worker).",
    )(func)
    func = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=120.0,
        show_default=True,
        help="Seconds to wait for an accepted change to become visible.",
    )(func)
    func = click.option(
        "--emulator-db",
        type=click.Path(dir_okay=False, path_type=str),
        help="State file of the embedded emulator (default .voltage-iac/emulator.db).",
    )(func)
    func = click.option(
        "--api-url",
        help="API base URL, overriding the config and VOLTAGE_API_URL ('emulator' for "
        "the embedded emulator).",
    )(func)
    return func


_policy_option = click.option(
    "--policy",
    "policy_paths",
    multiple=True,
    metavar="PATH",
    type=click.Path(path_type=str),
    help="Also evaluate these Rego policies, a .rego file or a directory (repeatable; "
    "added to `policies:` of the configuration; see docs/policy.md).",
)
_override_policy_option = click.option(
    "--override-policy",
    "override_policy",
    multiple=True,
    metavar="ID",
    help="Let this deny verdict through (its id or exact message; repeatable). Recorded "
    "in the plan; apply accepts it only for a reviewed plan (--plan or --checksum).",
)

_target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="KEY",
    help="Limit the plan to this key (repeatable).",
)


_report_output_option = click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)

_plan_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format (json: the plan JSON; markdown: for a pull-request comment).",
)


def _epilog(example: str, env: str, exits: str) -> str:
    """The end of a command's --help: an example, the environment it reads, its exit codes."""
    return f"\b\nExample:\n  {example}\n\n\b\nEnvironment:\n{env}\n\n\b\nExit codes:\n{exits}"


_ENV_API = (
    "  VOLTAGE_API_KEY   API key of the Voltage provider (never printed)\n"
    "  VOLTAGE_API_KEY_FILE  a file holding that key instead\n"
    "  VOLTAGE_API_URL   API base URL ('emulator' for the embedded emulator)\n"
    "  NO_COLOR          never colour the output"
)
_ENV_NONE = "  NO_COLOR          never colour the output (no API is contacted)"
_ENV_PROGRESS = "\n  CI                'true': progress as count lines, never a live display"
_EXITS_STACKS = (
    "\n  several PATHs: the most severe of the stacks' codes, in the order"
    "\n  130 > 3 > 4 > 5 > 1 > 2 > 0"
)
_EXITS_BASE = (
    "  0 success   1 error (API, network)   3 invalid configuration or usage\n"
    "  4 authentication or permission refused   130 interrupted"
)


@cli.command(
    epilog=_epilog("voltage-iac validate wallets.yaml", _ENV_NONE, "  0 valid   3 invalid")
)
@_config_path
def validate(path: Path) -> int:
    """Check the configuration (schema, references, limits) without contacting any API."""
    desired = load_config(path)
    counts: list[str] = []
    envs: set[str] = set()
    for kind in kinds.registered():
        entries = desired.of(kind.name)
        if entries or kind.name == "wallet":
            counts.append(f"{len(entries)} {kind.name}(s)")
        envs |= {str(e.environment) for e in entries.values() if getattr(e, "environment", None)}
    where = f" in {len(envs)} environment(s)" if desired.environments else ""
    click.echo(
        f"Configuration valid: stack {desired.stack}, {', '.join(counts)}"
        f"{where}, provider {desired.provider_kind}."
    )
    return EXIT_OK


@cli.command(
    epilog=_epilog(
        "voltage-iac plan wallets.yaml --out plan.json --detailed-exitcode\n"
        "  voltage-iac plan stacks/payments stacks/treasury --format markdown",
        _ENV_API,
        _EXITS_BASE + "\n  2 changes present (with --detailed-exitcode)" + _EXITS_STACKS,
    )
)
@_config_paths
@_plan_format_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the reviewed plan file (the JSON plan and the desired state it was "
    "planned from; owner-only permissions) for `apply FILE` and `show FILE`.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when the plan has changes, 0 when it has none.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Record in the plan that the mass-change and limit-increase guards are overridden "
    "(apply --plan then needs --force too).",
)
@_policy_option
@_override_policy_option
@_backend_options
@_target_option
@click.pass_context
def plan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    force: bool,
    targets: tuple[str, ...],
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
    policy_paths: tuple[str, ...] = (),
    override_policy: tuple[str, ...] = (),
) -> int:
    """Show what apply would change, without changing anything.

    Several paths plan several stacks at once: one section each (one Markdown comment
    with a summary table, one JSON wrapper), and the most severe exit code.
    """
    if len(require_paths(paths, "plan")) > 1:
        refuse_with_several(paths, **{"--out": out, "--target": targets})
        if policy_paths or override_policy:
            raise UsageError(
                "--policy and --override-policy name one stack's review; give one path",
                hint="each stack's `policies:` still judge its plan",
            )
        return _plan_stacks(
            ctx, list(paths), fmt, detailed_exitcode, force, api_url, emulator_db, timeout
        )
    [path] = paths
    # the run's --policy paths join the configuration's, so a plan file records them all
    desired = including(load_config(path), policy_paths)
    policies = policy_run(desired, (), override_policy)
    with _engine(desired, api_url, emulator_db, timeout) as engine:
        the_plan = engine.plan(targets, force=force, policies=policies)
        backend = engine.describe()
    if fmt == "json":
        click.echo(render_json(the_plan), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(the_plan), nl=False)
    else:
        click.echo(render_text(the_plan, color=ctx.obj["color"], backend=backend), nl=False)
        click.echo(f"Plan checksum: {the_plan.checksum()}")
    if out is not None:
        _write_private(out, dump(plan_file_document(the_plan, desired, backend)))
        click.echo(f"Plan written to {out} (checksum {the_plan.checksum()}).", err=True)
    if detailed_exitcode and the_plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (plans name wallets and organizations)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@cli.command(
    epilog=_epilog(
        "voltage-iac apply plan.json --auto-approve\n"
        "  voltage-iac apply stacks/payments stacks/treasury --auto-approve --format json\n"
        "  (-v: each change's start and finish, and timings; -vv: also each request)",
        _ENV_API + _ENV_PROGRESS,
        _EXITS_BASE
        + "\n  5 blocked by a safety rule or a stale reviewed plan (nothing changed)"
        + _EXITS_STACKS,
    )
)
@_config_paths
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Result format (json: a result document on stdout, the plan and progress on "
    "stderr; see docs/formats.md).",
)
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--allow-delete", is_flag=True, help="Allow deleting owned wallets.")
@click.option("--allow-replace", is_flag=True, help="Allow replacing wallets (delete + create).")
@click.option("--force", is_flag=True, help="Override the mass-change and limit-increase guards.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=10,
    show_default=True,
    help="How many operations run at once.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply this reviewed plan file (from plan --out); refused if anything changed. "
    "PATH may then be left out (the file records the desired state).",
)
@click.option(
    "--checksum",
    help="Apply only if the new plan has this checksum (as printed by plan).",
)
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for another apply of the same stack on this machine to finish.",
)
@click.option(
    "--unprotect",
    multiple=True,
    metavar="KEY",
    help="Lift the protection of this key for this apply only, so that it may be deleted "
    "or replaced (repeatable; --allow-delete/--allow-replace are still needed).",
)
@click.option(
    "--verify",
    "verify_after",
    is_flag=True,
    help="After a successful apply, verify the wallets it created or changed (see verify; "
    "receive requests only, no funds move).",
)
@_policy_option
@_override_policy_option
@_backend_options
@_target_option
@click.pass_context
def apply(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str,
    auto_approve: bool,
    allow_delete: bool,
    allow_replace: bool,
    force: bool,
    parallelism: int,
    plan_file: Path | None,
    checksum: str | None,
    lock_wait: float,
    unprotect: tuple[str, ...],
    targets: tuple[str, ...],
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
    verify_after: bool = False,
    policy_paths: tuple[str, ...] = (),
    override_policy: tuple[str, ...] = (),
) -> int:
    """Plan, check the safety rules, and apply the changes.

    PATH is a configuration, or a reviewed plan file (from plan --out), which is then
    applied as with --plan. With a plan file, apply exactly the reviewed plan: the live
    state is read again and the apply is refused (exit 5) if anything it was planned
    against changed. The file records the desired state, so no configuration is needed;
    given one too, it must be the one the plan was made from.

    Several paths apply several stacks at once, each under its own lock, with
    --auto-approve only (review their plans first); --plan, --checksum, --target and
    --verify name one stack and need one path.
    """
    color = ctx.obj["color"]
    if verify_after and fmt == "json":
        raise UsageError(
            "--verify cannot be combined with --format json",
            hint="run `voltage-iac verify --format json` after the apply",
        )
    options = ApplyOptions(
        allow_delete=allow_delete,
        allow_replace=allow_replace,
        force=force,
        unprotect=frozenset(unprotect),
        parallelism=parallelism,
        targets=targets,
        checksum=checksum,
        lock_wait=lock_wait,
    )
    if len(paths) > 1:
        refuse_with_several(
            paths,
            **{"--plan": plan_file, "--checksum": checksum, "--target": targets},
            **{"--verify": verify_after, "--policy": policy_paths},
            **{"--override-policy": override_policy},
        )
        return _apply_stacks(
            ctx, list(paths), fmt, auto_approve, options, api_url, emulator_db, timeout
        )
    # one configuration, or a reviewed plan file (as PATH or --plan), or both
    desired, reviewed = _resolve_apply_input(paths[0] if paths else None, plan_file)
    options = dataclasses.replace(
        options,
        reviewed=reviewed,
        policies=policy_run(desired, policy_paths, override_policy),
    )
    view = _ApplyView(_board(color), "apply", color, ctx.obj.get("verbose", 0), fmt == "json")
    with view.board, _engine(desired, api_url, emulator_db, timeout, view.board.echo) as engine:
        events = view.events(engine.describe(), None if auto_approve else view.confirm)
        try:
            outcome = engine.apply(options, events)
        finally:
            view.end()
        verified = None
        if verify_after and outcome.report.ok and outcome.plan.has_changes:
            verified = _verify_after_apply(engine, desired, outcome.report, timeout)
    if fmt == "json":
        return _emit_apply_json(outcome.plan, outcome.report)
    if not outcome.plan.has_changes:
        return EXIT_OK
    code = _finish(outcome.report, color, desired)
    if verified is not None:
        _emit_verify(verified, "text", None)
        if not verified.ok:
            return EXIT_ERROR
    return code


def _echo_interrupt(running: int) -> None:
    click.echo(
        f"Interrupted: no new operation starts; waiting for {running} running "
        f"operation{'' if running == 1 else 's'} to finish.",
        err=True,
    )


_PLAN_FILE_HINT = "a plan file is the JSON that `plan PATH --out FILE` writes"


def _read_plan_file(path: Path) -> ReviewedPlan:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"{path} is not a voltage-iac plan file (not JSON: {exc})", hint=_PLAN_FILE_HINT
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read plan file {path}: {exc}", hint=_PLAN_FILE_HINT) from None
    if not is_plan_document(doc):
        raise UsageError(f"{path} is not a voltage-iac plan file", hint=_PLAN_FILE_HINT)
    return read_plan_document(doc, str(path))


def _json_at(path: Path) -> Any:
    """The JSON document in the file at `path`, or None when it holds none (YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # the config loader says what is wrong with it
    if not text.lstrip().startswith("{"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _resolve_apply_input(
    path: Path | None, plan_file: Path | None
) -> tuple[DesiredState, ReviewedPlan | None]:
    """apply's positional argument and --plan -> (desired state, reviewed plan or None).

    PATH is told apart by content: a JSON object with the plan document's
    `format_version` and `checksum` is a plan file (`apply FILE` = `apply --plan FILE`),
    anything else a configuration. With a plan file and no configuration, the desired
    state is the one the file records; with both, the engine's gate refuses a plan made
    from another configuration (its digest is part of the plan's checksum)."""
    if path is not None and path.is_file():
        doc = _json_at(path)
        if is_plan_document(doc):
            if plan_file is not None:
                raise UsageError(
                    f"{path} is a plan file, and --plan names one too",
                    hint="give the plan file once: `apply PLAN_FILE`, or "
                    "`apply CONFIG --plan PLAN_FILE`",
                )
            path, plan_file = None, path
        elif isinstance(doc, dict) and "format_version" in doc:
            raise UsageError(
                f"{path} is a voltage-iac document but neither a configuration nor a plan "
                "file (a drift report?)",
                hint="give the configuration (YAML), or a plan file from `plan PATH --out FILE`",
            )
    reviewed = _read_plan_file(plan_file) if plan_file is not None else None
    if path is None:
        if reviewed is None:
            raise UsageError(
                "apply needs a configuration or a reviewed plan file",
                hint="voltage-iac apply wallets.yaml, or voltage-iac apply plan.json "
                "(written by plan wallets.yaml --out plan.json)",
            )
        return state_from_plan(reviewed), reviewed
    try:
        desired = load_config(path)
    except ConfigError as exc:
        if path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
            exc.hint = (
                f"{path} is neither a configuration nor a plan file; give the configuration "
                "(YAML), or a plan file from `plan PATH --out FILE`"
            )
        raise
    # The file's record must be that configuration too (a changed configuration is for
    # the engine's gate to report, with every difference named).
    if (
        reviewed is not None
        and reviewed.self_contained
        and desired.digest == reviewed.config_digest
    ):
        state_from_plan(reviewed)
    return desired, reviewed


def _confirm(_plan: Plan, *, err: bool = False) -> None:
    if not sys.stdin.isatty():
        raise UsageError(
            "apply needs confirmation, and there is no terminal to ask on",
            hint="review the plan, then pass --auto-approve (e.g. in CI)",
        )
    click.echo("", err=err)
    answer = click.prompt(
        "Apply these changes? Only 'yes' will be accepted",
        default="",
        show_default=False,
        err=err,
    )
    if answer.strip() != "yes":
        raise VoltageIacError("apply cancelled: nothing was changed")


def _board(color: bool) -> Board:
    """The progress display of an apply, on standard error (live on a terminal)."""
    stream = sys.stderr
    return Board(stream, choose_mode(stream), color=color)


class _ApplyView:
    """What a person sees of one stack's apply: its plan, progress, and per-change lines.

    By default: the plan, a failure as it happens, the progress (a live display on a
    terminal, count lines in CI). With -v also each change's start and finish (with its
    seconds). The plan goes to stdout, or to stderr when stdout holds a JSON document."""

    def __init__(
        self,
        board: Board,
        label: str,
        color: bool,
        verbose: int,
        plan_to_stderr: bool,
        *,
        prefix: str = "",
        title: str = "",
        out_lock: threading.Lock | None = None,
    ) -> None:
        self.board = board
        self.tracker = board.tracker(label)
        self.color = color
        self.verbose = verbose
        self.plan_to_stderr = plan_to_stderr
        self.prefix = prefix
        self.title = title
        self.out_lock = out_lock or threading.Lock()
        self._total = 0
        self._begun = False
        self._lock = threading.Lock()

    def events(self, backend: str, confirm: Callable[[Plan], None] | None) -> ApplyEvents:
        return ApplyEvents(
            on_plan=lambda p: self._plan(p, backend),
            confirm=confirm,
            on_start=self._start,
            on_result=self._result,
            on_interrupt=_echo_interrupt,
            on_notice=lambda text: self.board.echo(f"{self.prefix}Note: {text}"),
        )

    def confirm(self, the_plan: Plan) -> None:
        _confirm(the_plan, err=self.plan_to_stderr)

    def _plan(self, the_plan: Plan, backend: str) -> None:
        self._total = len(the_plan.actionable)
        text = render_text(the_plan, color=self.color, backend=backend)
        if self.title:
            text = f"{self.title}\n{text}"
        with self.out_lock:
            click.echo(text, nl=False, err=self.plan_to_stderr)

    def _begin(self) -> None:
        with self._lock:
            if not self._begun:
                self._begun = True
                self.tracker.begin(self._total)

    def _start(self, change: Change) -> None:
        self._begin()
        if self.verbose:
            self.board.echo(self.prefix + _start_line(change))

    def _result(self, result: OperationResult) -> None:
        self._begin()
        if result.status == "failed" or self.verbose:
            line = _result_line(result, self.color)
            if line:
                self.board.echo(self.prefix + line)
        self.tracker.advance(result.status == "done")

    def end(self) -> None:
        if self._begun:
            self.tracker.end()


def _start_line(change: Change) -> str:
    return f"{change.kind} {change.key}: {change.action.value} started"


def _result_line(result: OperationResult, color: bool) -> str:
    if result.status == "done":
        mark = click.style("done", fg="green") if color else "done"
        return f"{result.kind} {result.key}: {result.action} {mark} ({result.seconds:.1f}s)"
    if result.status == "failed":
        mark = click.style("FAILED", fg="red", bold=True) if color else "FAILED"
        return f"{result.kind} {result.key}: {result.action} {mark}: {result.message}"
    return ""


def _finish(report: ApplyReport, color: bool, desired: DesiredState | None = None) -> int:
    _print_results(report, color, desired)
    return _apply_code(report)


def _print_results(report: ApplyReport, color: bool, desired: DesiredState | None) -> None:
    done = [r for r in report.results if r.status == "done"]
    lines = ["", "Results:"]
    for result in sorted(report.results, key=lambda r: r.key):
        detail = f" {result.id}" if result.id else ""
        line = f"  {result.key:<24} {result.action:<8} {result.status}{detail}"
        if result.status == "failed":
            line += f"\n      {result.message}"
        elif result.status == "done" and desired is not None:
            note = kinds.get(result.kind).result_detail(
                desired.of(result.kind).get(result.key), result.action
            )
            line += f"\n      {note}" if note else ""
        lines.append(line)
    click.echo("\n".join(lines))
    click.echo(_apply_summary(report, len(done), color))


def _apply_summary(report: ApplyReport, done: int, color: bool = False) -> str:
    summary = (
        f"Apply {'interrupted' if report.interrupted else 'complete'}: {done} done, "
        f"{len(report.failed)} failed, {len(report.not_started)} not started."
    )
    return click.style(summary, bold=True) if color else summary


def _apply_code(report: ApplyReport, *, hints: bool = True) -> int:
    """The exit code of an apply that had changes; with `hints`, what to do next."""
    if report.interrupted:
        if hints:
            click.echo("Re-run apply to finish: it never creates anything twice.", err=True)
        dog = _deadline_passed()
        if dog is not None:
            if hints:
                click.echo(f"Error: {dog.message()}", err=True)
            return EXIT_ERROR
        return EXIT_INTERRUPTED
    if report.failed or report.not_started:
        if hints:
            click.echo(
                "Re-run apply after fixing the cause: finished work is not redone.", err=True
            )
        return EXIT_ERROR
    return EXIT_OK


def _emit_apply_json(the_plan: Plan, report: ApplyReport) -> int:
    """`apply --format json`: the result document on stdout; the exit code as in text."""
    code = _apply_code(report) if the_plan.has_changes else EXIT_OK
    click.echo(render_apply_json(the_plan, report, code), nl=False)
    return code


# -- several stacks in one command (the fan-out itself is voltage_iac/stacks.py) ------------


def _run_several(runs: list[StackRun], job: Any, *, wait_on_interrupt: bool = False) -> None:
    dog = Watchdog(click.get_current_context().obj.get("deadline"))
    _state["watchdog"] = dog
    with dog:
        run_stacks(
            runs,
            job,
            wait_on_interrupt=wait_on_interrupt,
            on_interrupt=lambda busy: click.echo(
                f"Interrupted: no new change starts; waiting for the {busy} running "
                f"stack{'' if busy == 1 else 's'} to finish their running operations.",
                err=True,
            ),
            debug=_state["debug"],
        )


def _echo_stack_errors(runs: list[StackRun]) -> None:
    for run in runs:
        if run.error is not None:
            click.echo(f"Error: stack {run.stack} ({run.path}): {run.error}", err=True)


def _plan_stacks(
    ctx: click.Context,
    paths: list[Path],
    fmt: str,
    detailed_exitcode: bool,
    force: bool,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    runs = load_stacks(paths)
    connect = _connect_options(api_url, emulator_db, timeout)
    verbose, color = ctx.obj.get("verbose", 0), ctx.obj["color"]

    def job(run: StackRun, _stop: threading.Event) -> int:
        assert run.desired is not None
        with open_backend(run.desired, connect) as backend:
            printer = _phase_printer(f"{run.stack}: ", None, verbose)
            engine = Engine(run.desired, backend, on_phase=printer)
            run.value = engine.plan((), force=force)
            run.extra["backend"] = engine.describe()
        return EXIT_CHANGES if detailed_exitcode and run.value.has_changes else EXIT_OK

    _run_several(runs, job)
    code = most_severe(run.code for run in runs)
    if fmt == "json":
        click.echo(render_stacks_json(runs, "plan", lambda r: r.value.to_dict(), code), nl=False)
    elif fmt == "markdown":
        section = lambda r, room: render_markdown(r.value, max_chars=room)  # noqa: E731
        click.echo(render_plans_markdown(runs, section), nl=False)
    else:

        def body(run: StackRun) -> str:
            text = render_text(run.value, color=color, backend=run.extra["backend"])
            return text + f"Plan checksum: {run.value.checksum()}\n\n"

        summary = lambda r: r.value.summary_line()  # noqa: E731
        click.echo(render_stacks_text(runs, body, summary), nl=False)
    if fmt != "text":
        _echo_stack_errors(runs)
    return code


def _apply_stacks(
    ctx: click.Context,
    paths: list[Path],
    fmt: str,
    auto_approve: bool,
    options: ApplyOptions,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    """Apply several stacks at once: with --auto-approve only (one prompt cannot stand for
    several plans being made at the same time), each stack under its own lock."""
    if not auto_approve:
        raise UsageError(
            f"apply of {len(paths)} stacks needs --auto-approve: it does not ask to confirm "
            "several plans at once",
            hint="review each stack's plan first (voltage-iac plan PATH...), then apply with "
            "--auto-approve; or apply one stack at a time to confirm each",
        )
    runs = load_stacks(paths)
    connect = _connect_options(api_url, emulator_db, timeout)
    verbose, color, as_json = ctx.obj.get("verbose", 0), ctx.obj["color"], fmt == "json"
    out_lock = threading.Lock()
    board = _board(color)

    def job(run: StackRun, stop: threading.Event) -> int:
        assert run.desired is not None
        label, prefix = f"apply {run.stack}", f"{run.stack}: "
        view = _ApplyView(
            board,
            label,
            color,
            verbose,
            as_json,
            prefix=prefix,
            title=section_title(run),
            out_lock=out_lock,
        )
        with open_backend(run.desired, connect) as backend:
            engine = Engine(
                run.desired, backend, on_phase=_phase_printer(prefix, board.echo, verbose)
            )
            try:
                outcome = engine.apply(
                    dataclasses.replace(options, stop=stop), view.events(engine.describe(), None)
                )
            finally:
                view.end()
        run.value = outcome
        if not outcome.plan.has_changes:
            return EXIT_OK
        return _apply_code(outcome.report, hints=False)

    with board:
        _run_several(runs, job, wait_on_interrupt=True)
    if _deadline_passed() is not None:  # stopped by --deadline, not by Ctrl-C: exit 1
        for run in runs:
            run.code = EXIT_ERROR if run.code == EXIT_INTERRUPTED else run.code
    code = most_severe(run.code for run in runs)
    if as_json:
        document = lambda r: apply_result_dict(r.value.plan, r.value.report, r.code)  # noqa: E731
        click.echo(render_stacks_json(runs, "apply", document, code), nl=False)
        _echo_stack_errors(runs)
    else:
        for run in runs:
            click.echo(f"\n{section_title(run)}")
            if run.value is not None and run.value.plan.has_changes:
                _print_results(run.value.report, color, run.desired)
            elif run.value is not None:
                click.echo("No changes.")
            if run.error is not None:
                click.echo(f"Error: {run.error}")
        width = max(len(run.stack) for run in runs)
        click.echo(f"\n{len(runs)} stacks:")
        for run in runs:
            click.echo(f"  {run.stack:<{width}}  {status_word(run, _stack_apply_summary)}")
    reports = [r.value.report for r in runs if r.value is not None and r.value.plan.has_changes]
    if any(r.interrupted for r in reports) or any(r.code == EXIT_INTERRUPTED for r in runs):
        click.echo("Re-run apply to finish: it never creates anything twice.", err=True)
        dog = _deadline_passed()
        if dog is not None:
            click.echo(f"Error: {dog.message()}", err=True)
    elif any(r.failed or r.not_started for r in reports):
        click.echo("Re-run apply after fixing the cause: finished work is not redone.", err=True)
    return code


def _stack_apply_summary(run: StackRun) -> str:
    outcome = run.value
    if not outcome.plan.has_changes:
        return "no changes"
    report = outcome.report
    done = sum(1 for r in report.results if r.status == "done")
    return _apply_summary(report, done)


def _drift_stacks(
    paths: list[Path],
    fmt: str,
    output: Path | None,
    unmanaged: str,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    runs = load_stacks(paths)
    connect = _connect_options(api_url, emulator_db, timeout)
    verbose = click.get_current_context().obj.get("verbose", 0)

    def job(run: StackRun, _stop: threading.Event) -> int:
        assert run.desired is not None
        with open_backend(run.desired, connect) as backend:
            printer = _phase_printer(f"{run.stack}: ", None, verbose)
            run.value = Engine(run.desired, backend, on_phase=printer).drift(unmanaged=unmanaged)
        policies = policy_run(run.desired)  # each stack's own `policies:`
        verdicts = judge_document(policies, run.value.to_dict()) if policies else None
        run.extra["verdicts"] = verdicts  # the JUnit report shows them as one stack's does
        if verdicts is not None and verdicts.blocking():
            return EXIT_CHANGES
        return EXIT_OK if run.value.in_sync else EXIT_CHANGES

    _run_several(runs, job)
    for run in sorted(runs, key=lambda r: r.stack):
        judged = run.extra.get("verdicts")
        if judged is not None and judged.blocking():
            click.echo(f"Stack {run.stack}:\n{render_verdicts(judged)}", err=True, nl=False)
    code = most_severe(run.code for run in runs)
    if fmt == "json":
        text = render_stacks_json(runs, "drift", lambda r: r.value.to_dict(), code)
    elif fmt == "markdown":
        text = render_drifts_markdown(runs, lambda r: render_drift_markdown(r.value))
    elif fmt == "junit":
        text = render_drifts_junit(
            runs,
            lambda r: render_drift_junit(
                r.value, seconds=r.seconds, verdicts=r.extra.get("verdicts")
            ),
        )
    else:
        found = lambda r: "in sync" if r.value.in_sync else f"{len(r.value.items)} finding(s)"  # noqa: E731
        text = render_stacks_text(runs, lambda r: render_drift_text(r.value) + "\n", found)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        drifted = sum(1 for r in runs if r.code == EXIT_CHANGES)
        click.echo(
            f"Drift report of {len(runs)} stacks written to {output}: {drifted} with drift.",
            err=True,
        )
    else:
        click.echo(text, nl=False)
    if fmt != "text" or output is not None:
        _echo_stack_errors(runs)
    return code


@cli.command(
    epilog=_epilog(
        "voltage-iac drift wallets.yaml --format junit --output drift.xml\n"
        "  voltage-iac drift stacks/payments stacks/treasury --format markdown",
        _ENV_API,
        _EXITS_BASE + "\n  2 drift found" + _EXITS_STACKS,
    )
)
@_config_paths
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "junit"]),
    default="text",
    show_default=True,
    help="Report format (junit: one test case per wallet, for CI systems).",
)
@_report_output_option
@click.option(
    "--unmanaged",
    type=click.Choice(["report", "fail"]),
    default="report",
    show_default=True,
    help="Whether hand-made resources in a managed environment count as drift "
    "(other stacks' resources never do).",
)
@_policy_option
@_backend_options
def drift(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    unmanaged: str,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
    policy_paths: tuple[str, ...] = (),
) -> int:
    """Report drift between the configuration and the live wallets and webhooks; changes
    nothing.

    Exit 0 in sync, 2 drift found; an error is never 2 (1 API or network, 3 invalid
    configuration, 4 authentication refused).

    Several paths check several stacks at once: one report with a section per stack
    (JUnit: a test suite per stack), and the most severe exit code.
    """
    if len(require_paths(paths, "drift")) > 1:
        refuse_with_several(paths, **{"--policy": policy_paths})
        return _drift_stacks(list(paths), fmt, output, unmanaged, api_url, emulator_db, timeout)
    [path] = paths
    desired = load_config(path)
    policies = policy_run(desired, policy_paths)
    started = time.monotonic()
    with _engine(desired, api_url, emulator_db, timeout) as engine:
        report = engine.drift(unmanaged=unmanaged)
    verdicts = judge_document(policies, report.to_dict()) if policies is not None else None
    seconds = time.monotonic() - started
    renderers: dict[str, Callable[..., str]] = {
        "text": render_drift_text,
        "json": render_drift_json,
        "markdown": render_drift_markdown,
    }
    renderers["junit"] = lambda r: render_drift_junit(r, seconds=seconds, verdicts=verdicts)
    text = renderers[fmt](report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(
            f"Drift report written to {output}: "
            + ("in sync." if report.in_sync else f"{len(report.items)} finding(s)."),
            err=True,
        )
    else:
        click.echo(text, nl=False)
    if verdicts is not None:
        click.echo(render_verdicts(verdicts), err=True, nl=False)
        if verdicts.blocking():
            return EXIT_CHANGES
    return EXIT_OK if report.in_sync else EXIT_CHANGES


@cli.command(
    epilog=_epilog(
        "voltage-iac show plan.json --format markdown",
        _ENV_NONE,
        "  0 shown   3 not a plan file of this version\n  5 the file was changed after it was made",
    )
)
@click.argument(
    "plan_file",
    metavar="PLAN_FILE",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
)
@_plan_format_option
@click.pass_context
def show(ctx: click.Context, plan_file: Path, fmt: str) -> int:
    """Show a reviewed plan file (from plan --out) as plan showed it; no API is contacted.

    The file is checked first, as apply checks it: a file changed after it was made is
    refused (exit 5).
    """
    reviewed = _read_plan_file(plan_file)
    saved = plan_from_document(reviewed)
    if fmt == "json":
        click.echo(render_json(saved), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(saved), nl=False)
    else:
        backend = str(reviewed.document.get("backend") or "")
        click.echo(render_text(saved, color=ctx.obj["color"], backend=backend), nl=False)
        click.echo(f"Plan checksum: {saved.checksum()}")
    return EXIT_OK


def _schema_files() -> dict[str, str]:
    """The published JSON Schemas by name, each file named after its format version."""
    from voltage_iac.drift import DRIFT_FORMAT_VERSION
    from voltage_iac.plan import PLAN_FORMAT_VERSION

    return {
        "config": "config.v1.json",
        "plan": f"plan.v{PLAN_FORMAT_VERSION}.json",
        "plan-file": f"plan-file.v{PLAN_FORMAT_VERSION}.json",
        "drift": f"drift.v{DRIFT_FORMAT_VERSION}.json",
        "apply": f"apply.v{APPLY_FORMAT_VERSION}.json",
        "stacks": f"stacks.v{STACKS_FORMAT_VERSION}.json",
    }


@cli.command()
@click.argument(
    "document",
    required=False,
    default="config",
    type=click.Choice(["config", "plan", "plan-file", "drift", "apply", "stacks"]),
)
@click.option("--path", "show_path", is_flag=True, help="Print the schema file's path instead.")
def schema(document: str, show_path: bool) -> int:
    """Print a JSON Schema (draft 2020-12): of the configuration (the default, for
    editors and YAML language servers), the JSON plan (plan --format json), the plan
    file (plan --out), the drift report (drift --format json), the apply result (apply
    --format json) or the results of several stacks (plan, drift or apply PATH PATH...
    --format json).

    \b
    Example:
      voltage-iac schema > config.schema.json
      voltage-iac schema plan-file --path
    """
    from importlib import resources

    path = resources.files("voltage_iac") / "schemas" / _schema_files()[document]
    if show_path:
        click.echo(str(path))
    else:
        click.echo(path.read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


@cli.command(
    name="import",
    epilog=_epilog(
        "voltage-iac import wallets.yaml --environment staging --output imported.yaml",
        _ENV_API,
        _EXITS_BASE,
    ),
)
@_config_path
@click.option("--environment", required=True, help="Environment (name in the config) to import.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the YAML to this new file (for a directory config, put it inside).",
)
@_backend_options
def import_command(
    path: Path,
    environment: str,
    output: Path | None,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    """Write YAML adopting wallets and webhooks that exist but are not in the configuration."""
    desired = load_config(path)
    if environment not in desired.environments:
        raise UsageError(
            f"unknown environment {environment!r}",
            hint="use one of: " + ", ".join(sorted(desired.environments)),
        )
    with _engine(desired, api_url, emulator_db, timeout) as engine:
        text, notes = engine.import_wallets(environment)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    if output is not None:
        if output.exists():
            raise UsageError(f"{output} already exists; choose a new file")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"Imported wallets written to {output}.", err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_OK


# -- verify: receive requests only, never a payment out ---------------------------------


@cli.command(name="verify")
@_config_path
@click.option(
    "--amount",
    default="1sat",
    show_default=True,
    help="Amount of each receive invoice (e.g. 1sat, 1000 msat).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="Report format (junit: one test case per wallet, for CI systems).",
)
@_report_output_option
@_backend_options
@_target_option
def verify_command(
    path: Path,
    amount: str,
    fmt: str,
    output: Path | None,
    targets: tuple[str, ...],
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    """Prove every managed wallet can take a payment: ask each for a receive invoice.

    Verification never moves funds: it only creates receive requests (invoices nobody is
    asked to pay), each marked "voltage-iac verify <stack>/<key>" in its description and
    metadata. --timeout bounds the whole run. Exit 0 all verified, 1 any failed.
    """
    from voltage_iac.verify import VerifyOptions, parse_amount

    options = VerifyOptions(amount_msats=parse_amount(amount), timeout=timeout, targets=targets)
    desired = load_config(path)
    with _engine(desired, api_url, emulator_db, timeout) as engine:
        report = _run_verify(engine, desired, options)
    _emit_verify(report, fmt, output)
    return EXIT_OK if report.ok else EXIT_ERROR


def _run_verify(engine: Engine, desired: DesiredState, options: Any) -> Any:
    from voltage_iac.verify import verify

    return verify(desired, engine.backend, engine.read(), options)


def _verify_after_apply(
    engine: Engine, desired: DesiredState, report: ApplyReport, timeout: float
) -> Any:
    from voltage_iac.verify import VerifyOptions, keys_of

    keys = keys_of(report.results)
    if not keys:
        return None
    return _run_verify(engine, desired, VerifyOptions(timeout=timeout, targets=keys))


def _emit_verify(report: Any, fmt: str, output: Path | None) -> None:
    from voltage_iac.render.verify import render_verify

    text = render_verify(report, fmt)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        from voltage_iac.verify import summary_line

        click.echo(f"Verify report written to {output}. {summary_line(report)}", err=True)
    else:
        click.echo(text, nl=False)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    _tune_collector()
    cli.main(args=list(argv) if argv is not None else None, prog_name="voltage-iac")
    raise SystemExit(EXIT_OK)  # pragma: no cover - cli.main always exits


def _tune_collector() -> None:
    """A command allocates its configuration and listings as many small objects that
    live until it exits. The cycle collector's default (a pass every 700 allocations,
    each older generation rescanned as it grows) spends a fifth of a 10,000-wallet plan
    rescanning them; every 50,000 allocations keeps reclaiming cycles at a small cost.
    The modules imported so far are never garbage, so they leave the scans."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@cli.command(name="rotate-secret")
@_config_path
@click.argument("kind", metavar="KIND")
@click.argument("key", metavar="KEY")
@_backend_options
def rotate_secret_command(
    path: Path,
    kind: str,
    key: str,
    api_url: str | None,
    emulator_db: str | None,
    timeout: float,
) -> int:
    """Make a new secret for one entry (KIND: webhook) and hand it to its `secret` sink.

    The new secret is never shown: it goes only to the file or command the entry's
    `secret:` names. The old secret stops working at once.
    """
    from voltage_iac.rotation import rotate_secret

    desired = load_config(path)
    with _engine(desired, api_url, emulator_db, timeout) as engine:
        rotated = rotate_secret(desired, engine.backend, kind, key)
    click.echo(
        f"Rotated the secret of {rotated.kind} {rotated.key} ({rotated.id}): {rotated.detail}."
    )
    return EXIT_OK
