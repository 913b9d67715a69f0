"""The demo: a stock scim2-server application to provision into, and seed data."""
