"""A real SCIM 2.0 application to provision into: the stock scim2-server, served by uvicorn.

scim2-server's own command line is a wsgiref server (HTTP/1.0, five queued connections), which
drops requests under concurrency; its ASGI application behind uvicorn does not. Used by
``make demo``, the end-to-end tests and the benchmarks::

    python -m provisiond.demo.target --port 8081 --bearer-token secret [--no-patch]
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    External,
    Reference,
    ScimProvider,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


@functools.cache
def _described() -> ScimProvider:
    """The default schemas as models, built once: each build makes pydantic models from the
    schemas (~0.3-0.8 s), which tests that start a target each would otherwise pay every time."""
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values()
    )


class BearerTokenASGIApplication(ASGIApplication):
    """scim2-server's ASGI application, refusing requests without one of the bearer tokens."""

    def __init__(self, bearer_tokens: Iterable[str], *, patch: bool = True) -> None:
        config = load_default_service_provider_config()
        tokens = set(bearer_tokens)
        if tokens:
            config.authentication_schemes = [
                AuthenticationScheme(
                    type=AuthenticationScheme.Type.oauthbearertoken,
                    name="bearer_token",
                    description="HTTP Bearer Token",
                    spec_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc6750"),
                )
            ]
        if not patch and config.patch is not None:
            config.patch.supported = False
        described = _described()
        provider = ScimProvider(
            models=described.models, resource_types=described.resource_types, config=config
        )
        super().__init__(AsyncInMemoryStorage(), provider)
        self.bearer_tokens = tokens

    def check_auth(self, request: ScimRequest) -> None:
        if not self.bearer_tokens:
            return
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.bearer_tokens:
            raise UnauthorizedException


def build(bearer_tokens: Iterable[str] = (), *, patch: bool = True) -> Any:
    return BearerTokenASGIApplication(bearer_tokens, patch=patch)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--bearer-token", action="append", default=[])
    parser.add_argument("--no-patch", action="store_true", help="announce PATCH as unsupported")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    uvicorn.run(
        build(args.bearer_token, patch=not args.no_patch),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
