"""The admin commands' one HTTP client: the REST API under /api/v1, errors made into messages.

An API error (``application/problem+json``) becomes ``ApiError`` (exit 1); a server that cannot
be reached becomes ``CliError`` with exit code 2. The root command prints either as
``error: ...`` on stderr. The token goes into the Authorization header and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import typer

from provisiond import __version__
from provisiond.cli.output import Output

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
MAX_PAGE = 1000  # the API's largest page


class CliError(Exception):
    """A failure to report as ``error: <message>`` and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiError(CliError):
    """The API answered with an error status (a problem document, normally)."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any]) -> None:
        field_name = problem.get("field")
        message = detail
        if field_name and not detail.startswith(f"{field_name}:"):
            message = f"{detail} (field: {field_name})"
        super().__init__(message, 1)
        self.status = status
        self.detail = detail
        self.problem = problem

    @classmethod
    def of(cls, response: httpx.Response, *, token_sent: bool) -> ApiError:
        problem: dict[str, Any] = {}
        try:
            body = response.json()
            if isinstance(body, dict):
                problem = body
        except ValueError:
            pass
        detail = str(problem.get("detail") or problem.get("title") or "").strip()
        if not detail:
            text = response.text.strip().replace("\n", " ")[:200]
            detail = f"HTTP {response.status_code} {response.reason_phrase}"
            detail += f": {text}" if text else ""
        if response.status_code == 401 and not token_sent:
            detail += " (set PROVISIOND_TOKEN; `provisiond token create` makes one)"
        return cls(response.status_code, detail, problem)


def path(*parts: str) -> str:
    """An API path from segments, each one escaped (an id can never climb out of its segment)."""
    return "/" + "/".join(quote(part, safe="") for part in parts)


class Api:
    def __init__(self, server: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        base = self.server if self.server.endswith(API_PREFIX) else self.server + API_PREFIX
        headers = {
            "User-Agent": f"provisiond-cli/{__version__}",
            "Accept": "application/json, application/problem+json",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # httpx costs a tenth of a second to import: only the commands that talk to a server pay.
        import httpx

        self._token_sent = bool(token)
        self._timeout = timeout
        # Loading the CA bundle costs more than the rest of a command's start; a plain-HTTP
        # server (the default, on 127.0.0.1) never uses it. HTTPS is verified as always.
        verify = base.lower().startswith("https:")
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        response = self._send(method, url, params=params, json=json)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.server} did not answer with JSON: is it a provisiond server?", 2
            ) from None

    def text(self, url: str, **params: Any) -> str:
        """A GET whose answer is text (a CSV export), not JSON."""
        return str(self._send("GET", url, params=params).text)

    def _send(
        self, method: str, url: str, *, params: dict[str, Any] | None, json: Any = None
    ) -> Any:
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, url, params=query, json=json)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot connect to the provisiond server at {self.server} ({exc}); is it running? "
                "Point --server or PROVISIOND_SERVER at it.",
                2,
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"the provisiond server at {self.server} did not answer in {self._timeout:g} s", 2
            ) from None
        except httpx.HTTPError as exc:  # a bad URL, a broken connection, a protocol error
            raise CliError(
                f"cannot talk to the provisiond server at {self.server}: {exc}", 2
            ) from None
        if response.is_error:
            raise ApiError.of(response, token_sent=self._token_sent)
        return response

    def get(self, url: str, **params: Any) -> Any:
        return self.request("GET", url, params=params)

    def post(self, url: str, json: Any = None) -> Any:
        return self.request("POST", url, json=json)

    def put(self, url: str, json: Any = None) -> Any:
        return self.request("PUT", url, json=json)

    def patch(self, url: str, json: Any = None) -> Any:
        return self.request("PATCH", url, json=json)

    def delete(self, url: str) -> Any:
        return self.request("DELETE", url)

    def collect(self, url: str, limit: int, **params: Any) -> dict[str, Any]:
        """Up to ``limit`` items of a cursor-paginated list, as one page."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = self.get(url, **params, limit=min(limit - len(items), MAX_PAGE), cursor=cursor)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or len(items) >= limit:
                return {"items": items, "next_cursor": cursor}


@dataclass
class State:
    """What the root command's options set up for every subcommand (``ctx.obj``)."""

    server: str = DEFAULT_SERVER
    token: str | None = field(default=None, repr=False)
    out: Output = field(default_factory=Output)
    _api: Api | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.out.json

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.server, self.token)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # a subcommand invoked without the root command (never from the script)
        found = ctx.ensure_object(State)
    return found
