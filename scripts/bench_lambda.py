#!/usr/bin/env python3
"""Figures of the Lambda binaries, side by side, printed (never asserted).

For each architecture and binary (our two bootstraps from `sam build`, and
the bare `lambda_http` + `aws-sdk-dynamodb` + `aws-config` function that
scripts/bench builds with the same profile): the file's size, its size
zipped (as Lambda receives it), the time from process start to the first
response under the Runtime API emulator (median of several fresh starts),
and the peak resident memory (VmHWM) after that response.

The first invocation is the one a cold start pays for: configuration, the
SDK client, and one DynamoDB round trip (a GetItem for the API and the bare
function, an empty table's sweep for GC) to `sessions serve`'s emulator on
loopback. arm64 runs under qemu-aarch64-static: its times are emulated (many
times slower than on Graviton) and its memory includes qemu's own; compare
arm64 figures with each other only.

Targets (issue #9): our API bootstrap within 15% of the bare binary's size,
zipped at most 4.5 MB, start-up within 1.2x of the bare binary's.

When scripts/bench built them (target/bench-before), the API and GC
bootstraps as they were before the metrics (issue 29) run in the same
rounds, and a last table gives each one's size, start-up and memory before
and after.
"""

import argparse
import statistics
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

from local_stack import EVENTS, FUNCTIONS, ROOT, Stack, build_dir, invoke_http, peak_memory_kib, runner

MB = 1024 * 1024
# What each binary answers first, and the event that asks it.
FIRST_EVENT = {"session-api": "api-read-not-found.json", "session-gc": "gc-schedule-v2.json",
               "example-app": "app-show-new-visitor.json", "bare-lambda": "api-read-not-found.json"}
# The bootstraps from before the metrics, each under the name of what it is today.
BEFORE = {"api-before": "session-api", "gc-before": "session-gc"}


