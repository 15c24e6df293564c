"""`flask users …`, `flask discux backup|restore` and `flask discux3 import` commands."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from discux import backups, discux3_import, plans
from discux.admin import service as admin
from discux.auth.accounts import user_by_email
from discux.errors import DiscuxError
from discux.extensions import db
from discux.models import PLANS, User

users_cli = AppGroup("users", help="Manage user accounts.")
discux_cli = AppGroup("discux", help="Operate this Discux install: backups and restores.")
discux3_cli = AppGroup("discux3", help="Move in from a Discux3 installation.")


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
            + ("\tdisabled" if user.disabled_at else "")
        )


@users_cli.command("enable")
@click.argument("email")
def enable_command(email: str) -> None:
    """Let the user with EMAIL sign in again after an admin disabled them (on /admin)."""
    user = user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    admin.enable_user(user.id)
    click.echo(f"{user.email} is enabled and may sign in.")


@discux_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(path: Path) -> None:
    """Copy the whole database into the file PATH, consistently, while the server runs."""
    try:
        size = backups.backup(db.engine.url, path)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up {backups.describe(db.engine.url)} to {path} ({size:,} bytes).")


@discux_cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(path: Path, yes: bool) -> None:
    """Replace everything in the database with the backup in PATH (stop the server first)."""
    where = backups.describe(db.engine.url)
    if not yes:
        click.confirm(f"Replace everything in {where} with {path}? Stop the server first.",
                      abort=True)
    db.session.remove()
    db.engine.dispose()  # no connection of this process may hold the old database open
    try:
        backups.restore(db.engine.url, path)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Restored {path} into {where}. Run `flask db upgrade` if the backup is older "
               "than this version, then start the server.")


@discux3_cli.command("import")
@click.argument("source_url")
@click.option("--dry-run", is_flag=True, help="Report what would be copied; write nothing.")
def import_command(source_url: str, dry_run: bool) -> None:
    """Copy the Discux3 MySQL database at SOURCE_URL (its DATABASE_URL) into this one."""
    try:
        report = discux3_import.import_discux3(source_url, dry_run=dry_run)
    except discux3_import.ImportFailed as error:
        raise click.ClickException(error.message) from None
    click.echo(report.text())


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(discux_cli)
    app.cli.add_command(discux3_cli)
