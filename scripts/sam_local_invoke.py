#!/usr/bin/env python3
"""Every file in events/ through `sam local invoke`, against the local emulator.

The way it runs on a Linux machine with Docker Engine (docs/deploy.md):

  * `sessions serve` with its DynamoDB emulator bound to the Docker bridge
    address (never to every address), so that a container reaches it;
  * the function reaches it as host.docker.internal, which SAM adds to the
    container with `--add-host host.docker.internal:host-gateway`;
  * `--env-vars` sets TABLE_NAME and AWS_ENDPOINT_URL_DYNAMODB;
  * the base image is the stand-in that scripts/invoke-image builds
    (`--invoke-image <it> --skip-pull-image`: AWS's images cannot be pulled here).

Each event has a table of its own, seeded by `sessions seed-events` with the
fixture sessions, so each meets the table events/expected.json describes and
must answer the status given there. The events being independent, WORKERS of
them run at once (each still a whole `sam local invoke`: a container of the
built function). Prints one line per event as it ends.

Needs a running engine (scripts/docker-engine start) and a `sam build` of
the x86_64 architecture. Run from the repository root with .venv's python.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Invocations at once: each is a container start and a Rust binary's start,
# mostly waiting on Docker; three keep two cores busy without starving them.
WORKERS = 3

from local_stack import EVENTS, FUNCTIONS, ROOT, SESSIONS_BIN, Stack, build_dir, expected, function_of


def bridge_ip():
    return subprocess.run([str(ROOT / "scripts" / "docker-engine"), "bridge-ip"], capture_output=True, text=True,
                          check=True).stdout.strip()


def write_env_vars(path, dynamodb_url, table):
    """sam local's --env-vars file: the table, and the emulator as the container sees it."""
    port = dynamodb_url.rsplit(":", 1)[1]
    path.write_text(json.dumps({"Parameters": {"TABLE_NAME": table,
                                               "AWS_ENDPOINT_URL_DYNAMODB": f"http://host.docker.internal:{port}"}}))


def seed(dynamodb_url, sessions_bin, table):
    subprocess.run([str(sessions_bin), "seed-events", "--endpoint", dynamodb_url], check=True, capture_output=True,
                   env={**os.environ, "TABLE_NAME": table, "RUST_LOG": "warn"}, timeout=60)


def sam_local_invoke(function, event_file, env_vars, image, architecture):
    """`sam local invoke` of one event: the function's answer (sam's last line on stdout)."""
    argv = ["sam", "local", "invoke", function,
            "--template", str(build_dir(architecture) / "template.yaml"),
            "--parameter-overrides", f"Architecture={architecture}",
            "--event", str(event_file),
            "--env-vars", str(env_vars),
            "--invoke-image", image, "--skip-pull-image",
            "--add-host", "host.docker.internal:host-gateway",
            "--region", "us-east-1"]
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
                             cwd=ROOT)
    except subprocess.TimeoutExpired as hung:
        return None, f"=== {event_file.name}\n$ {' '.join(argv)}\nno answer within {hung.timeout} s\n"
    record = f"=== {event_file.name}\n$ {' '.join(argv)}\n{out.stderr}\n--- stdout\n{out.stdout}\n"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        return None, record
    try:
        return json.loads(lines[-1]), record
    except json.JSONDecodeError:
        return None, record


def outcome_of(answer):
    """What an answer shows: its HTTP status, "swept" for a finished sweep, else what it was."""
    if answer is None:
        return "no answer"
    if "statusCode" in answer:
        return answer["statusCode"]
    if answer.get("outcome") == "swept" and answer.get("stopped") == "finished":
        return "swept"
    return answer.get("outcome") or answer.get("errorType") or "unexpected answer"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True, help="the base image (scripts/invoke-image)")
    parser.add_argument("--architecture", choices=["x86_64", "arm64"], default="x86_64")
    parser.add_argument("--sessions-bin", default=str(SESSIONS_BIN))
    args = parser.parse_args()
    statuses = expected()["status"]
    failures = []
    with Stack("sam-local-invoke") as stack:
        dynamodb_url = stack.serve_sessions(dynamodb_host=bridge_ip(), sessions_bin=args.sessions_bin)
        print(f"DynamoDB emulator on the Docker bridge: {dynamodb_url}")
        written = threading.Lock()

        def run(numbered):
            number, (name, want) = numbered
            table = f"events-{number}"
            env_vars = stack.logs / f"env-{number}.json"
            write_env_vars(env_vars, dynamodb_url, table)
            seed(dynamodb_url, args.sessions_bin, table)
            function = FUNCTIONS[function_of(name)]
            started = time.monotonic()
            answer, record = sam_local_invoke(function, EVENTS / name, env_vars, args.image, args.architecture)
            got = outcome_of(answer)
            verdict = "ok" if got == want else "FAILED"
            with written:
                log.write(record)
                log.flush()
                print(f"  {verdict:6} {name:40} {str(got):10} (expected {want}, {time.monotonic() - started:.1f} s)",
                      flush=True)
                if got != want:
                    failures.append(name)

        with open(stack.logs / "sam-local-invoke.log", "w") as log, ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(run, enumerate(sorted(statuses.items()))))
    if failures:
        print(f"sam local invoke: {len(failures)} event(s) did not answer as documented: {', '.join(failures)}"
              f" (log: {stack.logs}/sam-local-invoke.log)")
        return 1
    print(f"sam local invoke: all {len(statuses)} events answered as documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
