"""Making an API key on AWS without the key ever being printed, logged or passed around.

On AWS a key is made by a one-off ECS task, whose output goes to CloudWatch Logs and whose
command line and environment go into CloudTrail's RunTask record. So the task is given only the
owner and the name of a Secrets Manager secret; it generates the key itself, writes it into a
new secret of that name, records its hash, and prints the secret's ARN and the key's public id.
Whoever is to hand the key over reads it from the secret (`aws secretsmanager
get-secret-value`), which CloudTrail records without the value.

Order: the secret first, then the database. Should the database refuse, the secret is deleted
again (without a recovery window: it holds a key that never worked), so no secret ever holds a
key the API does not know. A secret name that exists already is refused before anything is made:
an existing secret is never overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError

from service.aws import secrets_manager_client
from service.config import DatabaseSettings
from service.keys import Sessions, check_owner, ensure_key, generate_key, parse_key

log = logging.getLogger(__name__)


class SecretExists(ValueError):
    """The secret named for the new key exists already; it is left as it was."""


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    owner: str
    secret_arn: str


async def create_key_in_secret(
    sessions: Sessions, settings: DatabaseSettings, *, owner: str, secret_name: str
) -> StoredKey:
    """A new key for `owner`, stored only in a new secret `secret_name` (and as a hash)."""
    check_owner(owner)  # before anything is made
    plaintext = generate_key()
    key_id = parse_key(plaintext).key_id
    async with secrets_manager_client(settings) as secrets:
        try:
            created = await secrets.create_secret(
                Name=secret_name,
                SecretString=plaintext,
                Description=f"picforge API key {key_id} of {owner}",
                Tags=[
                    {"Key": "picforge:owner", "Value": owner},
                    {"Key": "picforge:key-id", "Value": key_id},
                ],
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceExistsException":
                raise SecretExists(f"secret {secret_name} exists already; name a new one") from None
            raise
        arn: str = created["ARN"]
        try:
            await ensure_key(sessions, owner=owner, plaintext=plaintext)
        except BaseException:
            log.warning("key %s not recorded; deleting secret %s again", key_id, arn)
            await secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
            raise
    log.info("API key %s of %s stored in secret %s", key_id, owner, arn)
    return StoredKey(key_id=key_id, owner=owner, secret_arn=arn)
