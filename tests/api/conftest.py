from tests.e2e.conftest import admin_token, api, server, target  # noqa: F401
