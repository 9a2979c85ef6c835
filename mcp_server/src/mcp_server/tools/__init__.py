"""The tools, grouped by concern. Each module holds plain functions; server.py registers them."""
