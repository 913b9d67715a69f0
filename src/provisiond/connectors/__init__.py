"""Connectors: the one I/O seam between the engine and an application."""

from provisiond.connectors.base import ConnectionReport, Connector, Quirks, RemoteUser

__all__ = ["ConnectionReport", "Connector", "Quirks", "RemoteUser"]
