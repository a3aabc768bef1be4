#!/usr/bin/env python3
"""The built Lambda binaries under a Lambda Runtime API emulator.

Runs the `bootstrap` files that `sam build` left in .aws-sam/build against
`cargo lambda watch --only-lambda-apis` (the Runtime API emulator), with
DynamoDB served by `sessions serve` (its embedded emulator, table created):

  * session-api: create, read, patch, delete, read again (404), with the
    events from events/ (the id filled in);
  * session-gc: events/gc-scheduled.json against a table seeded with live,
    expired, and expired-but-locked sessions; only the expired unlocked ones
    may go.

With --bench it prints figures instead of only checking: start-up time
(process start to first response), peak memory (VmHWM), binary sizes.

Run from the repository root with .venv's python (boto3 comes with moto).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
EVENTS = ROOT / "events"
# Session ids the events name; a run replaces them with the session it made.
EVENT_IDS = ["Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe", "De1eteMeDe1eteMeDe1eteMeDe1eteMe"]
FUNCTIONS = {"session-api": "SessionApiFunction", "session-gc": "SessionGcFunction"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc, seconds=60):
    """Until something accepts connections on the port (or the process dies)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lambda-e2e: {proc.args[0]} exited ({proc.returncode}); see target/lambda-e2e/*.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"lambda-e2e: nothing listens on port {port}")


class Stack:
    """The processes of one run; all stopped on exit."""

    def __init__(self):
        self.processes = []
        self.logs = ROOT / "target" / "lambda-e2e"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, name, argv, env):
        log = open(self.logs / f"{name}.log", "w")
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.processes.append(proc)
        return proc

    def stop(self):
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def invoke(runtime_port, function, event_file):
    """`cargo lambda invoke --data-file` against the emulator; the parsed response."""
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(runtime_port),
         "--data-file", str(event_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"lambda-e2e: invoke {function} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def invoke_http(runtime_port, function, event_file):
    """The Lambda Invoke API directly (no client process start), for timing."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{runtime_port}/2015-03-31/functions/{function}/invocations",
        data=Path(event_file).read_bytes(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def event_file(stack, name, session_id=None):
    """events/<name>, or a copy of it naming `session_id` instead of the fixed ids."""
    if not session_id:
        return EVENTS / name
    text = (EVENTS / name).read_text()
    for fixed in EVENT_IDS:
        text = text.replace(fixed, session_id)
    copy = stack.logs / name
    copy.write_text(text)
    return copy


def check(condition, message):
    if not condition:
        raise SystemExit(f"lambda-e2e: FAILED: {message}")
    print(f"  ok: {message}")


# provided.al2023 ships glibc 2.34: a bootstrap needing newer symbols fails there.
LAMBDA_GLIBC = (2, 34)


def newest_glibc(binary):
    out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_([0-9]+(?:\.[0-9]+)+)", out)}
    return max(versions, default=(0,))


def peak_memory_kib(proc):
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", action="store_true", help="print start-up, memory and size figures")
    parser.add_argument("--sessions-bin", default=str(ROOT / "target" / "debug" / "sessions"))
    parser.add_argument("--binaries", help="run <dir>/<function> instead of sam build's bootstraps (quick local runs)")
    args = parser.parse_args()

    def binary(function):
        if args.binaries:
            return Path(args.binaries) / function
        return BUILD / FUNCTIONS[function] / "bootstrap"

    for function in FUNCTIONS:
        if not binary(function).exists():
            raise SystemExit(f"lambda-e2e: {binary(function)} is missing: run sam build first")

    if not args.binaries:
        for function in FUNCTIONS:
            newest = newest_glibc(binary(function))
            check(newest <= LAMBDA_GLIBC, f"{function} needs glibc {'.'.join(map(str, newest))}, "
                  f"within provided.al2023's {'.'.join(map(str, LAMBDA_GLIBC))}")

    stack = Stack()
    try:
        api_port, dynamodb_port, runtime_port = free_port(), free_port(), free_port()
        serve = stack.start("sessions-serve", [args.sessions_bin, "serve"],
                            {"PORT": str(api_port), "DYNAMODB_PORT": str(dynamodb_port), "GC_INTERVAL": "3600"})
        wait_for(api_port, serve)
        emulator = stack.start("runtime-emulator", ["cargo", "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", str(runtime_port)], {})
        wait_for(runtime_port, emulator)

        dynamodb_url = f"http://127.0.0.1:{dynamodb_port}"
        function_env = {
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "TABLE_NAME": "sessions",
            "RUST_LOG": "info",
        }
        started, procs = {}, {}

        def spawn(function):
            env = {**function_env, "AWS_LAMBDA_FUNCTION_NAME": function,
                   "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{runtime_port}/.rt/{function}"}
            started[function] = time.monotonic()
            procs[function] = stack.start(function, [str(binary(function))], env)

        print("session-api under the Runtime API emulator:")
        spawn("session-api")
        first = invoke_http(runtime_port, "session-api", event_file(stack, "api-read-not-found.json"))
        startup_api = time.monotonic() - started["session-api"]
        check(first["statusCode"] == 404, "an unknown id is 404")
        created = invoke(runtime_port, "session-api", event_file(stack, "api-create.json"))
        check(created["statusCode"] == 201, "create is 201")
        session_id = json.loads(created["body"])["id"]
        check(any(c.startswith(f"PHPSESSID={session_id}") for c in created.get("cookies", [])), "create sets the session cookie")
        read = invoke(runtime_port, "session-api", event_file(stack, "api-read.json", session_id))
        check(read["statusCode"] == 200 and json.loads(read["body"])["data"]["user.name"] == "jeremy", "read returns the data")
        patched = invoke(runtime_port, "session-api", event_file(stack, "api-patch.json", session_id))
        check(patched["statusCode"] == 200 and json.loads(patched["body"])["data"] == {"user.name": "jeremy", "cart": {"items": 2}},
              "patch merges")
        deleted = invoke(runtime_port, "session-api", event_file(stack, "api-delete.json", session_id))
        check(deleted["statusCode"] == 204, "delete is 204")
        gone = invoke(runtime_port, "session-api", event_file(stack, "api-read.json", session_id))
        check(gone["statusCode"] == 404, "a deleted session reads as 404")

        print("session-gc under the Runtime API emulator:")
        dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")
        now = int(time.time())
        seeded = {
            "live": {"expires": now + 600},
            "expired1": {"expires": now - 60},
            "expired2": {"expires": now - 60},
            "expired-locked": {"expires": now - 60, "lock": 1, "lock_token": "tokentokentokentoken", "lock_until_ms": (now + 300) * 1000},
        }
        for name, attrs in seeded.items():
            item = {"id": {"S": f"PHPSESSID_{name}-0000000000000000000"}, "data": {"S": "{}"}}
            for key, value in attrs.items():
                item[key] = {"S": value} if isinstance(value, str) else {"N": str(value)}
            dynamodb.put_item(TableName="sessions", Item=item)
        spawn("session-gc")
        outcome = invoke_http(runtime_port, "session-gc", event_file(stack, "gc-scheduled.json"))
        startup_gc = time.monotonic() - started["session-gc"]
        check(outcome.get("outcome") == "swept" and outcome["finished"] is True, f"the sweep finished: {outcome}")
        check(outcome["deleted"] == 2 and outcome["skipped"] == 1, "it deleted the two expired sessions and skipped the locked one")
        keys = {i["id"]["S"] for i in dynamodb.scan(TableName="sessions")["Items"]}
        for name in seeded:
            key = f"PHPSESSID_{name}-0000000000000000000"
            check((key in keys) == (name in ("live", "expired-locked")), f"{name} {'kept' if key in keys else 'gone'}")

        print("operator commands against the same table:")
        operator_env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url, "AWS_ACCESS_KEY_ID": "local",
                        "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1", "RUST_LOG": "warn"}
        created = subprocess.run([args.sessions_bin, "create-table"], env=operator_env, capture_output=True, text=True, timeout=60)
        check(created.returncode == 0 and "AlreadyExisted" in created.stdout, f"sessions create-table: {created.stdout.strip()}")
        dynamodb.put_item(TableName="sessions", Item={"id": {"S": "PHPSESSID_expired3-0000000000000000000"},
                                                      "expires": {"N": str(now - 60)}})
        swept = subprocess.run([args.sessions_bin, "gc"], env=operator_env, capture_output=True, text=True, timeout=60)
        report = json.loads(swept.stdout) if swept.returncode == 0 else {}
        check(report.get("deleted") == 1 and report.get("finished") is True, f"sessions gc: {swept.stdout.strip()}")
        bad = subprocess.run([args.sessions_bin, "gc"], env={**operator_env, "GC_BATCH_SIZE": "26"}, capture_output=True, text=True, timeout=60)
        check(bad.returncode != 0 and "GC_BATCH_SIZE" in bad.stderr and "26" in bad.stderr,
              f"a bad option stops it, naming the variable: {bad.stderr.strip()}")

        if args.bench:
            print("\nLambda binaries (sam build, release, stripped):")
            for function in FUNCTIONS:
                size = binary(function).stat().st_size
                print(f"  {function}: binary {size / 1024 / 1024:.1f} MiB, peak RSS {peak_memory_kib(procs[function]) / 1024:.1f} MiB")
            print(f"  process start to first response: session-api {startup_api * 1000:.0f} ms"
                  f" (a GetItem included), session-gc {startup_gc * 1000:.0f} ms (a sweep of 4 items included)")
        print("lambda-e2e: all checks passed")
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
