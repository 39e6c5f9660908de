"""Bodies are bounded before they are buffered, and API credentials are checked before a body is read.

The in-process tests drive the ASGI app with a receive() that counts what the app pulls; the subprocess test
streams 300 MB at a real uvicorn server from an anonymous client and reads the server's resident memory.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx

from service.request_limits import API_BODY_BYTES, PUBLIC_BODY_BYTES, UPLOAD_BODY_BYTES

CHUNK = 64 * 1024


def _drive(app, method: str, path: str, headers: dict[str, str], chunks: int, chunk: bytes = b"x" * CHUNK):
    """Run one request through the ASGI app; return (status, body, chunks the app pulled)."""
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled >= chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "server": ("t", 80),
        "client": ("127.0.0.1", 1), "app": app,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_anonymous_api_body_is_refused_before_one_byte_is_read(app, client):
    status, body, pulled = _drive(app, "POST", "/api/keys", {"transfer-encoding": "chunked"}, chunks=5000)
    assert status == 401 and b'"unauthorized"' in body
    assert pulled == 0


def test_a_key_that_does_not_exist_reads_nothing(app, client, tenant):
    fake = "rls_00000000_" + "a" * 32
    headers = {"authorization": f"Bearer {fake}", "content-length": str(300 * 1024 * 1024)}
    status, body, pulled = _drive(app, "POST", "/api/templates/lint", headers, chunks=5000)
    assert status == 401 and pulled == 0
    garbage = {"authorization": "Bearer " + "x" * 5000, "transfer-encoding": "chunked"}
    assert _drive(app, "POST", "/api/templates/lint", garbage, chunks=10)[::2] == (401, 0)


def test_declared_length_over_the_limit_is_413_before_reading(app, client, tenant):
    headers = {**tenant.headers(), "content-length": str(API_BODY_BYTES + 1), "content-type": "application/json"}
    status, body, pulled = _drive(app, "POST", "/api/templates/lint", headers, chunks=5000)
    assert status == 413 and pulled == 0
    assert b'"too_large"' in body and b"limit_bytes" in body


def test_streamed_body_is_cut_at_the_limit(app, client, tenant):
    headers = {**tenant.headers(), "transfer-encoding": "chunked", "content-type": "application/json"}
    status, body, pulled = _drive(app, "POST", "/api/templates/lint", headers, chunks=5000)
    assert status == 413 and b'"too_large"' in body
    assert pulled * CHUNK <= API_BODY_BYTES + 2 * CHUNK  # stopped at the ceiling, not at the end of 300 MB


def test_public_form_has_a_small_ceiling(app, client):
    headers = {"transfer-encoding": "chunked", "content-type": "application/x-www-form-urlencoded"}
    status, _, pulled = _drive(app, "POST", "/u/sometoken", headers, chunks=5000)
    assert status == 413 and pulled * CHUNK <= PUBLIC_BODY_BYTES + 2 * CHUNK


def test_upload_routes_have_their_own_ceiling(client, tenant):
    # A CSV over the JSON ceiling is accepted by the import route (dry run)...
    rows = "".join(f"p{i}@acme.test,Person {i}\n" for i in range(60_000)).encode()
    assert len(rows) > API_BODY_BYTES
    response = client.post(
        "/api/directory/import", headers=tenant.headers(), files={"file": ("d.csv", b"email,display_name\n" + rows)}
    )
    assert response.status_code == 200, response.text
    # ...a banner over its ceiling is refused with the error shape, naming the limit.
    limit = UPLOAD_BODY_BYTES[("POST", "/api/banners")]
    response = client.post("/api/banners", headers=tenant.headers(), files={"file": ("b.png", b"x" * (limit + 1))})
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit_bytes": limit}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_anonymous_300_mb_body_leaves_server_memory_flat(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ, "RELAIS_DATA_DIR": str(tmp_path / "data"), "RELAIS_SEED_DEMO": "false",
        "RELAIS_SECRET_KEY": "test-secret-key",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        before = _rss_kb(server.pid)
        sent = 0

        def body():
            nonlocal sent
            block = b"[" + b"1," * (CHUNK // 2)
            while sent < 300 * 1024 * 1024:
                sent += len(block)
                yield block

        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/api/keys", content=body(), headers={"content-type": "application/json"}
            )
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
        except httpx.HTTPError:
            pass  # the server may close the connection once it has answered
        grown_mb = (_rss_kb(server.pid) - before) / 1024
        assert grown_mb < 20, f"the server grew by {grown_mb:.0f} MB"
        assert sent < 300 * 1024 * 1024 or grown_mb < 20
    finally:
        server.terminate()
        server.wait(10)


def test_authenticated_json_under_the_limit_still_works(client, tenant):
    response = client.post(
        "/api/templates/lint", headers=tenant.headers(), json={"source": "<p>{{ brand.company_name }}</p>"}
    )
    assert response.status_code == 200, response.text
