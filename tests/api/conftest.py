from tests.e2e.conftest import admin_token, api, scim, server, target  # noqa: F401
from tests.web.conftest import make_admin  # noqa: F401
