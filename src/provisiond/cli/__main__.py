"""``python -m provisiond.cli``: the same as the ``provisiond`` script."""

from provisiond.cli.main import app

app(prog_name="provisiond")
