"""What every ``simpul`` sub-command shares: the --config option, clean errors, opening the node."""
from __future__ import annotations

import functools
import sys

import click

from node.errors import ConfigError, SimpulError

CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                      help="node config file (default: $SIMPUL_CONFIG or ./simpul.toml)")


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())   # click 8.2 and later; 8.1 exits with the help


class OneLineErrors(click.Group):
    """The root group: click's usage errors (an unknown option, a bad value, a missing argument) print one
    line, as every other error of the CLI does, instead of click's usage block; the exit code stays 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:   # (a caller that handles click's exceptions itself, node.cluster.simpul)
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS as exc:   # a bare group: its help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx else (prog_name or "simpul")
            click.echo(f"simpul: {' '.join(exc.format_message().split())} (see '{path} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # What standalone mode does: a finished command exits 0; ctx.exit(n) (--help, say) arrives here as n.
        sys.exit(code if isinstance(code, int) else 0)


def fail_cleanly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SimpulError as exc:
            click.echo(f"simpul: {' '.join(str(exc).split())}", err=True)  # a driver's message may span lines
            sys.exit(2 if isinstance(exc, ConfigError) else 1)
        except OSError as exc:   # a file or folder this command needs: unreadable, read-only, a folder, ...
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"simpul: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
    return wrapper


def open_node(config_path, **overrides):
    from node.config import load_settings
    from node.core import Node
    return Node(load_settings(config_path, overrides))
