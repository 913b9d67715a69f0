"""Tests written as coroutines, for the connectors whose API is async."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any


def synchronously(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """The coroutine run to its end (pytest sees its fixtures through ``functools.wraps``)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return run
