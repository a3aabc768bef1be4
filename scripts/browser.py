"""The cookie routes in a real browser: headless Chromium (Debian's
`chromium`, driven by Selenium through Debian's `chromium-driver`) loads a
test page from another loopback origin (http://localhost:<page port>) and
drives `sessions serve` (http://localhost:<api port>, CORS on for that
origin, with credentials, pessimistic locking) with
`fetch(..., {credentials: "include"})`, as a front end in development would:

  start, read, patch (a preflighted request), two tabs on one session with
  locking (the second waits, then reads the first's write), regenerate (the
  cookie changes, the old id is 404), delete (the cookie is gone); the
  preflight's answer; a page from an origin not allowed is refused.

Loopback only; every wait is bounded (the test command's stage bounds the
whole). Run with .venv's python after `cargo build -p sessions-local`:
    .venv/bin/python scripts/browser.py
Logs: target/browser/ (the server's, chromedriver's).
"""

import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from local_stack import Stack, check, free_port

# The page a front end would be: `call` is its fetch, with the cookie, and
# `cache: "no-store"`: without it Chrome holds a write (PATCH /session) until
# another tab's read of the same URL, waiting for the lock, has its answer
# (its HTTP cache's per-URL lock), and the read's lock wait then ends in a
# takeover instead of the write (the README says so).
PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>sessions front end</title>
<script>
const api = new URLSearchParams(location.search).get("api");
async function call(method, path, body, headers) {
  const started = performance.timeOrigin + performance.now();
  try {
    const answer = await fetch(api + path, {method, credentials: "include", cache: "no-store", headers: headers || {},
                                            body: body === null ? undefined : JSON.stringify(body)});
    const text = await answer.text();
    const seen = {};
    answer.headers.forEach((value, name) => { seen[name] = value; });
    return {status: answer.status, headers: seen, body: text ? JSON.parse(text) : null,
            started, ended: performance.timeOrigin + performance.now()};
  } catch (error) {
    return {error: String(error)};
  }
}
</script>
"""

# Each call runs in the page: its arguments, then the driver's callback.
CALL = "const done = arguments[arguments.length - 1]; call(...Array.from(arguments).slice(0, -1)).then(done);"
JSON_BODY = {"content-type": "application/json"}


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_):
        pass


def serve_page(port):
    """The test page on 127.0.0.1:port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium(logs):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    service = Service(executable_path="/usr/bin/chromedriver", log_output=str(logs / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(30)
    return driver


def session_cookies(driver, api):
    """The browser's cookies for the API's origin (HttpOnly included), by name."""
    cookies = driver.execute_cdp_cmd("Network.getCookies", {"urls": [api]})["cookies"]
    return {cookie["name"]: cookie for cookie in cookies}


def call(driver, method, path, body=None, headers=None):
    answer = driver.execute_async_script(CALL, method, path, body, headers or {})
    if "error" in answer:
        raise SystemExit(f"FAILED: {method} {path} did not reach the page's script: {answer['error']}")
    return answer


def preflight(api, origin, method, headers):
    """An OPTIONS preflight as a browser sends it: its status and headers."""
    request = urllib.request.Request(f"{api}/session", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, {name.lower(): value for name, value in answer.headers.items()}


def scenario(driver, api, page, refused_page):
    cookie_name = "PHPSESSID"
    driver.get(f"{page}/?api={api}")

    print("start, read, patch:")
    started = call(driver, "POST", "/session", {"cart": []}, JSON_BODY)
    check(started["status"] == 201, f"POST /session starts a session ({started['status']})")
    first_id = started["body"]["id"]
    cookie = session_cookies(driver, api).get(cookie_name)
    check(cookie is not None and cookie["value"] == first_id, "the browser keeps the session cookie")
    attributes = {name: cookie[name] for name in ("httpOnly", "secure", "sameSite", "path", "session")}
    check(attributes == {"httpOnly": True, "secure": True, "sameSite": "Lax", "path": "/", "session": True},
          f"HttpOnly, Secure (kept on http://localhost), SameSite=Lax, for the browser's session: {attributes}")
    read = call(driver, "GET", "/session?read_and_close")
    check(read["status"] == 200 and read["body"]["data"] == {"cart": []},
          "a cross-origin read carries the cookie (same site: another port of localhost)")
    check("etag" in read["headers"], "the page's script reads ETag (an exposed header)")
    patched = call(driver, "PATCH", "/session", {"cart": ["tea"]}, JSON_BODY)
    check(patched["status"] == 200 and patched["body"]["data"] == {"cart": ["tea"]},
          "PATCH with a JSON body (preflighted) writes")

    print("two tabs, one session, locking on:")
    first_tab = driver.current_window_handle
    locked = call(driver, "GET", "/session")
    token = locked["headers"].get("x-session-lock-token")
    check(locked["status"] == 200 and token, "the first tab's read takes the lock; its script reads the token")
    driver.switch_to.new_window("tab")
    driver.get(f"{page}/?api={api}")
    second_tab = driver.current_window_handle
    # The second tab's read starts and waits for the lock.
    driver.execute_script("window.waiting = call('GET', '/session');")
    time.sleep(1)
    driver.switch_to.window(first_tab)
    wrote = call(driver, "PATCH", "/session", {"cart": ["tea", "milk"]},
                 {**JSON_BODY, "x-session-lock-token": token})
    check(wrote["status"] == 200, f"the first tab writes through its lock, which releases it ({wrote['status']})")
    driver.switch_to.window(second_tab)
    waited = driver.execute_async_script("const done = arguments[0]; window.waiting.then(done);")
    check(waited.get("status") == 200 and waited["body"]["data"] == {"cart": ["tea", "milk"]},
          f"the second tab's read waited, then saw the first tab's write: {(waited.get('body') or {}).get('data')}")
    check(waited["started"] < wrote["started"] < waited["ended"],
          "it was sent before the write and answered after the write was sent (the browser's clock)")
    second_token = waited["headers"].get("x-session-lock-token")
    released = call(driver, "DELETE", "/session/lock", None, {"x-session-lock-token": second_token})
    check(released["status"] == 204, "the second tab releases its lock")
    driver.close()
    driver.switch_to.window(first_tab)

    print("regenerate, delete:")
    regenerated = call(driver, "POST", "/session/regenerate")
    new_id = regenerated["body"]["id"] if regenerated["status"] == 201 else None
    check(new_id and new_id != first_id, "POST /session/regenerate gives a new id (201)")
    cookie = session_cookies(driver, api).get(cookie_name)
    check(cookie is not None and cookie["value"] == new_id, "the browser's cookie changed to the new id")
    old = call(driver, "GET", f"/sessions/{first_id}?read_and_close")
    check(old["status"] == 404, f"the old id is 404 ({old['status']})")
    kept = call(driver, "GET", "/session?read_and_close")
    check(kept["status"] == 200 and kept["body"]["data"] == {"cart": ["tea", "milk"]}, "the data moved along")
    deleted = call(driver, "DELETE", "/session")
    check(deleted["status"] == 204, "DELETE /session (204)")
    check(cookie_name not in session_cookies(driver, api), "the browser dropped the expired cookie")
    gone = call(driver, "GET", "/session?read_and_close")
    check(gone["status"] == 404, "without the cookie, /session is 404")

    print("CORS:")
    origin = page
    status, headers = preflight(api, origin, "PATCH", "content-type,x-session-lock-token")
    check(status in (200, 204) and headers.get("access-control-allow-origin") == origin,
          f"the preflight allows the page's origin ({status})")
    check(headers.get("access-control-allow-credentials") == "true", "with credentials")
    check("PATCH" in headers.get("access-control-allow-methods", ""), "and PATCH")
    check("x-session-lock-token" in headers.get("access-control-allow-headers", "").lower(), "and the lock token")
    check(headers.get("access-control-max-age") == "600", "kept 600 s, as API Gateway's")
    status, headers = preflight(api, refused_page, "PATCH", "content-type")
    check("access-control-allow-origin" not in headers, f"no CORS for an origin not listed ({status})")
    driver.get(f"{refused_page}/?api={api}")
    refused = driver.execute_async_script(CALL, "POST", "/session", {}, JSON_BODY)
    check("error" in refused, f"the browser refuses a page from an origin not listed: {refused.get('error')}")


def main():
    page_port, refused_port = free_port(), free_port()
    page, refused_page = f"http://localhost:{page_port}", f"http://localhost:{refused_port}"
    servers = [serve_page(page_port), serve_page(refused_port)]
    try:
        with Stack("browser") as stack:
            stack.serve_sessions(env={
                "CORS_ALLOWED_ORIGINS": page, "CORS_ALLOW_CREDENTIALS": "true",
                "LOCKING_STRATEGY": "pessimistic", "MAX_LOCK_WAIT_TIME": "10"})
            api = stack.api_url.replace("127.0.0.1", "localhost")
            print(f"==> a browser at {page} against sessions serve at {api}", flush=True)
            driver = chromium(stack.logs)
            try:
                scenario(driver, api, page, refused_page)
            finally:
                driver.quit()
    finally:
        for server in servers:
            server.shutdown()
    print("browser: every step passed")


if __name__ == "__main__":
    sys.exit(main())
