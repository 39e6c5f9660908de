"""Heavy work stays off the event loop: the public /c/ redirect's latency while banner and CSV uploads run.

One uvicorn worker (production flags) on a fresh SQLite data dir. A probe follows a tracked link every 20 ms
and records each latency: first while the server is idle, then while two clients keep uploading the heaviest
inputs the API accepts (an animated GIF at the frame and pixel limits, a directory CSV dry run of ~10 MB).
Before the change, one 366-frame GIF stalled /c/ for 7 s and a 200,000-row CSV for 4.6 s.

    .venv/bin/python bench/offloop.py [--seconds 10]

Prints human-readable lines, then one JSON line last: p50/p99/max of the probe idle and loaded, and the
loaded/idle ratio of p99.
"""

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.redirect import UVICORN, free_port  # noqa: E402
from service.auth import create_api_key  # noqa: E402
from service.db import make_engine  # noqa: E402
from service.links import Channel, mint  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import Organisation, Role  # noqa: E402
from signatures.campaigns.images import MAX_BYTES, MAX_DECODED_PIXELS, MAX_FRAMES  # noqa: E402


def heavy_gif() -> bytes:
    """As many frames as allowed, each as large as the pixel budget allows, under the byte limit."""
    width, height = 600, 200
    frames = min(MAX_FRAMES, MAX_DECODED_PIXELS // (width * height))
    rnd = random.Random(7)
    images = []
    for i in range(frames):  # a noisy patch per frame: LZW cannot shrink it, so the file nears the byte limit
        img = Image.new("P", (width, height), color=i % 256)
        img.paste(Image.frombytes("P", (80, 80), rnd.randbytes(80 * 80)), (i % 500, 50))
        images.append(img)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    data = buf.getvalue()
    assert len(data) <= MAX_BYTES, len(data)
    return data


def big_csv(rows: int = 170_000) -> bytes:
    lines = ["email,first_name,last_name,department"]
    lines += [f"person{i}@bench.example,First{i},Last{i},Dept {i % 40}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def probe(base: str, token: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = client.get(f"/c/{token}", follow_redirects=False)
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 302, r.status_code
            time.sleep(0.02)


def uploader(base: str, key: str, stop: threading.Event, kind: str, data: bytes, counts: dict) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
        while not stop.is_set():
            if kind == "gif":
                r = client.post("/api/banners", files={"file": ("b.gif", data, "image/gif")})
            else:
                r = client.post("/api/directory/import", files={"file": ("d.csv", data, "text/csv")})
            counts[kind] = counts.get(kind, 0) + 1
            counts.setdefault(f"{kind}_status", set()).add(r.status_code)


def summary(latencies: list[float]) -> dict:
    q = statistics.quantiles(latencies, n=100)
    return {
        "n": len(latencies),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'relais.db'}"
        engine = make_engine(url)
        upgrade(engine)
        with Session(engine, expire_on_commit=False) as s:
            org = Organisation(name="Bench", slug="bench")
            s.add(org)
            s.flush()
            link = mint(s, org_id=org.id, channel=Channel.signature_banner, campaign_id=1,
                        destination="https://acme.example/landing?utm_source=sig")  # fmt: skip
            _, key = create_api_key(s, org_id=org.id, name="bench", role=Role.admin)
            s.commit()
            token = link.token
        engine.dispose()
        gif, csv = heavy_gif(), big_csv()
        print(f"GIF {len(gif) / 1e6:.2f} MB, CSV {len(csv) / 1e6:.1f} MB")

        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "RELAIS_DATABASE_URL": url, "RELAIS_DATA_DIR": str(data_dir),
            "RELAIS_SEED_DEMO": "false", "RELAIS_SECRET_KEY": "bench", "RELAIS_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.asgi:app", "--host", "127.0.0.1", "--port", str(port), *UVICORN],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{base}/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            idle: list[float] = []
            stop = threading.Event()
            t = threading.Thread(target=probe, args=(base, token, stop, idle))
            t.start()
            time.sleep(args.seconds)
            stop.set()
            t.join()

            loaded: list[float] = []
            counts: dict = {}
            stop = threading.Event()
            workers = [
                threading.Thread(target=uploader, args=(base, key, stop, "gif", gif, counts)),
                threading.Thread(target=uploader, args=(base, key, stop, "csv", csv, counts)),
            ]
            for w in workers:
                w.start()
            time.sleep(1.0)  # the uploads are under way
            t = threading.Thread(target=probe, args=(base, token, stop, loaded))
            t.start()
            time.sleep(args.seconds)
            stop.set()
            for w in (*workers, t):
                w.join()
        finally:
            proc.terminate()
            proc.wait(10)

    idle_s, loaded_s = summary(idle), summary(loaded)
    print(f"idle   {idle_s}")
    print(f"loaded {loaded_s}  uploads: {counts.get('gif', 0)} GIF, {counts.get('csv', 0)} CSV")
    result = {
        "idle": idle_s,
        "loaded": loaded_s,
        "gif_uploads": counts.get("gif", 0),
        "csv_dry_runs": counts.get("csv", 0),
        "upload_statuses": sorted(counts.get("gif_status", set()) | counts.get("csv_status", set())),
        "p99_ratio": round(loaded_s["p99_ms"] / idle_s["p99_ms"], 2),
        "max_ms_loaded": loaded_s["max_ms"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
