"""schemathesis over the JSON API with a logged-in client: whatever it sends, the answer is never a 500.

Bounded so it belongs in every run: a few examples per operation, a fixed seed (derandomize), no shrinking.
(The operations are driven through hypothesis directly: schemathesis' pytest plugin does not run under
pytest 9.)"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings

from yikatong.web.app import create_app

from .conftest import token_for

# Left out: logging out (it would end the fuzzing session), logging in (it would throttle the suite's own
# address), imports (they would load random rows into the test city) and what switches the city's rules.
EXCLUDED = r"/auth/log(in|out)$|/imports$|/activate$|/deactivate$|/dry-run$"
EXAMPLES = 8

APP = create_app()
SCHEMA = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP).exclude(path_regex=EXCLUDED)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


# Who calls: the supervisor where the rules, flags and clear personal data are (they may write rules and read
# clear values), city finance elsewhere (it may review, so bulk decisions get past the permission check and
# their bodies are validated).
SUPERVISOR_PATHS = ("/rules", "/flags", "/interception", "/persons")


@pytest.fixture(scope="module")
def fuzz_headers(city):
    with TestClient(APP) as client:
        return {name: {"Authorization": f"Bearer {token_for(client, name)}"} for name in ("supervisor", "city_finance")}


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_the_api_never_answers_500(operation, fuzz_headers):
    errors: list[str] = []
    headers = fuzz_headers["supervisor" if any(p in operation.path for p in SUPERVISOR_PATHS) else "city_finance"]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500:
            errors.append(f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.200} -> "
                          f"{response.status_code}: {response.text[:200]}")

    run()
    assert not errors, "\n".join(errors)


def test_every_get_and_validated_post_is_fuzzed():
    labels = {op.label for op in OPERATIONS}
    assert len(labels) >= 30
    assert "POST /api/v1/applications/bulk-decision" in labels and "POST /api/v1/persons/search" in labels
