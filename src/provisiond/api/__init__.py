"""The REST API (/api/v1), health and metrics."""

from provisiond.api.app import create_app

__all__ = ["create_app"]
