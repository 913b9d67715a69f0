"""The console's pages, one module per area of the admin's path."""
