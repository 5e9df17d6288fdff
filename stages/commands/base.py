"""The root ``tkd`` group: logging, tkd's own errors as one line, defaults shown in help."""

from __future__ import annotations

import json
import logging

import click

from pipeline.errors import TkdError

# Inherited by every subcommand's context.
CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"]}


class TkdGroup(click.Group):
    """Reports tkd's own errors (bad input) as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TkdError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=TkdGroup, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """tkd: temporal knowledge distillation for on-device audio classification."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


def print_json(data: dict, leave_out: str = "") -> None:
    """A stage's summary on stdout (``leave_out``: a bulky key such as the history)."""
    click.echo(json.dumps({k: v for k, v in data.items() if k != leave_out}, indent=2, default=str))
