"""Command-line interface: ``flask --app booking_service <command>`` (DESIGN.md, "Commands").

Each command is one unit of work committed at the end; errors are printed plainly and exit 1.
"""

from __future__ import annotations

import functools
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from booking_service import errors
from booking_service.db import utcnow
from booking_service.errors import DomainError


def _database():
    return current_app.extensions["database"]


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


db_group = AppGroup("db", help="Create or migrate the database schema (Alembic).")


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the schema up to REVISION (default: head). Creates the SQLite file if needed."""
    from booking_service import migrate

    url = current_app.extensions["settings"].DATABASE_URL
    migrate.upgrade(url, revision)
    click.echo(f"Database at {_database().engine.url.render_as_string(hide_password=True)} is at {revision}.")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION (``base`` removes everything)."""
    from booking_service import migrate

    migrate.downgrade(current_app.extensions["settings"].DATABASE_URL, revision)
    click.echo(f"Database downgraded to {revision}.")


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Same as ``db upgrade``: create or migrate the schema."""
    from booking_service import migrate

    migrate.upgrade(current_app.extensions["settings"].DATABASE_URL)
    click.echo("Database ready.")


@click.command("seed-demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="Do nothing when the clinic already exists.")
def seed_demo(if_empty: bool) -> None:
    """Load the demo clinic and print the staff logins."""
    from booking_service.demo import DemoExists, seed

    settings = current_app.extensions["settings"]
    try:
        with _database().unit_of_work() as session:
            result = seed(session, secret_key=settings.SECRET_KEY, now=utcnow())
    except DemoExists:
        if if_empty:
            click.echo("The clinic already has data; demo not loaded.")
            return
        _fail("the clinic already has data; seed-demo only fills an empty database.")
        return
    click.echo(f"Demo clinic loaded: {result.summary}")
    for email, role, password in result.logins:
        click.echo(f"  {role:<12} {email}  password: {password}")


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "frontdesk", "practitioner"]), required=True)
@click.option("--password", help="At least 10 characters; generated and printed when left out.")
@click.option("--name", default="", help="Display name.")
@click.option("--update", is_flag=True, help="Update the user when the email exists.")
@click.option("--practitioner-id", type=click.IntRange(min=1), help="Link a practitioner login to this practitioner.")
def create_user_command(
    email: str, role: str, password: str | None, name: str, update: bool, practitioner_id: int | None
) -> None:
    """Create a staff user (exits 1 if the email exists, unless --update). Updating ends the
    user's console sessions and revokes their API tokens."""
    from booking_service.staff.operations import create_user

    try:
        with _database().unit_of_work() as session:
            user, generated = create_user(
                session,
                email,
                role=role,
                password=password,
                name=name,
                update=update,
                practitioner_id=practitioner_id,
                now=utcnow(),
            )
            email = user.email
    except DomainError as exc:
        _fail(_describe(exc))
        return
    click.echo(f"{'Updated' if update else 'Created'} {role} {email}.")
    if generated:
        click.echo(f"Password: {generated}")


@click.command("create-api-token")
@with_appcontext
@click.argument("email")
def create_api_token_command(email: str) -> None:
    """Print a new Bearer token for a staff user, alone on the last line."""
    from booking_service.staff.operations import create_api_token

    try:
        with _database().unit_of_work() as session:
            token = create_api_token(session, email, now=utcnow())
    except DomainError as exc:
        _fail(_describe(exc))
        return
    click.echo(f"API token for {email.strip().lower()} (shown once; keep it secret):")
    click.echo(token)


@click.command("revoke-api-token")
@with_appcontext
@click.argument("email")
def revoke_api_token_command(email: str) -> None:
    """Revoke every API token of a staff user."""
    from booking_service.staff.operations import revoke_api_tokens

    try:
        with _database().unit_of_work() as session:
            count = revoke_api_tokens(session, email, now=utcnow())
    except DomainError as exc:
        _fail(_describe(exc))
        return
    click.echo(f"Revoked {count} API token{'s' if count != 1 else ''} of {email.strip().lower()}.")


