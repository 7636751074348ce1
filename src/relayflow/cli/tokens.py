"""``relayflow tokens``: API tokens of the server (create, list, revoke). A token's secret is
printed once, at creation; the store keeps only its hash."""

from __future__ import annotations

from typing import Annotated

import typer

from relayflow.cli.common import StoreOption, open_store, store_for_writing
from relayflow.cli.output import UserError, console, local_time, note

app = typer.Typer(
    help="API tokens of `relayflow serve`: create, list, revoke.", no_args_is_help=True
)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the token.", show_default=False)],
    roles: Annotated[
        list[str],
        typer.Option(
            "--role",
            "-r",
            help="WORKFLOW=ROLE (viewer, operator, reviewer, admin); '*' is every workflow; "
            "add +sensitive to read sensitive agents' outputs (support=viewer+sensitive), "
            "+code to let an admin of one workflow register versions that run code "
            "(support=admin+code; '*=admin' has it). Repeat for more.",
            show_default=False,
        ),
    ],
    team: Annotated[
        str | None,
        typer.Option("--team", help="The team budgets charge.", show_default=False),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Create a token and print it (once: it cannot be shown again)."""
    from relayflow.govern.access import TokenStore, parse_grant
    from relayflow.store.sql_store import SqlStore

    try:
        grants = [parse_grant(text) for text in roles]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    writer = SqlStore(store_for_writing(store))
    try:
        secret, token = TokenStore(writer.engine).create(name, grants, team=team)
    finally:
        writer.close()
    note(f"token {token.token_id} ({name}) created; it is shown once, keep it safe:")
    typer.echo(secret)


@app.command("list")
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="Show revoked tokens too.")] = False,
    store: StoreOption = None,
) -> None:
    """Tokens and their roles (never their secrets)."""
    from rich.table import Table

    from relayflow.govern.access import TokenStore

    reader = open_store(store)
    try:
        tokens = TokenStore(reader.engine).list_tokens(include_revoked=all_)
    finally:
        reader.close()
    out = console()
    if not tokens:
        out.print("no tokens: create one with `relayflow tokens create NAME --role '*=admin'`")
        return
    table = Table()
    for column in ("id", "name", "team", "roles", "created", "revoked"):
        table.add_column(column)
    for t in tokens:
        roles = ", ".join(str(g) for g in t.grants)
        table.add_row(
            t.token_id,
            t.name,
            t.team or "-",
            roles,
            local_time(t.created),
            local_time(t.revoked) if t.revoked else "-",
        )
    out.print(table)


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="A token's id, or a name (all its tokens).")],
    store: StoreOption = None,
) -> None:
    """Revoke a token at once: the server refuses it from the next request on."""
    from relayflow.govern.access import TokenStore

    reader = open_store(store)
    try:
        revoked = TokenStore(reader.engine).revoke(token)
    finally:
        reader.close()
    if not revoked:
        raise UserError(f"no live token {token!r}; see `relayflow tokens list`")
    for t in revoked:
        note(f"revoked token {t.token_id} ({t.name})")
