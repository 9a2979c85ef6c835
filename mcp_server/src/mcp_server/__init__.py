"""The travel tool server: destination facts, climate normals and planning helpers over MCP."""

__version__ = "0.1.0"
