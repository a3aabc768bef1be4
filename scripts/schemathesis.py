"""Schemathesis against `sessions serve`, driven by the API's OpenAPI document
as the server serves it (/openapi.json): property-based requests on every
operation (examples, coverage, fuzzing), the stateful links the document
declares (create -> read -> replace/patch -> regenerate -> delete, by id and
by cookie), and every check (server errors, statuses, headers, response
schemas, content types, Allow, negative data refused, positive data
accepted). Once with the defaults, once with pessimistic locking on a
`php`-format table. Bounded: examples per operation here, and the whole run
by the test command's stage bound.

Run with .venv's python after `cargo build -p sessions-local`:
    .venv/bin/python scripts/schemathesis.py [--max-examples N]
Reports: target/schemathesis-<configuration>/ (JUnit XML, the server's log).
"""

import argparse
import os
import subprocess
import sys

from local_stack import ROOT, Stack

CONFIGURATIONS = {
    "defaults": {},
    # A lock another request holds is waited for up to MAX_LOCK_WAIT_TIME
    # (10 s by default): 1 s keeps the run short, and 423 comes all the same.
    "pessimistic-php": {"LOCKING_STRATEGY": "pessimistic", "DATA_FORMAT": "php", "MAX_LOCK_WAIT_TIME": "1"},
}


def run(name, env, max_examples, seconds):
    with Stack(f"schemathesis-{name}") as stack:
        stack.serve_sessions(env=env)
        reports = stack.logs
        argv = [str(ROOT / ".venv" / "bin" / "schemathesis"), "--config-file", str(ROOT / "schemathesis.toml"),
                "run", f"{stack.api_url}/openapi.json",
                # Every check runs (Schemathesis 4's default); schemathesis.toml
                # turns off only what it says why.
                "--max-examples", str(max_examples), "--workers", "1",
                "--report", "junit", "--report-dir", str(reports)]
        print(f"==> schemathesis ({name}: {env or 'the defaults'}), at most {seconds} s", flush=True)
        try:
            outcome = subprocess.run(argv, cwd=ROOT, timeout=seconds, env={**os.environ, "NO_COLOR": "1"})
        except subprocess.TimeoutExpired:
            raise SystemExit(f"FAILED: schemathesis ({name}) ran past {seconds} s")
        if outcome.returncode != 0:
            raise SystemExit(f"FAILED: schemathesis ({name}) found what the document does not say "
                             f"(above; the server's log: {reports}/sessions-serve.log)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=30, help="examples per operation and phase")
    parser.add_argument("--seconds", type=int, default=300, help="bound on each configuration's run")
    args = parser.parse_args()
    for name, env in CONFIGURATIONS.items():
        run(name, env, args.max_examples, args.seconds)
    print("schemathesis: every configuration conforms")


if __name__ == "__main__":
    sys.exit(main())