@click.command("load-clinic")
@with_appcontext
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Print what would change, and change nothing.")
@click.option(
    "--confirm-moves", is_flag=True, help="Save even when the changes leave future appointments to move (listed)."
)
def load_clinic_command(file, dry_run: bool, confirm_moves: bool) -> None:
    """Create or update the clinic, locations, services, practitioners and weekly hours from a
    clinic file (YAML; FILE ``-`` reads standard input). Items are matched by key; items the
    file leaves out are left alone. Prints each change, or exactly "no change". A bad file
    exits 1 naming the line and field of each problem, and nothing is changed; so do changes
    that leave future appointments to move, unless --confirm-moves."""
    from booking_service.clinic.files import ClinicFileError, read_document
    from booking_service.usecases.clinic_file import MovesNotConfirmed, describe, load_clinic, plan_changes

    try:
        document = read_document(file.read())
        with _database().unit_of_work() as session:
            if dry_run:
                changes = plan_changes(session, document, now=utcnow())
            else:
                changes = load_clinic(session, document, now=utcnow(), confirm_moves=confirm_moves)
    except ClinicFileError as exc:
        _fail(f"{file.name} was not loaded; nothing was changed.\n{_describe_file_error(exc)}")
        return
    except MovesNotConfirmed as exc:
        click.echo(describe(exc.changes))
        _fail(
            f"{file.name} was not loaded; nothing was changed: its changes leave {exc.count} future "
            f"appointment{'s' if exc.count != 1 else ''} to move (listed above). Run again with --confirm-moves "
            "to save, then move them in the console."
        )
        return
    except UnicodeDecodeError:
        _fail(f"{file.name} is not UTF-8 text; nothing was changed.")
        return
    click.echo(describe(changes))
    if changes:
        count = f"{len(changes)} change{'s' if len(changes) != 1 else ''}"
        click.echo(f"Dry run: {count}, nothing saved." if dry_run else f"Saved {count}.")


@click.command("export-clinic")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
def export_clinic_command(file: str) -> None:
    """Write the clinic (settings and policy, locations, services, practitioners and their
    weekly hours) as a clinic file that load-clinic reads; FILE ``-`` writes to standard output."""
    from booking_service.clinic.files import export_clinic

    with _database().unit_of_work() as session:
        text = export_clinic(session)
    with click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out:
        out.write(text)
    if file != "-":
        click.echo(f"Clinic written to {file}.", err=True)


# The clinic file's own words where the console's speak of its form (a list to tick, a price in
# dollars): what to write in the file instead.
_FILE_FIELD_WORDS = {
    errors.LANGUAGES_INVALID: "List at least one language, from: en, fr.",
    errors.KIND_INVALID: "Use initial, follow_up or other.",
    errors.PRICE_INVALID: "Give the price in cents (9500 for $95.00), or null for no price shown.",
    errors.TIMEZONE_INVALID: "Give an IANA time zone, such as America/Toronto.",
    errors.STAFF_LOGIN_INVALID: "Give the email of an active staff user with the practitioner role.",
}


def _describe_file_error(exc) -> str:
    """Each problem of a clinic file on its own line: where (field path and line), then what."""
    from booking_service.console.common import staff_field_errors, staff_message

    lines = [f"  {problem}" for problem in exc.problems]
    if exc.domain_error is not None:
        domain, where = exc.domain_error, exc.where
        place = ", ".join(
            filter(None, [f"line {where.line}" if where.line else "", where.message and f"key {where.message}"])
        )
        lines.append(f"  {where.path}{f' ({place})' if place else ''}: {staff_message(domain)}")
        for name, words in staff_field_errors(domain).items():
            path, line = exc.domain_fields.get(name, (name, None))
            words = _FILE_FIELD_WORDS.get(domain.fields[name], words)
            lines.append(f"  {path} (line {line}): {words}" if line else f"  {path}: {words}")
    return "\n".join(lines)


# What the console's words cannot know: the command's own options.
_CLI_HINTS = {
    errors.USER_EXISTS: "Use --update to change it.",
    errors.PRACTITIONER_LINK_NEEDS_ROLE: "Use --role practitioner, or leave --practitioner-id out.",
}


def _describe(exc: DomainError) -> str:
    """A domain error in the console's (staff) words, with each field's words and the hint."""
    from booking_service.console.common import staff_field_errors, staff_message

    details = "; ".join(f"{k}: {v}" for k, v in staff_field_errors(exc).items())
    return " ".join(part for part in (staff_message(exc), details, _CLI_HINTS.get(exc.reason, "")) if part)


def _audited_as_cli(command: click.Command) -> None:
    """What a command changes is audited as ``cli`` (the operating-system user who ran it)."""
    from booking_service.audit.context import acting_as, cli_actor

    for sub in getattr(command, "commands", {}).values():
        _audited_as_cli(sub)
    callback = command.callback
    if callback is None or getattr(callback, "audited_as_cli", False):
        return

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        with acting_as(cli_actor()):
            return callback(*args, **kwargs)

    wrapper.audited_as_cli = True  # type: ignore[attr-defined]
    command.callback = wrapper


def register_commands(app: Flask) -> None:
    commands = (
        db_group,
        init_db,
        seed_demo,
        create_user_command,
        create_api_token_command,
        revoke_api_token_command,
        load_clinic_command,
        export_clinic_command,
    )
    for command in commands:
        _audited_as_cli(command)
        app.cli.add_command(command)
