"""provisiond: one directory of people, every connected application kept in sync with it."""

__version__ = "0.1.0"
