"""What the Lambda scripts share: the processes of one run (the local server
with its DynamoDB emulator, cargo lambda's Runtime API emulator, function
binaries), ports, events and checks. Imported by lambda_e2e.py,
sam_local_invoke.py and bench_lambda.py (run them with .venv's python).
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SESSIONS_BIN = ROOT / "target" / "debug" / "sessions"
# The template's logical id of each function, by binary name.
FUNCTIONS = {"session-api": "SessionApiFunction", "session-gc": "SessionGcFunction", "example-app": "ExampleAppFunction"}
# provided.al2023 ships glibc 2.34: a bootstrap needing newer symbols fails there.
LAMBDA_GLIBC = (2, 34)
# An aarch64 binary runs here under qemu's user-mode emulator, with Debian's
# arm64 C library (libc6-arm64-cross) as its root for the dynamic loader.
ARM64_RUNNER = ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"]

# `cargo lambda` and `sam` come from the repository's venv (scripts/tools).
os.environ["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"


def build_dir(architecture):
    """Where the test command's `sam build` for one architecture puts its output."""
    return ROOT / ".aws-sam" / f"build-{architecture}"


def runner(architecture):
    """The command prefix that runs a binary of `architecture` on this machine."""
    return ARM64_RUNNER if architecture == "arm64" else []


def function_of(event_name):
    """The binary an event in events/ is for, by its prefix (gc-, app-, api-)."""
    return {"gc": "session-gc", "app": "example-app"}.get(event_name.split("-", 1)[0], "session-api")


def expected():
    """events/expected.json: the fixture sessions and each event's status."""
    return json.loads((EVENTS / "expected.json").read_text())


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")
    print(f"  ok: {message}")


def newest_glibc(binary):
    """The newest GLIBC_x.y symbol version a binary needs (readelf reads any architecture)."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    versions = {tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_([0-9]+(?:\.[0-9]+)+)", out)}
    return max(versions, default=(0,))


def check_glibc(binary, name):
    newest = newest_glibc(binary)
    check(newest <= LAMBDA_GLIBC, f"{name} needs glibc {'.'.join(map(str, newest))}, "
          f"within provided.al2023's {'.'.join(map(str, LAMBDA_GLIBC))}")


def check_panic_unwinds(binary, name):
    """panic = "unwind" made it into the binary. The message below belongs to
    Rust's unwinding panic runtime (panic_unwind), which a panic=abort build
    does not link; a string, so it reads the same on either architecture
    (arm64's unwinder is linked statically, stripped of its symbols)."""
    check(b"Rust cannot catch foreign exceptions" in Path(binary).read_bytes(),
          f"{name} unwinds on panic (the runtime answers it; the sandbox lives on)")


def check_no_contract(binary, name):
    """The API's OpenAPI document (served by `sessions serve` only) stays out
    of the Lambda bootstraps: its title is not in the binary."""
    title = json.loads((ROOT / "functions" / "session-api" / "openapi.json").read_text())["info"]["title"]
    check(title.encode() not in Path(binary).read_bytes(), f"{name} does not carry the OpenAPI document")


def peak_memory_kib(pid):
    """VmHWM of a live process, KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def invoke_http(runtime_port, function, payload):
    """The Lambda Invoke API of the Runtime API emulator; the parsed response."""
    request = urllib.request.Request(f"http://127.0.0.1:{runtime_port}/2015-03-31/functions/{function}/invocations",
                                     data=payload, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


class Stack:
    """The processes of one run, each logging to target/<logs>/<name>.log; all stopped on exit."""

    def __init__(self, logs):
        self.processes = []
        self.logs = ROOT / "target" / logs
        self.logs.mkdir(parents=True, exist_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()

    def start(self, name, argv, env=None):
        log = open(self.logs / f"{name}.log", "w")
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT)
        self.processes.append(proc)
        return proc

    def wait_for(self, host, port, proc, seconds=60):
        """Until something accepts connections on host:port (or the process dies)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args[0]} exited ({proc.returncode}); see {self.logs}/")
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"nothing listens on {host}:{port}")

    def serve_sessions(self, dynamodb_host="127.0.0.1", sessions_bin=SESSIONS_BIN, env=None):
        """`sessions serve` (with `env` besides its ports): its emulator's URL
        (table `sessions` created); the API's URL is then `self.api_url`."""
        api_port, dynamodb_port = free_port(), free_port(dynamodb_host)
        serve = self.start("sessions-serve", [str(sessions_bin), "serve"],
                           {"PORT": str(api_port), "DYNAMODB_HOST": dynamodb_host,
                            "DYNAMODB_PORT": str(dynamodb_port), "GC_INTERVAL": "3600", "TABLE_NAME": "sessions",
                            **(env or {})})
        self.wait_for("127.0.0.1", api_port, serve)
        self.api_url = f"http://127.0.0.1:{api_port}"
        return f"http://{dynamodb_host}:{dynamodb_port}"

    def runtime_emulator(self):
        """`cargo lambda watch --only-lambda-apis`: its port."""
        port = free_port()
        emulator = self.start("runtime-emulator", ["cargo", "lambda", "watch", "--only-lambda-apis",
                                                   "--invoke-address", "127.0.0.1", "--invoke-port", str(port)])
        self.wait_for("127.0.0.1", port, emulator)
        return port

    def spawn_function(self, name, argv, runtime_port, dynamodb_url, env=None):
        """A function binary polling the Runtime API emulator as `name`."""
        function_env = {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{runtime_port}/.rt/{name}",
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "TABLE_NAME": "sessions",
            "RUST_LOG": "info",
            **(env or {}),
        }
        return self.start(name, argv, function_env)

    def stop(self):
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes = []
