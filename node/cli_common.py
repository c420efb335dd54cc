"""What every ``simpul`` sub-command shares: the --config option, clean errors, opening the node."""
from __future__ import annotations

import functools
import sys

import click

from node.errors import ConfigError, SimpulError

CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                      help="node config file (default: $SIMPUL_CONFIG or ./simpul.toml)")


def fail_cleanly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SimpulError as exc:
            click.echo(f"simpul: {' '.join(str(exc).split())}", err=True)  # a driver's message may span lines
            sys.exit(2 if isinstance(exc, ConfigError) else 1)
    return wrapper


def open_node(config_path, **overrides):
    from node.config import load_settings
    from node.core import Node
    return Node(load_settings(config_path, overrides))
