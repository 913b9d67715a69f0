"""Use cases. Each function takes the session explicitly and leaves committing to the caller."""
