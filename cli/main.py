"""Entry point: ``sysid <command>``."""

from __future__ import annotations

import sys

import typer

from cli import commands
from cli.common import console, fail
from sysid.errors import SysidInputError

app = typer.Typer(
    name="sysid",
    help="System identification of metabolic-network dynamics: recover weak homeostatic regulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)


def main() -> None:
    """Run the app; bad input becomes one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except SysidInputError as exc:
        fail(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: no output was written")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        from click import ClickException

        if isinstance(exc, ClickException):
            fail(exc.format_message())
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
