#!/usr/bin/env python3
"""The built Lambda binaries under a Lambda Runtime API emulator.

Runs the `bootstrap` files that the test command's `sam build` left in
.aws-sam/build-<architecture> against `cargo lambda watch --only-lambda-apis`
(the Runtime API emulator), with DynamoDB served by `sessions serve` (its
embedded emulator, table created). An arm64 bootstrap runs under
qemu-aarch64-static with Debian's arm64 C library.

  * glibc: each bootstrap needs no glibc newer than provided.al2023's;
  * panic: each bootstrap was built with panic = "unwind" (cargo-lambda's
    default is abort), so the runtime answers a panic as a function error;
  * session-api: create, read, patch, delete, read again (404), with the
    events from events/ (the id filled in);
  * session-gc: events/gc-scheduled.json against a table seeded with live,
    expired, and expired-but-locked sessions; only the expired unlocked ones
    may go;
  * the operator commands (`sessions create-table`, `sessions gc`, a bad
    option) against the same table (once, on x86_64: they are not Lambda code).

Run from the repository root with .venv's python (boto3 comes with moto).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import boto3

from local_stack import EVENTS, FUNCTIONS, SESSIONS_BIN, Stack, build_dir, check, check_glibc, check_no_contract, \
    check_panic_unwinds, invoke_http, runner

# Session ids the events name; a run replaces them with the session it made.
EVENT_IDS = ["Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe", "De1eteMeDe1eteMeDe1eteMeDe1eteMe"]


def event(name, session_id=None):
    """events/<name> as bytes, naming `session_id` instead of the fixed ids."""
    text = (EVENTS / name).read_text()
    for fixed in EVENT_IDS if session_id else []:
        text = text.replace(fixed, session_id)
    return text.encode()


def check_api(invoke):
    print("session-api under the Runtime API emulator:")
    first = invoke("session-api", event("api-read-not-found.json"))
    check(first["statusCode"] == 404, "an unknown id is 404")
    created = invoke("session-api", event("api-create.json"))
    check(created["statusCode"] == 201, "create is 201")
    session_id = json.loads(created["body"])["id"]
    check(any(c.startswith(f"PHPSESSID={session_id}") for c in created.get("cookies", [])),
          "create sets the session cookie")
    read = invoke("session-api", event("api-read.json", session_id))
    check(read["statusCode"] == 200 and json.loads(read["body"])["data"]["user.name"] == "jeremy",
          "read returns the data")
    patched = invoke("session-api", event("api-patch.json", session_id))
    check(patched["statusCode"] == 200
          and json.loads(patched["body"])["data"] == {"user.name": "jeremy", "cart": {"items": 2}}, "patch merges")
    deleted = invoke("session-api", event("api-delete.json", session_id))
    check(deleted["statusCode"] == 204, "delete is 204")
    gone = invoke("session-api", event("api-read.json", session_id))
    check(gone["statusCode"] == 404, "a deleted session reads as 404")


def check_app(invoke):
    print("example-app under the Runtime API emulator:")
    # The event's cookie names a session this table does not hold.
    counted = invoke("example-app", event("app-counter.json"))
    check(counted["statusCode"] == 200 and json.loads(counted["body"])["count"] == 1,
          "an unknown cookie is a new visitor: the counter is 1, in a new session")
    check(any(c.startswith("PHPSESSID=") for c in counted.get("cookies", [])), "with its cookie")


def seed_gc_table(dynamodb, now):
    """A live, two expired and one expired-but-locked session; their names."""
    seeded = {
        "live": {"expires": now + 600},
        "expired1": {"expires": now - 60},
        "expired2": {"expires": now - 60},
        "expired-locked": {"expires": now - 60, "lock": 1, "lock_token": "tokentokentokentoken",
                           "lock_until_ms": (now + 300) * 1000},
    }
    for name, attrs in seeded.items():
        item = {"id": {"S": f"PHPSESSID_{name}-0000000000000000000"}, "data": {"S": "{}"}}
        for key, value in attrs.items():
            item[key] = {"S": value} if isinstance(value, str) else {"N": str(value)}
        dynamodb.put_item(TableName="sessions", Item=item)
    return seeded


def check_gc(invoke, dynamodb):
    print("session-gc under the Runtime API emulator:")
    seeded = seed_gc_table(dynamodb, int(time.time()))
    outcome = invoke("session-gc", event("gc-scheduled.json"))
    check(outcome.get("outcome") == "swept" and outcome.get("stopped") == "finished", f"the sweep finished: {outcome}")
    check(outcome["deleted"] == 2 and outcome["skipped"] == 1,
          "it deleted the two expired sessions and skipped the locked one")
    keys = {i["id"]["S"] for i in dynamodb.scan(TableName="sessions")["Items"]}
    for name in seeded:
        key = f"PHPSESSID_{name}-0000000000000000000"
        check((key in keys) == (name in ("live", "expired-locked")), f"{name} {'kept' if key in keys else 'gone'}")


def json_lines(log):
    """The JSON object lines of a function's log."""
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def emf_lines(log):
    """The Embedded Metric Format lines a function wrote to its log."""
    return [line for line in json_lines(log) if "_aws" in line]


