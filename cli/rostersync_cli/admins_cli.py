"""`rostersync admin invite|list|remove|operator`: who signs in to the settings page, for which tenant."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from rostersync.memberships import grant_operator, invite_admin, remove_admin, revoke_operator
from rostersync.store.user_pool import UserPool
from rostersync_cli.stack import StackBinding

Bind = Callable[[argparse.Namespace], StackBinding]


class AdminsCliError(RuntimeError):
    pass


def _pool(binding: StackBinding) -> UserPool | None:
    pool_id = binding.outputs.get("AdminUserPoolId")
    return UserPool(pool_id) if pool_id else None


def _password(arguments: argparse.Namespace, binding: StackBinding) -> str | None:
    """A password only for the local stack, which mails nothing; a deployed pool mails a temporary one."""
    if arguments.password and binding.control_url is None:
        raise AdminsCliError(
            "--password is for the local stack: a deployed stack's Cognito mails a temporary password"
        )
    if binding.control_url is not None and _pool(binding) is not None and not arguments.password:
        raise AdminsCliError("the local stack sends no mail: give --password (or --password - to type it)")
    if arguments.password == "-":  # noqa: S105 - the "read it from stdin" marker, not a password
        return getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    return str(arguments.password) if arguments.password else None


def _who() -> str:
    return f"{getpass.getuser()} (rostersync CLI)"


def cmd_invite(arguments: argparse.Namespace, bind: Bind) -> None:
    binding = bind(arguments)
    membership = invite_admin(
        binding.services,
        _pool(binding),
        arguments.tenant,
        arguments.email,
        password=_password(arguments, binding),
        subject=arguments.subject,
        added_by=_who(),
    )
    if _pool(binding) is not None and binding.control_url is None:
        print(f"Cognito mailed {membership.email} a temporary password.", file=sys.stderr)
    print(f"{binding.api_url}/console")


def cmd_list(arguments: argparse.Namespace, bind: Bind) -> None:
    members = bind(arguments).services.table.admins_of(arguments.tenant)
    print(json.dumps([member.model_dump(mode="json", exclude={"tenant_id"}) for member in members], indent=2))


def cmd_remove(arguments: argparse.Namespace, bind: Bind) -> None:
    removed = remove_admin(bind(arguments).services, arguments.tenant, arguments.email)
    print(f"{removed.email} is no longer an admin of {arguments.tenant}", file=sys.stderr)


def cmd_operator(arguments: argparse.Namespace, bind: Bind) -> None:
    binding = bind(arguments)
    if arguments.change == "grant":
        grant_operator(
            binding.services,
            _pool(binding),
            arguments.email,
            password=_password(arguments, binding),
            subject=arguments.subject,
            added_by=_who(),
        )
        print(f"{binding.api_url}/console")
    else:
        revoke_operator(binding.services, _pool(binding), arguments.email)
        print(f"{arguments.email} is no longer an operator", file=sys.stderr)


def add_admin_commands(admin: Any, bind: Bind) -> None:
    """The `admin` group's commands for accounts and memberships."""

    def account_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--password", help="local stack only: set this password (`-` reads it from stdin)"
        )
        parser.add_argument("--subject", help="with an institution's IdP: the person's subject (`sub`) there")

    invite = admin.add_parser("invite", help="make someone an admin of a tenant; prints the page's URL")
    invite.add_argument("--tenant", required=True)
    account_arguments(invite)
    invite.set_defaults(handler=lambda arguments: cmd_invite(arguments, bind))
    listing = admin.add_parser("list", help="a tenant's admins (JSON)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(handler=lambda arguments: cmd_list(arguments, bind))
    remove = admin.add_parser("remove", help="end an admin's membership (refused from their next request)")
    remove.add_argument("--tenant", required=True)
    remove.add_argument("--email", required=True)
    remove.set_defaults(handler=lambda arguments: cmd_remove(arguments, bind))
    operator = admin.add_parser("operator", help="grant or revoke an operator (operators create tenants)")
    operator.add_argument("change", choices=["grant", "revoke"])
    account_arguments(operator)
    operator.set_defaults(handler=lambda arguments: cmd_operator(arguments, bind))
