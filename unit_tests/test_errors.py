"""The one mapping from a failure to (failure type, message)."""

import pytest
from airbyte_cdk.models import FailureType

from destination_klaviyo.client import ApiErrorItem, KlaviyoApiError, KlaviyoUnreachable
from destination_klaviyo.errors import MissingList, as_traced, classify, config_error, system_error, transient_error


def api(status, method="POST", path="/api/profile-bulk-import-jobs", pointer=None, detail="Nope 'ada@example.com'"):
    return KlaviyoApiError(method, path, status, [ApiErrorItem("E1", str(status), "code", "Title", detail, pointer)])


CASES = [
    (api(401), FailureType.config_error, "rejected the private API key"),
    (api(403, "GET", "/api/accounts"), FailureType.config_error, "accounts:read"),
    (
        api(404, "DELETE", "/api/lists/L9/relationships/profiles"),
        FailureType.config_error,
        "Klaviyo list L9 does not exist",
    ),
    (api(404, pointer="/data/relationships/lists/data/0/id"), FailureType.config_error, "does not exist (404)"),
    (api(400, "GET", "/api/accounts", pointer="revision"), FailureType.config_error, "api_revision"),
    (api(429), FailureType.transient_error, "kept answering 429"),
    (api(503), FailureType.transient_error, "kept answering 503"),
    (api(400, pointer="/data/type"), FailureType.system_error, "Klaviyo answered 400"),
    (api(404, "GET", "/api/profiles"), FailureType.system_error, "Klaviyo answered 404"),
    (KlaviyoUnreachable("timeout"), FailureType.transient_error, "Could not reach Klaviyo"),
    (MissingList("L1", "VIP"), FailureType.config_error, "Klaviyo list L1 (target 'VIP') does not exist"),
    (config_error("fix x"), FailureType.config_error, "fix x"),
    (transient_error("later"), FailureType.transient_error, "later"),
    (system_error("odd input"), FailureType.system_error, "odd input"),
    (ValueError("boom 'secret'"), FailureType.system_error, "ValueError"),
]


@pytest.mark.parametrize("exc,failure_type,text", CASES)
def test_classify(exc, failure_type, text):
    got_type, message = classify(exc)
    assert got_type is failure_type
    assert text in message
    assert "ada@example.com" not in message and "secret" not in message  # quoted values are redacted
    traced = as_traced(exc)
    assert traced.failure_type is failure_type and traced.message == message
