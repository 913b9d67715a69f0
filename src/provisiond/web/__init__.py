"""The admin console (server-rendered), mounted at ``/`` by the API's application factory."""

from provisiond.web.app import create_console

__all__ = ["create_console"]
