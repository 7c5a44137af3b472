"""The `fraud` command line (SPEC.md section 2). User errors print one line and exit non-zero."""

from __future__ import annotations

import sys

import typer

from fraud.cli.checks import _Terminated
from fraud.cli.data_commands import simulate, train
from fraud.cli.detect_command import detect
from fraud.cli.explain_command import explain
from fraud.cli.notebook_command import notebook
from fraud.cli.report_commands import backtest, bench, demo, evaluate
from fraud.cli.rules_commands import rules_app
from fraud.core.redact import mask_text
from fraud.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="fraudstream: real-time card-fraud detection (demo, simulate, train, detect, evaluate, explain, backtest, "
    "bench, rules check, notebook).",
)
for _command in (simulate, train, detect, evaluate, explain, backtest, bench, demo, notebook):  # the order of --help
    app.command()(_command)
app.add_typer(rules_app, name="rules")


def main() -> None:
    """Console entry point: usage errors and user errors become one line on stderr, exit status 2."""
    command = typer.main.get_command(app)
    sub = next((a for a in sys.argv[1:] if a in getattr(command, "commands", {})), None)
    prog = f"fraud {sub}" if sub else "fraud"  # the same prefix as click's usage errors
    try:
        rv = command.main(prog_name="fraud", standalone_mode=False)
    except UserError as exc:
        print(f"{prog}: error: {mask_text(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("fraud: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("fraud: interrupted", file=sys.stderr)
        sys.exit(130)
    except _Terminated:
        print("fraud: terminated", file=sys.stderr)
        sys.exit(143)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:  # unwritable output, a file where a directory should be, disk full...
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file is in the way of a directory on this path"
        print(f"{prog}: error: {mask_text(where + reason)}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        # click's ClickException (typer ships its own copy of click): usage errors, bad values.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            where = f"fraud {ctx.info_name}" if ctx is not None and ctx.parent is not None else "fraud"
            if type(exc).__name__.startswith("NoArgsIsHelp"):
                print(exc.format_message())
                sys.exit(0)
            print(f"{where}: error: {exc.format_message()} (see --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
