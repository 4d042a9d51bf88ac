"""Least privilege, executed: the task roles' policies, read out of the Terraform, are given to
IAM users in an emulator that enforces IAM, and the API and the worker run the real flow with
those credentials. The flow must pass, and what each role must not do must be denied."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from devstack.emulator import Emulator
from devstack.ports import free_port, wait_for_port
from devstack.provision import Stack, provision
from tests.cdn import create_distribution
from tests.conftest import REPO_ROOT, TESTDATA

from .policies import ENVIRONMENT, role_policy_documents

ROLES = ("api", "worker")
PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]


@pytest.fixture(scope="module")
def iam_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log_path = tmp_path_factory.mktemp("ministack-iam") / "ministack.log"
    with Emulator(enforce_iam=True, log_path=log_path) as running:
        yield running


@pytest.fixture
def iam_stack(iam_emulator: Emulator) -> Stack:
    """Provisioned by the account's root credentials, as Terraform would."""
    iam_emulator.reset()
    return provision(iam_emulator.url)


def client(service: str, emulator: Emulator, credentials: dict[str, str] | None = None) -> Any:
    keys = credentials or {}
    return boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id=keys.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=keys.get("AWS_SECRET_ACCESS_KEY"),
    )


def role_credentials(
    emulator: Emulator, stack: Stack, role: str, distribution_arn: str | None = None
) -> dict[str, str]:
    """An IAM user holding exactly the role's policies from the Terraform; with the CDN's
    policies too when `distribution_arn` names it."""
    iam = client("iam", emulator)
    user = f"picforge-{role}"
    iam.create_user(UserName=user)
    documents = role_policy_documents(
        role,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
        queue_arn=stack.queue_arn,
        distribution_arn=distribution_arn,
    )
    for number, document in enumerate(documents):
        iam.put_user_policy(
            UserName=user, PolicyName=f"{role}-{number}", PolicyDocument=json.dumps(document)
        )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


@pytest.fixture
def distribution(iam_emulator: Emulator, iam_stack: Stack) -> dict[str, str]:
    """The CDN in front of the renditions bucket, made by the account's root credentials."""
    cloudfront = client("cloudfront", iam_emulator)
    return create_distribution(cloudfront, iam_stack.names.renditions_bucket)


@pytest.fixture
def credentials(
    iam_emulator: Emulator, iam_stack: Stack, distribution: dict[str, str]
) -> dict[str, dict[str, str]]:
    return {
        role: role_credentials(iam_emulator, iam_stack, role, distribution["ARN"]) for role in ROLES
    }


def process_environment(
    emulator: Emulator, stack: Stack, database_url: str, credentials: dict[str, str]
) -> dict[str, str]:
    return {
        **os.environ,
        **credentials,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
        "PICFORGE_WORKER_WAIT_S": "1",
        "PICFORGE_WORKER_RENDER_PROCESSES": "1",
        "PICFORGE_WORKER_METRICS_PORT": "0",
    }


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=output, stderr=output)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def versions(emulator: Emulator, bucket: str) -> list[str]:
    """Every version and delete marker in the (versioned) bucket."""
    listing = client("s3", emulator).list_object_versions(Bucket=bucket)
    entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    return [f"{entry['Key']}@{entry['VersionId']}" for entry in entries]


