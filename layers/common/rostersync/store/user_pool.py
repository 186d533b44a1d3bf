"""The stack's Cognito user pool (when it has one): the admins' accounts, the operators' group, and the
delivery API's machine clients (app clients with a secret and the client-credentials grant).

The local stack's moto answers the same calls (local/rostersync_local/identity_provider.py)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import boto3

CONSOLE_CLIENT_NAME = "rostersync-console"  # template.yaml: AdminUserPoolClient
OPERATORS_GROUP = "rostersync-operators"  # template.yaml: OperatorsGroup
DELIVERY_SCOPE = "rosters/read"  # template.yaml: DeliveryResourceServer (identifier rosters, scope read)
# Cognito's ClientName: at most 128 characters of [\w\s+=,.@-].
_CLIENT_NAME_REFUSED = re.compile(r"[^\w\s+=,.@-]")
CLIENT_NAME_LENGTH = 128


@dataclass(frozen=True)
class MachineCredentials:
    client_id: str
    client_secret: str = field(repr=False)  # shown to the operator once, never logged


def machine_client_name(tenant_id: str, name: str) -> str:
    """The app client's name in the pool: its tenant first, so the pool's console tells them apart."""
    return _CLIENT_NAME_REFUSED.sub("-", f"rostersync-client {tenant_id} {name}")[:CLIENT_NAME_LENGTH]


class UserPool:
    def __init__(self, pool_id: str, client: Any = None) -> None:
        self.pool_id = pool_id
        self._cognito = client or boto3.client("cognito-idp")

    def console_client_id(self) -> str | None:
        """The settings page's app client (found by name: the template cannot pass its id to the function
        without a circular dependency)."""
        pages = self._cognito.get_paginator("list_user_pool_clients").paginate(UserPoolId=self.pool_id)
        for page in pages:
            for client in page["UserPoolClients"]:
                if client["ClientName"] == CONSOLE_CLIENT_NAME:
                    return str(client["ClientId"])
        return None

    def subject_of(self, email: str) -> str | None:
        try:
            found = self._cognito.admin_get_user(UserPoolId=self.pool_id, Username=email)
        except self._cognito.exceptions.UserNotFoundException:
            return None
        return next(str(item["Value"]) for item in found["UserAttributes"] if item["Name"] == "sub")

    def invite(self, email: str, password: str | None) -> str:
        """Create the user (or find them) and return their subject. Without a password Cognito mails a
        temporary one; with one (the local stack, which sends no mail) it is set as the user's own."""
        subject = self.subject_of(email)
        if subject is None:
            self._cognito.admin_create_user(
                UserPoolId=self.pool_id,
                Username=email,
                UserAttributes=[
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                ],
                DesiredDeliveryMediums=["EMAIL"],
                **({"MessageAction": "SUPPRESS"} if password else {}),
            )
            subject = self.subject_of(email)
            assert subject is not None
        if password:
            self._cognito.admin_set_user_password(
                UserPoolId=self.pool_id, Username=email, Password=password, Permanent=True
            )
        return subject

    def set_operator(self, email: str, operator: bool) -> None:
        change = (
            self._cognito.admin_add_user_to_group if operator else self._cognito.admin_remove_user_from_group
        )
        change(UserPoolId=self.pool_id, Username=email, GroupName=OPERATORS_GROUP)

    def sign_out_everywhere(self, email: str) -> None:
        """Revoke the user's refresh tokens (their access tokens run out within the hour; rostersync's
        own checks refuse them at once)."""
        self._cognito.admin_user_global_sign_out(UserPoolId=self.pool_id, Username=email)

    def create_machine_client(self, name: str) -> MachineCredentials:
        """A confidential app client that may only take client-credentials tokens with the delivery scope."""
        created = self._cognito.create_user_pool_client(
            UserPoolId=self.pool_id,
            ClientName=name,
            GenerateSecret=True,
            AllowedOAuthFlows=["client_credentials"],
            AllowedOAuthScopes=[DELIVERY_SCOPE],
            AllowedOAuthFlowsUserPoolClient=True,
        )["UserPoolClient"]
        return MachineCredentials(str(created["ClientId"]), str(created["ClientSecret"]))

    def delete_app_client(self, client_id: str) -> None:
        """Delete the app client; one already gone is not an error (a removal can be repeated)."""
        with contextlib.suppress(self._cognito.exceptions.ResourceNotFoundException):
            self._cognito.delete_user_pool_client(UserPoolId=self.pool_id, ClientId=client_id)
