"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis, in-process ASGI).

Every operation gets generated requests with a valid super admin token: no response may be
a 5xx, and every documented response must match its schema. (Token attacks are covered in
test_hostile.py; here the token is valid so the fuzzing reaches the handlers.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from audit_app.api import create_api
from audit_app.settings import Settings, get_settings
from tests.api.test_evidence_bundle import private_pem
from tests.helpers import TokenFactory

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES_PER_OPERATION = 25


def test_api_never_fails_and_keeps_its_schema(
    settings: Settings, make_token: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (The schemathesis pytest plugin does not run under pytest 9, so the operations are driven here.)
    # A deployment that serves bundles has a signing key; without one, format=bundle is a deliberate 503.
    monkeypatch.setenv("AUDIT_EXPORT_SIGNING_KEY", private_pem(Ed25519PrivateKey.generate()))
    get_settings.cache_clear()
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api())
    authorization = f"Bearer {make_token('super_admin')}"
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": authorization}
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # collected: one report naming every failing operation
            failures[operation.label] = str(exc)[:2000]
    assert failures == {}
