"""``notify operators …``: the people who sign in to the console."""

from __future__ import annotations

from typing import Annotated

import typer

from notify.cli.support import CommandGroup, fail, sessions_for, settings

operators_app = CommandGroup(help="The people who sign in to the console (/console).")


@operators_app.command("create")
def operators_create(
    email: Annotated[str, typer.Option(metavar="ADDRESS", help="The operator's email address.")],
    role: Annotated[
        str,
        typer.Option(
            metavar="ROLE",
            help="marketing (campaigns, imports, stats) or admin (also operators and keys).",
        ),
    ],
) -> None:
    """Create an operator and print their one-time setup link (it works once, for a day)."""
    from notify.operators import accounts, audit

    config = settings()
    try:
        with sessions_for(config).begin() as session:
            link = accounts.create(session, email, role)
            audit.record(session, "operator.create", f"operator:{link.operator_id}", role=role)
    except accounts.OperatorError as error:
        fail(str(error))
    typer.echo(f"{config.public_url}/console/setup/{link.token}")


Address = Annotated[str, typer.Argument(metavar="ADDRESS", help="The operator's email address.")]


@operators_app.command("reset")
def operators_reset(email: Address) -> None:
    """Print a new one-time setup link for an operator (a forgotten password); older links stop."""
    from notify.operators import accounts, audit

    config = settings()
    with sessions_for(config).begin() as session:
        operator = accounts.find(session, email)
        if operator is None or operator.disabled_at is not None:
            fail(f"no enabled operator has the address {email}")
        link = accounts.new_setup_link(session, operator)
        audit.record(session, "operator.reset", f"operator:{operator.id}")
    typer.echo(f"{config.public_url}/console/setup/{link.token}")


@operators_app.command("disable")
def operators_disable(email: Address) -> None:
    """Refuse an operator from now on: their sessions end at once and no setup link works."""
    from notify.operators import accounts, audit

    config = settings()
    with sessions_for(config).begin() as session:
        operator = accounts.find(session, email)
        if operator is None:
            fail(f"no operator has the address {email}")
        accounts.disable(session, operator)
        audit.record(session, "operator.disable", f"operator:{operator.id}")
    typer.echo(f"{operator.email} is disabled")
