"""Schemathesis against a seeded provisiond over real HTTP: every operation of the OpenAPI
document, bounded and derandomized so a run is the same on every machine.

Path ids are either generated (so the 404s are exercised) or the seeded records' (so the 2xx and
409s are): a drawn boolean per case decides. Destructive operations run last, so the seed stays
alive for the others. The worker is off: nothing reaches the target app but the connection
test and the one-user provision the API itself performs, both against the local SCIM server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from provisiond.api import create_app
from provisiond.runtime import Runtime
from tests.e2e.conftest import person, scim_app
from tests.support.servers import serve_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # Invalid input is refused. Not positive_data_acceptance: some rules are beyond a JSON
    # schema (a CEL rule's syntax, an email's domain, a principal that must exist) and are 422s.
    negative_data_rejection,
]
EXAMPLES = 5  # per operation and generation mode: ~60 s for the whole API on 2 busy cores
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@pytest.fixture
def seeded(runtime: Runtime, target: str, admin_token: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A server holding one of everything; its URL and the ids of the records, by path name."""
    with serve_app(create_app(runtime=runtime, start_worker=False)) as url:
        with httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin_token}"}
        ) as api:

            def made(response: httpx.Response) -> dict[str, Any]:
                assert response.status_code in (200, 201, 202), response.text
                body: dict[str, Any] = response.json()
                return body

            user = made(api.post("/users", json=person("ada.lovelace")))
            group = made(api.post("/groups", json={"name": "engineers"}))
            child = made(api.post("/groups", json={"name": "interns"}))
            api.put(f"/groups/{group['id']}/users/{user['id']}").raise_for_status()
            app = made(api.post("/apps", json=scim_app("crm", target)))
            settings = made(api.get(f"/apps/{app['id']}/provisioning"))
            features = {**settings["features"], "push_groups": True}
            made(
                api.put(
                    f"/apps/{app['id']}/provisioning",
                    json={**settings, "enabled": True, "features": features},
                )
            )
            role = made(api.post(f"/apps/{app['id']}/roles", json={"name": "viewer"}))
            assignment = made(
                api.post(
                    f"/apps/{app['id']}/assignments",
                    json={"principal_type": "user", "principal_id": user["id"]},
                )
            )
            made(api.post(f"/apps/{app['id']}/push-groups", json={"group": group["id"]}))
            run = made(api.post(f"/apps/{app['id']}/sync"))
        yield url, {
            "user_id": user["id"],
            "group_id": group["id"],
            "child_id": child["id"],
            "app_id": app["id"],
            "role_id": role["id"],
            "assignment_id": assignment["id"],
            "run_id": run["id"],
        }


# Operations that reach a system the request itself names (an LDAP source's URL): the
# generated one does not exist, and the 502 saying so is the declared answer, not a bug.
OUTBOUND = {"POST /api/v1/ldap-imports", "POST /api/v1/ldap-sources/{source_id}/run"}


# Operations whose body is a file (``text/csv``, any bytes): a "negative" body generated from
# its schema ({"type": "string"}) is a JSON value sent as text, which is a file too; the import
# judges it (an unusable header makes the import ``invalid``, applied never), so refusing it
# is not the document's promise.
RAW_BODY = {"POST /api/v1/imports"}


def _destructive_last(operation: schemathesis.APIOperation) -> bool:
    return operation.method.upper() == "DELETE"


def _substitutable(operation: schemathesis.APIOperation) -> bool:
    # A generated connector URL on the seeded app would send its connection test anywhere.
    return not (operation.method.upper() == "PATCH" and operation.path == "/api/v1/apps/{app_id}")


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    url: str,
    ids: dict[str, str],
    found: dict[str, dict[str, str]],
) -> None:
    """Run one operation's generated cases in one mode; each distinct failure, with an example
    request, lands in ``found``."""
    substitute = _substitutable(operation)
    headers = {"Authorization": ids["token"]}

    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case, real: bool) -> None:
        if real and substitute:
            for name in case.path_parameters or {}:
                if name in ids:
                    case.path_parameters[name] = ids[name]  # type: ignore[index]
        response = case.call(base_url=url, headers=headers)
        checks = CHECKS
        if operation.label in OUTBOUND and response.status_code == 502:
            checks = [check for check in CHECKS if check is not not_a_server_error]
        if operation.label in RAW_BODY:
            checks = [check for check in checks if check is not negative_data_rejection]
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                found.setdefault(operation.label, {}).setdefault(
                    failure.title,
                    f"{response.status_code} {response.text[:200]} "
                    f"<- {case.as_curl_command(headers=headers)[:300]}",
                )

    try:
        run()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no parameters, no body).
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_operation_conforms_to_the_document(
    seeded: tuple[str, dict[str, str]], admin_token: str
) -> None:
    url, ids = seeded
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()), key=_destructive_last
    )
    assert len(operations) >= 50, [op.label for op in operations]
    found: dict[str, dict[str, str]] = {}  # operation -> failure -> one example
    for operation in operations:
        for mode in MODES:
            _fuzz(operation, mode, url, {**ids, "token": f"Bearer {admin_token}"}, found)
    report = "\n".join(
        f"{label}: {title}: {example}"
        for label, failures in found.items()
        for title, example in failures.items()
    )
    assert not found, f"{sum(map(len, found.values()))} mismatches:\n{report}"
