"""Send TestState requests to piflow serve with boto3, as a user would.

Usage: test_state_corpus.py ENDPOINT REQUESTS ANSWERS
REQUESTS is a JSON object {case name: TestState request body}; ANSWERS is
written as {case name: what boto3 returned (without ResponseMetadata), or
{"__error": code, "message": …}}. boto3 parses every answer with the
service model (members the model lacks are dropped), so what the Rust test
(tests/it/sfn_api.rs) compares is what an SDK user sees. Credentials come
from the standard AWS environment variables.
"""

import json
import sys

import boto3
import botocore
from botocore.config import Config


def main():
    endpoint, requests, answers = sys.argv[1], sys.argv[2], sys.argv[3]
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        # TestState goes to host "sync-" + the endpoint's host unless the
        # prefix is turned off (docs/sfn-api.md).
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )
    with open(requests) as f:
        cases = json.load(f)
    out = {}
    for name, body in cases.items():
        try:
            r = sfn.test_state(**body)
            r.pop("ResponseMetadata", None)
            out[name] = r
        except botocore.exceptions.ClientError as e:
            out[name] = {
                "__error": e.response["Error"]["Code"],
                "message": e.response["Error"].get("Message", ""),
            }
        except botocore.exceptions.ParamValidationError as e:
            out[name] = {"__error": "ParamValidationError", "message": str(e)}
    with open(answers, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
