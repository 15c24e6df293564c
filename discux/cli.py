"""`flask users …` and `flask invitations …` commands."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from discux import plans
from discux.auth.accounts import user_by_email
from discux.errors import DiscuxError
from discux.extensions import db
from discux.models import PLANS, User

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("set-plan")
@click.argument("email")
@click.argument("plan", type=click.Choice(PLANS))
def set_plan_command(email: str, plan: str) -> None:
    """Move the user with EMAIL to PLAN (free, pro or team)."""
    user = user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    try:
        plans.set_plan(user, plan)
    except DiscuxError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"{user.email} is now on the {plan} plan.")


@users_cli.command("list")
def list_command() -> None:
    """List every user with plan and limits."""
    users = db.session.scalars(sa.select(User).order_by(User.email)).all()
    if not users:
        click.echo("No users yet.")
        return
    for user in users:
        click.echo(
            f"{user.email}\t{user.display_name}\t{user.subscription}\t"
            f"agents≤{user.max_agents} rooms≤{user.max_rooms} "
            f"messages/month≤{user.max_messages_per_month}"
        )


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
