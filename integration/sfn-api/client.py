"""Drive piflow serve's Step Functions API with real AWS clients.

Usage: client.py ENDPOINT CHECK
Each CHECK prints one JSON object on stdout (what the client got back), so
the Rust tests (tests/it/sfn_api.rs) assert on it. Credentials come from the
standard AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION), as for any boto3 program.
"""

import datetime
import json
import sys
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

VALID = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
BROKEN = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Nxt": "B", "End": True}},
}


def client(endpoint, **config):
    return boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def error_of(call):
    try:
        return {"ok": call()}
    except botocore.exceptions.ClientError as e:
        return {
            "error": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }


def signed_request(endpoint, body, when=None, target="ValidateStateMachineDefinition"):
    """A request signed as botocore signs it."""
    session = boto3.session.Session()
    creds = session.get_credentials()
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions." + target,
        },
    )
    if when is None:
        SigV4Auth(creds, "states", session.region_name).add_auth(req)
    else:
        # botocore reads its clock through get_current_datetime (naive UTC).
        naive = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        with mock.patch(
            "botocore.auth.get_current_datetime", lambda remove_tzinfo=True: naive
        ):
            SigV4Auth(creds, "states", session.region_name).add_auth(req)
    return req


def send(req, body=None):
    """Send a signed request as it is (or with another body)."""
    r = urllib.request.Request(
        req.url,
        data=req.body if body is None else body,
        headers=dict(req.headers.items()),
        method="POST",
    )
    try:
        with urllib.request.urlopen(r) as res:
            return {"status": res.status, "body": json.loads(res.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


def main():
    endpoint, check = sys.argv[1], sys.argv[2]
    body = json.dumps({"definition": json.dumps(VALID)}).encode()
    if check == "validate-ok":
        out = error_of(
            lambda: client(endpoint).validate_state_machine_definition(
                definition=json.dumps(VALID)
            )
        )
    elif check == "validate-broken":
        out = error_of(
            lambda: client(endpoint).validate_state_machine_definition(
                definition=json.dumps(BROKEN), severity="WARNING", maxResults=100
            )
        )
    elif check == "unsigned":
        out = error_of(
            lambda: client(endpoint, signature_version=botocore.UNSIGNED)
            .validate_state_machine_definition(definition=json.dumps(VALID))
        )
    elif check == "unknown-operation":
        out = error_of(lambda: client(endpoint).list_activities())
    elif check == "stale":
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        out = send(signed_request(endpoint, body, when=old))
    elif check == "replay":
        # A read may be sent again; a change may not.
        read = signed_request(endpoint, body)
        change = signed_request(
            endpoint,
            json.dumps({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"}).encode(),
            target="StartExecution",
        )
        out = {
            "read": [send(read), send(read)],
            "change": [send(change), send(change)],
        }
    elif check == "tampered":
        req = signed_request(endpoint, body)
        out = send(req, body=body.replace(b"Pass", b"Wait"))
    else:
        raise SystemExit(f"unknown check {check}")
    json.dump(out, sys.stdout, default=str)
    print()


if __name__ == "__main__":
    main()