def check_metrics(logs):
    print("metrics lines (EMF) in the functions' logs:")
    api = emf_lines(logs / "session-api.log")
    routes = {line.get("Route") for line in api}
    check({"POST /sessions", "GET /sessions/{id}", "PATCH /sessions/{id}", "DELETE /sessions/{id}"} <= routes,
          f"session-api wrote one per request, by route template: {sorted(map(str, routes))}")
    check(all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DynamoDbSessions" for line in api),
          "in the DynamoDbSessions namespace")
    check(api and all(line.get("requestId") for line in api), "each names its invocation (requestId)")
    # Every log line written during an invocation names it (the runtime's span).
    logged = [line for line in json_lines(logs / "session-api.log") if line.get("fields", {}).get("message") == "request"]
    check(logged and all(any("requestId" in span for span in line.get("spans", [])) for line in logged),
          f"each of session-api's {len(logged)} request log lines carries its invocation's requestId")
    sweeps = [line for line in emf_lines(logs / "session-gc.log") if "SweepDeleted" in line]
    check(len(sweeps) == 1 and sweeps[0]["SweepDeleted"] == 2 and sweeps[0]["SweepFinished"] == 1,
          f"session-gc wrote the sweep's: {sweeps}")


def check_operator_commands(dynamodb, dynamodb_url, sessions_bin):
    print("operator commands against the same table:")
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url, "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1", "RUST_LOG": "warn"}

    def run(*argv, **extra):
        return subprocess.run([str(sessions_bin), *argv], env={**env, **extra}, capture_output=True, text=True,
                              timeout=60)

    created = run("create-table")
    check(created.returncode == 0 and "AlreadyExisted" in created.stdout, f"sessions create-table: {created.stdout.strip()}")
    dynamodb.put_item(TableName="sessions", Item={"id": {"S": "PHPSESSID_expired3-0000000000000000000"},
                                                  "expires": {"N": str(int(time.time()) - 60)}})
    swept = run("gc")
    report = json.loads(swept.stdout) if swept.returncode == 0 else {}
    check(report.get("deleted") == 1 and report.get("stopped") == "finished", f"sessions gc: {swept.stdout.strip()}")
    bad = run("gc", GC_BATCH_SIZE="26")
    check(bad.returncode != 0 and "GC_BATCH_SIZE" in bad.stderr and "26" in bad.stderr,
          f"a bad option stops it, naming the variable: {bad.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", choices=["x86_64", "arm64"], default="x86_64")
    parser.add_argument("--sessions-bin", default=str(SESSIONS_BIN))
    args = parser.parse_args()
    binaries = {f: build_dir(args.architecture) / logical / "bootstrap" for f, logical in FUNCTIONS.items()}
    for function, binary in binaries.items():
        if not binary.exists():
            raise SystemExit(f"lambda-e2e: {binary} is missing: run sam build first")
        check_glibc(binary, f"{function} ({args.architecture})")
        check_panic_unwinds(binary, f"{function} ({args.architecture})")
        check_no_contract(binary, f"{function} ({args.architecture})")
    if args.architecture == "arm64":
        print("(arm64: the bootstraps run under qemu-aarch64-static)")

    with Stack(f"lambda-e2e-{args.architecture}") as stack:
        dynamodb_url = stack.serve_sessions(sessions_bin=args.sessions_bin)
        runtime_port = stack.runtime_emulator()
        for function, binary in binaries.items():
            stack.spawn_function(function, [*runner(args.architecture), str(binary)], runtime_port, dynamodb_url)

        def invoke(function, payload):
            return invoke_http(runtime_port, function, payload)

        dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")
        check_api(invoke)
        check_app(invoke)
        check_gc(invoke, dynamodb)
        check_metrics(stack.logs)
        if args.architecture == "x86_64":
            check_operator_commands(dynamodb, dynamodb_url, args.sessions_bin)
    print(f"lambda-e2e ({args.architecture}): all checks passed")


if __name__ == "__main__":
    sys.exit(main())
