"""A short schemathesis run (tests/fuzzing.py) in the suite: no server error, every response as documented."""

import os

from tests.fuzzing import fuzz

EXAMPLES = int(os.environ.get("RELAIS_FUZZ_EXAMPLES", "3"))


def test_api_answers_as_documented(app, client, tenant):
    failures = fuzz(app, tenant.headers(), examples=EXAMPLES, seconds=240)
    assert failures == [], "\n".join(failures)
