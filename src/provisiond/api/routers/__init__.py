"""One router per resource, as DESIGN.md lists them."""
