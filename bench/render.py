"""Signature rendering throughput: the real path vs. render-then-inline vs. the Jinja floor.

    .venv/bin/python bench/render.py [--employees 100000] [--naive 1000] [--layout classic] [--kind new]

* real path: compile once (CSS inlined once), then per employee render HTML + text + content hash;
* naive: Jinja on the raw template then premailer, per signature (on a smaller sample);
* floor: a plain Jinja render of the compiled HTML template (no text, no hash).

Prints human-readable lines, then one JSON line last.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signatures.context import BannerData, BrandData, EmployeeData, SocialLink, build_context  # noqa: E402
from signatures.layouts import LAYOUTS  # noqa: E402
from signatures.rendering import compile_template, render, render_naive  # noqa: E402

FIRST = ["Jane", "Ahmed", "Élodie", "Seán", "Zoë", "Mohammed", "Yuki", "Łukasz", "Ana", "Noa", "محمد", "דנה"]
LAST = ["O'Neil", "Martin-Dupont", "Nguyễn", "Smith", "García Márquez", "Kowalski", "العلي", "כהן", "Lee"]
TITLES = ["Engineer", "Head of R&D <Ops>", "Account Executive", None, "Chief Financial Officer", "Designer"]
DEPTS = ["R&D", "Sales", None, "Finance", "Marketing & Communication", "Support"]


def synthetic_employees(n: int, seed: int = 7) -> list[EmployeeData]:
    rnd = random.Random(seed)
    people = []
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        people.append(
            EmployeeData(
                email=f"user{i}@acme.example",
                first_name=first,
                last_name=last,
                display_name=None if rnd.random() < 0.8 else f"{first} {last} Jr.",
                title=rnd.choice(TITLES),
                department=rnd.choice(DEPTS),
                office=rnd.choice(["Paris", "Lyon", None]),
                phone=f"+33 1 {rnd.randint(10, 99)} {rnd.randint(10, 99)} {rnd.randint(10, 99)} 00"
                if rnd.random() < 0.7
                else None,
                mobile=f"+33 6 {rnd.randint(10, 99)} 11 22 33" if rnd.random() < 0.5 else None,
                photo_url=f"https://cdn.acme.example/p/{i}.jpg" if rnd.random() < 0.6 else None,
                pronouns=rnd.choice([None, None, "she/her", "he/him", "they/them"]),
            )
        )
    return people


BRAND = BrandData(
    company_name="Acme Corp",
    website="https://www.acme.example/",
    logo_url="https://cdn.acme.example/logo.png",
    logo_width=120,
    logo_height=36,
    address="1 rue de la Paix, 75002 Paris",
    social_links=(
        SocialLink("LinkedIn", "https://www.linkedin.com/company/acme"),
        SocialLink("X", "https://x.com/acme"),
    ),
    disclaimer_html="<p>This email and any attachments are confidential.</p>",
)
BANNER = BannerData("https://cdn.acme.example/b/expo.png", 480, 90, "Meet us at Expo", "https://r.example/c/tok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--employees", type=int, default=100_000)
    ap.add_argument("--naive", type=int, default=1_000, help="sample size for the naive path")
    ap.add_argument("--layout", default="classic", choices=sorted(LAYOUTS))
    ap.add_argument("--kind", default="new", choices=["new", "reply"])
    args = ap.parse_args()

    source = getattr(LAYOUTS[args.layout], f"{args.kind}_source")
    people = synthetic_employees(args.employees)
    t0 = time.perf_counter()
    contexts = [build_context(employee=p, brand=BRAND, banner=BANNER if i % 3 else None) for i, p in enumerate(people)]
    ctx_us = (time.perf_counter() - t0) / len(contexts) * 1e6

    t0 = time.perf_counter()
    compiled = compile_template(source)
    compile_ms = (time.perf_counter() - t0) * 1e3

    # floor and real path alternate over the same chunks, so background load hits both alike
    tpl = compiled.html_template
    floor_s = real_s = 0.0
    total_bytes = 0
    chunk = 5_000
    gc.collect()
    gc.disable()
    try:
        for start in range(0, len(contexts), chunk):
            part = contexts[start : start + chunk]
            # floor: plain Jinja render of the same (compiled) HTML template
            t0 = time.perf_counter()
            for ctx in part:
                tpl.render(ctx)
            floor_s += time.perf_counter() - t0
            # real path: HTML + text + hash
            t0 = time.perf_counter()
            for ctx in part:
                total_bytes += len(render(compiled, ctx).html)
            real_s += time.perf_counter() - t0
    finally:
        gc.enable()

    sample = contexts[: min(args.naive, len(contexts))]
    t0 = time.perf_counter()
    for ctx in sample:
        render_naive(source, ctx)
    naive_s = time.perf_counter() - t0

    n = len(contexts)
    per = real_s / n * 1e6
    floor = floor_s / n * 1e6
    naive = naive_s / len(sample) * 1e6
    print(f"layout {args.layout}/{args.kind}: compile {compile_ms:.1f} ms; build_context {ctx_us:.2f} µs")
    print(f"real path   {n:>7,} signatures in {real_s:6.2f} s: {per:8.1f} µs each (HTML + text + sha256)")
    print(f"jinja floor {n:>7,} signatures in {floor_s:6.2f} s: {floor:8.1f} µs each (HTML only)")
    k = len(sample)
    print(f"naive       {k:>7,} signatures in {naive_s:6.2f} s: {naive:8.1f} µs each (Jinja + premailer)")
    mean = total_bytes / n
    print(f"speedup vs naive {naive / per:.0f}x; cost vs floor {per / floor:.2f}x; mean HTML {mean:.0f} B")
    print(
        json.dumps(
            {
                "per_signature_us": round(per, 2),
                "naive_per_signature_us": round(naive, 1),
                "speedup": round(naive / per, 1),
                "jinja_only_per_signature_us": round(floor, 2),
                "ratio_to_floor": round(per / floor, 3),
                "employees": n,
            }
        )
    )


if __name__ == "__main__":
    main()
