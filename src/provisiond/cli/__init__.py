"""The ``provisiond`` command line: server commands on the database, admin commands over the API."""