def zipped_size(binary):
    """The size of a zip holding the file as `bootstrap`, deflated as SAM packages it."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(binary, "bootstrap")
    return buffer.tell()


def cold_start(dynamodb_url, architecture, name, binary):
    """One fresh process: seconds from its start to its first response, and its peak RSS (KiB).

    Each start gets an emulator of its own, so that no poller of an earlier
    process is waiting there; every binary registers under its own name, the bare one as
    `session-api` (the emulator only serves the workspace's binary names)."""
    function = BEFORE.get(name, name)
    function = function if function in FUNCTIONS else "session-api"
    payload = (EVENTS / FIRST_EVENT[function if function in FIRST_EVENT else name]).read_bytes()
    with Stack("bench-lambda") as stack:
        runtime_port = stack.runtime_emulator()
        started = time.monotonic()
        proc = stack.spawn_function(function, [*runner(architecture), str(binary)], runtime_port, dynamodb_url,
                                    {"RUST_LOG": "warn"})
        answer = invoke_http(runtime_port, function, payload)
        elapsed = time.monotonic() - started
        rss = peak_memory_kib(proc.pid)
    if "statusCode" not in answer and "outcome" not in answer:
        raise SystemExit(f"bench: {name} ({architecture}) answered {answer}")
    return elapsed, rss


def measure(dynamodb_url, architecture, binaries, runs):
    """Each binary's figures; the fresh starts go round the binaries in turn,
    so a noisy moment of a shared machine falls on all of them alike."""
    starts = {name: [] for name in binaries}
    for _ in range(runs):
        for name, binary in binaries.items():
            starts[name].append(cold_start(dynamodb_url, architecture, name, binary))
    return {name: {
        "size": binary.stat().st_size,
        "zip": zipped_size(binary),
        "startup": statistics.median(s for s, _ in starts[name]),
        "rss": max((r for _, r in starts[name] if r), default=0),
    } for name, binary in binaries.items()}


def row(architecture, name, figures, bare):
    size, zipped, startup, rss = figures["size"], figures["zip"], figures["startup"], figures["rss"]
    line = (f"{architecture:7} {name:12} {size / MB:6.2f} MiB {zipped / MB:5.2f} MiB {startup * 1000:8.0f} ms"
            f" {rss / 1024:6.1f} MiB")
    if bare is not figures:
        line += (f"   {size / bare['size'] - 1:+6.1%} size, {startup / bare['startup']:4.2f}x start-up,"
                 f" {rss / bare['rss'] if bare['rss'] else 0:4.2f}x RSS")
    return line


def targets(figures):
    """How the API bootstrap stands against the issue's targets, per architecture."""
    lines = []
    for architecture, binaries in figures.items():
        api, bare = binaries["session-api"], binaries["bare-lambda"]
        lines.append(f"  {architecture}: size {api['size'] / bare['size'] - 1:+.1%} (target <= +15%),"
                     f" zip {api['zip'] / MB:.2f} MiB (target <= 4.5 MB),"
                     f" start-up {api['startup'] / bare['startup']:.2f}x (target <= 1.2x)")
    return lines


def before_and_after(figures):
    """Each bootstrap before the metrics and now, per architecture."""
    lines = []
    for architecture, binaries in figures.items():
        for before, now in BEFORE.items():
            if before not in binaries:
                continue
            old, new = binaries[before], binaries[now]
            rss = f"{old['rss'] / 1024:.1f} -> {new['rss'] / 1024:.1f} MiB" if old["rss"] and new["rss"] else "n/a"
            lines.append(f"  {architecture:7} {now:12} size {old['size']:,} -> {new['size']:,} bytes"
                         f" ({new['size'] / old['size'] - 1:+.1%}), zipped {new['zip'] / old['zip'] - 1:+.1%},"
                         f" start-up {old['startup'] * 1000:.0f} -> {new['startup'] * 1000:.0f} ms"
                         f" ({new['startup'] / old['startup']:.2f}x), peak RSS {rss}")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--architectures", nargs="+", default=["x86_64", "arm64"])
    parser.add_argument("--bare-dir", default=str(ROOT / "target" / "bench-bare"),
                        help="where scripts/bench built the bare binary: <dir>/<architecture>/bootstrap")
    parser.add_argument("--before-dir", default=str(ROOT / "target" / "bench-before"),
                        help="where scripts/bench built the bootstraps before the metrics: <dir>/<architecture>/<binary>/bootstrap")
    parser.add_argument("--runs", type=int, default=5, help="fresh starts per binary (arm64: at least 3)")
    args = parser.parse_args()
    figures = {}
    with Stack("bench-lambda-server") as stack:
        dynamodb_url = stack.serve_sessions()
        for architecture in args.architectures:
            binaries = {name: build_dir(architecture) / logical / "bootstrap" for name, logical in FUNCTIONS.items()}
            binaries["bare-lambda"] = Path(args.bare_dir) / architecture / "bootstrap"
            for before, now in BEFORE.items():
                built = Path(args.before_dir) / architecture / now / "bootstrap"
                if built.exists():
                    binaries[before] = built
            runs = args.runs if architecture == "x86_64" else max(3, args.runs // 2)
            figures[architecture] = measure(dynamodb_url, architecture, binaries, runs)
    print(f"{'arch':7} {'binary':12} {'size':>10} {'zipped':>9} {'start-up':>11} {'peak RSS':>10}   vs bare-lambda")
    for architecture, binaries in figures.items():
        for name, measured in binaries.items():
            print(row(architecture, name, measured, binaries["bare-lambda"]))
    print("start-up: process start to first response (median); arm64 under qemu: emulated, compare within arm64 only")
    print("targets for session-api:")
    print("\n".join(targets(figures)))
    compared = before_and_after(figures)
    if compared:
        print("before the metrics (issue 29) -> now, in the same rounds:")
        print("\n".join(compared))


if __name__ == "__main__":
    sys.exit(main())