def wait_until_finished(http: httpx.Client, image_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record: dict[str, Any] = http.get(f"/v1/images/{image_id}").json()
        if record["status"] in ("ready", "failed"):
            return record
        time.sleep(0.2)
    raise AssertionError(f"image {image_id} never finished")


def run_client_flow(http: httpx.Client, image: bytes) -> dict[str, Any]:
    """Every route that touches AWS: readiness, upload, renditions, reprocess, delete."""
    assert http.get("/readyz").status_code == 200
    created = http.post(
        "/v1/images",
        json={"filename": "h.png", "content_type": "image/png", "size_bytes": len(image)},
    ).json()
    ticket = created["upload"]
    sent = httpx.post(ticket["url"], data=ticket["fields"], files={"file": ("h", image)})
    assert sent.status_code == 204, sent.text
    record = wait_until_finished(http, created["id"])
    assert record["status"] == "ready", record
    for rendition in record["renditions"]:
        assert httpx.get(rendition["url"]).status_code == 200
    # The ticket used again: the worker removes the later version, by its version id.
    again = httpx.post(ticket["url"], data=ticket["fields"], files={"file": ("h", b"other")})
    assert again.status_code == 204, again.text
    assert http.post(f"/v1/images/{created['id']}/reprocess").status_code == 202
    return record


def run_multipart_flow(http: httpx.Client, image: bytes) -> None:
    """The multipart routes: sign a part, send it, list, complete to `ready`; then abort one."""
    body = {"filename": "h.jpg", "content_type": "image/jpeg", "size_bytes": len(image)}
    created = http.post("/v1/images", json={**body, "upload_method": "multipart"}).json()
    path = f"/v1/images/{created['id']}/multipart/{created['upload']['upload_id']}"
    [part] = http.post(f"{path}/parts", json={"part_numbers": [1]}).json()["parts"]
    sent = httpx.put(part["url"], content=image)
    assert sent.status_code == 200, sent.text
    [listed] = http.get(f"{path}/parts").json()["parts"]
    assert listed["size_bytes"] == len(image)
    parts = [{"part_number": 1, "etag": sent.headers["ETag"]}]
    completed = http.post(f"{path}/complete", json={"parts": parts})
    assert completed.status_code == 200, completed.text
    record = wait_until_finished(http, created["id"])
    assert record["status"] == "ready", record
    assert http.delete(f"/v1/images/{created['id']}").status_code == 204

    abandoned = http.post("/v1/images", json={**body, "upload_method": "multipart"}).json()
    path = f"/v1/images/{abandoned['id']}/multipart/{abandoned['upload']['upload_id']}"
    [part] = http.post(f"{path}/parts", json={"part_numbers": [1]}).json()["parts"]
    assert httpx.put(part["url"], content=image).status_code == 200
    assert http.delete(path).status_code == 204


def create_api_key(env: dict[str, str]) -> str:
    created = subprocess.run(
        [*PICFORGE, "keys", "create", "least-privilege"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return created.stdout.splitlines()[-1]


def test_least_privilege_roles_run_the_whole_flow(
    iam_emulator: Emulator,
    iam_stack: Stack,
    credentials: dict[str, dict[str, str]],
    distribution: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    api_env = process_environment(iam_emulator, iam_stack, database_url, credentials["api"])
    api_env["PICFORGE_CDN_DISTRIBUTION_ID"] = distribution["Id"]
    api = start([*PICFORGE, "serve", "--port", str(port)], api_env, tmp_path / "api.log")
    worker = start(
        [sys.executable, "-m", "worker"],
        process_environment(iam_emulator, iam_stack, database_url, credentials["worker"]),
        tmp_path / "worker.log",
    )
    headers = {"Authorization": f"Bearer {create_api_key(api_env)}"}
    try:
        wait_for_port(port, timeout_s=30, is_alive=lambda: api.poll() is None)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
            record = run_client_flow(http, (TESTDATA / "good" / "hopper.png").read_bytes())
            run_multipart_flow(http, (TESTDATA / "good" / "hopper.jpg").read_bytes())
            time.sleep(1)  # the reprocess job, handled by the worker with its own role
            assert http.delete(f"/v1/images/{record['id']}").status_code == 204
    finally:
        exit_codes = [stop(api), stop(worker)]
    logs = {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert exit_codes == [-signal.SIGTERM, 0], logs
    assert "AccessDenied" not in logs["api.log"] + logs["worker.log"], logs
    assert "later upload" in logs["worker.log"], logs
    assert "cdn invalidation" in logs["api.log"], logs
    assert versions(iam_emulator, iam_stack.names.uploads_bucket) == []
    assert versions(iam_emulator, iam_stack.names.renditions_bucket) == []


def denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        return code in {"AccessDenied", "AccessDeniedException"}
    return False


@pytest.fixture
def outsiders(iam_emulator: Emulator) -> dict[str, str]:
    """A bucket and a queue in the same account that picforge has no business touching."""
    client("s3", iam_emulator).create_bucket(Bucket="someone-elses-bucket")
    url = client("sqs", iam_emulator).create_queue(QueueName="someone-elses-queue")["QueueUrl"]
    return {"bucket": "someone-elses-bucket", "queue_url": url}


def test_api_role_cannot_read_originals_or_write_renditions(
    iam_emulator: Emulator, iam_stack: Stack, credentials: dict[str, dict[str, str]]
) -> None:
    s3 = client("s3", iam_emulator, credentials["api"])
    names = iam_stack.names

    assert denied(s3.get_object, Bucket=names.uploads_bucket, Key="originals/x")
    assert denied(
        s3.put_object, Bucket=names.renditions_bucket, Key="renditions/x/a.webp", Body=b"x"
    )
    assert denied(s3.put_object, Bucket=names.uploads_bucket, Key="elsewhere/x", Body=b"x")


@pytest.mark.parametrize("role", ROLES)
def test_role_lists_and_erases_versions_only_under_its_prefixes(
    iam_emulator: Emulator, iam_stack: Stack, credentials: dict[str, dict[str, str]], role: str
) -> None:
    s3 = client("s3", iam_emulator, credentials[role])
    names = iam_stack.names

    for bucket, prefix in (
        (names.uploads_bucket, "originals/"),
        (names.renditions_bucket, "renditions/"),
    ):
        assert not denied(s3.list_object_versions, Bucket=bucket, Prefix=prefix)
        assert denied(s3.list_object_versions, Bucket=bucket, Prefix="elsewhere/")
        assert denied(s3.list_object_versions, Bucket=bucket)
        assert denied(s3.delete_object, Bucket=bucket, Key="elsewhere/x", VersionId="v1")


def test_api_role_cannot_consume_the_queue(
    iam_emulator: Emulator, iam_stack: Stack, credentials: dict[str, dict[str, str]]
) -> None:
    sqs = client("sqs", iam_emulator, credentials["api"])

    assert denied(sqs.receive_message, QueueUrl=iam_stack.queue_url)


def test_worker_role_cannot_delete_or_replace_originals(
    iam_emulator: Emulator, iam_stack: Stack, credentials: dict[str, dict[str, str]]
) -> None:
    s3 = client("s3", iam_emulator, credentials["worker"])
    names = iam_stack.names

    assert denied(s3.delete_object, Bucket=names.uploads_bucket, Key="originals/x")
    assert denied(s3.put_object, Bucket=names.uploads_bucket, Key="originals/x", Body=b"x")
    assert denied(s3.get_object, Bucket=names.renditions_bucket, Key="renditions/x/a.webp")


@pytest.mark.parametrize("role", ROLES)
def test_role_aborts_multipart_uploads_only_under_originals(
    iam_emulator: Emulator, iam_stack: Stack, credentials: dict[str, dict[str, str]], role: str
) -> None:
    """The API lists parts and aborts; the worker's sweep aborts, and lists nothing."""
    admin = client("s3", iam_emulator)
    s3 = client("s3", iam_emulator, credentials[role])
    bucket = iam_stack.names.uploads_bucket

    def open_upload(key: str) -> str:
        upload_id: str = admin.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        return upload_id

    original, elsewhere = open_upload("originals/x"), open_upload("elsewhere/x")
    lists = not denied(s3.list_parts, Bucket=bucket, Key="originals/x", UploadId=original)
    assert lists == (role == "api")
    assert denied(s3.list_parts, Bucket=bucket, Key="elsewhere/x", UploadId=elsewhere)
    assert denied(s3.abort_multipart_upload, Bucket=bucket, Key="elsewhere/x", UploadId=elsewhere)
    assert not denied(
        s3.abort_multipart_upload, Bucket=bucket, Key="originals/x", UploadId=original
    )
    assert [u["Key"] for u in admin.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [
        "elsewhere/x"
    ]
    admin.abort_multipart_upload(Bucket=bucket, Key="elsewhere/x", UploadId=elsewhere)


@pytest.mark.parametrize("role", ROLES)
def test_role_cannot_touch_another_bucket_or_queue(
    iam_emulator: Emulator,
    credentials: dict[str, dict[str, str]],
    outsiders: dict[str, str],
    role: str,
) -> None:
    s3 = client("s3", iam_emulator, credentials[role])
    sqs = client("sqs", iam_emulator, credentials[role])

    assert denied(s3.put_object, Bucket=outsiders["bucket"], Key="originals/x", Body=b"x")
    assert denied(s3.get_object, Bucket=outsiders["bucket"], Key="renditions/x")
    assert denied(sqs.send_message, QueueUrl=outsiders["queue_url"], MessageBody="{}")
    assert denied(sqs.receive_message, QueueUrl=outsiders["queue_url"])


def test_api_role_invalidates_only_its_distribution(
    iam_emulator: Emulator,
    iam_stack: Stack,
    credentials: dict[str, dict[str, str]],
    distribution: dict[str, str],
) -> None:
    other = create_distribution(client("cloudfront", iam_emulator), "someone-elses-bucket")
    batch = {"Paths": {"Quantity": 1, "Items": ["/renditions/x/*"]}, "CallerReference": "t"}

    def invalidation_denied(role: str, distribution_id: str) -> bool:
        cloudfront = client("cloudfront", iam_emulator, credentials[role])
        return denied(
            cloudfront.create_invalidation, DistributionId=distribution_id, InvalidationBatch=batch
        )

    assert invalidation_denied("api", other["Id"])
    assert invalidation_denied("worker", other["Id"])
    assert not invalidation_denied("api", distribution["Id"])
    assert invalidation_denied("worker", distribution["Id"])


def test_keys_role_stores_a_new_key_under_its_prefix_and_nothing_else(
    iam_emulator: Emulator, iam_stack: Stack, database_url: str
) -> None:
    """The keys task's real command, with the keys role's policies only; then what it may not do."""
    keys_role = role_credentials(iam_emulator, iam_stack, "keys")
    prefix = f"picforge-{ENVIRONMENT}/api-keys/"
    env = process_environment(iam_emulator, iam_stack, database_url, keys_role)
    task = subprocess.run(
        [*PICFORGE, "keys", "create", "least-privilege", "--into-secret", f"{prefix}lp-1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert task.returncode == 0, task.stderr
    arn = task.stdout.splitlines()[-1]

    secrets = client("secretsmanager", iam_emulator, keys_role)
    assert denied(secrets.get_secret_value, SecretId=arn), "the task never reads a key back"
    assert denied(secrets.create_secret, Name="someone-else/secret", SecretString="x")
    assert denied(secrets.put_secret_value, SecretId=arn, SecretString="overwritten")
    root = client("secretsmanager", iam_emulator)
    assert root.get_secret_value(SecretId=arn)["SecretString"].startswith("pf_")
