"""An app's connector is stored as a JSON public half and a sealed secret half: a property."""

from __future__ import annotations

import json
import string
from typing import Any

from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from provisiond.connectors.registry import connector_settings
from provisiond.domain.apps import ScimConnectorSettings
from provisiond.services.apps import _seal
from provisiond.store.secrets import Vault

VAULT = Vault(Fernet.generate_key())
# Secrets long and marked enough that finding one in the public half is never a coincidence.
secrets = st.text(string.ascii_letters + string.digits + ":%+/ ", min_size=8).map(
    lambda text: f"SECRET<{text}>"
)
names = st.text(string.ascii_letters + string.digits + "-._", min_size=1, max_size=20)
urls = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["http", "https"]),
    st.sampled_from(["login.example.org", "127.0.0.1", "idp.test"]),
    st.sampled_from(["", ":8443"]),
    names,
)
auths = st.one_of(
    st.just({"type": "none"}),
    st.builds(lambda token: {"type": "bearer", "token": token}, secrets),
    st.builds(
        lambda user, password: {"type": "basic", "username": user, "password": password},
        names,
        secrets,
    ),
    st.builds(
        lambda url, client, secret, scope, method: {
            "type": "oauth2_client_credentials",
            "token_url": url,
            "client_id": client,
            "client_secret": secret,
            "scope": scope,
            "token_endpoint_auth_method": method,
        },
        urls,
        names,
        secrets,
        st.none() | names,
        st.sampled_from(["client_secret_basic", "client_secret_post"]),
    ),
)


@given(base_url=urls, auth=auths)
def test_sealing_stores_json_without_secrets_and_opens_to_the_same_settings(
    base_url: str, auth: dict[str, Any]
) -> None:
    settings = ScimConnectorSettings.model_validate({"base_url": base_url, "auth": auth})

    public, sealed = _seal(settings, VAULT)

    stored = json.dumps(public)  # what the JSON column holds
    for value in auth.values():
        if isinstance(value, str) and value.startswith("SECRET<"):
            assert value not in stored
            assert sealed is not None and value not in sealed
    assert (sealed is None) == (auth["type"] == "none")
    assert connector_settings(json.loads(stored), VAULT.open(sealed)) == settings
