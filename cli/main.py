"""Entry point: ``sysid <command>``."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys

import typer

from sysid.errors import SysidInputError

from . import commands
from .common import as_console_script, console, fail

app = typer.Typer(
    name="sysid",
    help="System identification of metabolic-network dynamics: recover weak homeostatic regulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """Raised on SIGTERM, so that half-written outputs are removed exactly as on Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main() -> None:
    """Run the app; bad input becomes one line on stderr and exit code 2."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The console script: :func:`main`, then every object left frozen for the process's exit. The interpreter's
    last garbage collections would otherwise walk all of torch's, scikit-learn's and the others' objects (0.85 s of
    `sysid fit` on the default, measured). Not in :func:`main`, which the tests call in their own process."""
    as_console_script()
    try:
        main()
    finally:
        gc.freeze()


def _run() -> None:
    try:
        # without standalone mode, typer turns Ctrl-C (and typer.Exit) into a returned exit code
        code = app(standalone_mode=False)
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except SysidInputError as exc:
        fail(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: no output was written")
        _exit_interrupted()
    except Terminated:
        console.print("terminated: no output was written")
        sys.exit(EXIT_TERMINATED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # usage errors of typer's bundled click (unknown option, missing value) carry format_message()
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            if exc.format_message():  # empty when no arguments were given and the help was shown
                fail(exc.format_message())
            sys.exit(2)
        raise


def _exit_interrupted() -> None:
    """Exit with EXIT_INTERRUPTED once the interrupt has been handled. Not by sys.exit: CPython can still count a
    caught KeyboardInterrupt as unhandled and then kill itself with SIGINT at exit (measured: Ctrl-C 0.35-0.5 s
    into `sysid fit --refine` on a tiny record gave exit code -2, its outputs cleaned up). The exit handlers run
    first, and the streams are flushed."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    entry()
