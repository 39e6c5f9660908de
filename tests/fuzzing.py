"""Schemathesis against the app, one operation at a time: generated valid (positive) and invalid (negative)
input, authenticated. Every failure is collected as "METHOD /path: what failed".

    .venv/bin/python -m tests.fuzzing [--examples 100] [--seconds 600]   (what `make fuzz` runs)

tests/test_fuzz.py runs a short version in the test suite.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# No server error, and every response as documented. (Schema-valid input refused with a 422 is fine: the
# document does not carry every rule, e.g. what a URL or a font stack may be.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(app, headers: dict[str, str], *, examples: int, seconds: float, seed: int | None = 0) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    deadline = time.monotonic() + seconds
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() > deadline:
                return failures

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is not None,
                      suppress_health_check=list(HealthCheck), print_blob=False)  # fmt: skip
            def check(case):
                if time.monotonic() > deadline:
                    return
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid (an operation without input)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - schemathesis raises exception groups; report, go on
                first = str(exc).strip().splitlines()
                failures.append(f"{op.label} [{mode}]: {' | '.join(first[:12])}")
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100, help="examples per operation and mode")
    ap.add_argument("--seconds", type=float, default=600, help="stop starting new examples after this")
    args = ap.parse_args()

    from tests import netguard

    netguard.install()
    from sqlmodel import Session

    from service.app import create_app
    from service.db import make_engine
    from service.migrate import upgrade
    from service.settings import Settings
    from tests.conftest import make_tenant

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'relais.db'}")
        upgrade(engine)
        tenant = make_tenant(engine)
        with Session(engine):
            pass
        app = create_app(
            Settings(data_dir=Path(tmp) / "data", public_base_url="https://relais.test", seed_demo=False,
                     secret_key="fuzz-secret-key"),
            engine=engine, run_task=lambda task, *a: None,
        )  # fmt: skip
        t0 = time.monotonic()
        failures = fuzz(app, tenant.headers(), examples=args.examples, seconds=args.seconds, seed=None)
        print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.0f} s")
        for f in failures:
            print(" -", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    os.environ.setdefault("RELAIS_LOG_LEVEL", "WARNING")
    main()
