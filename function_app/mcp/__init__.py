"""MCP servers behind the gateway: JSON-RPC checks, tool allow-lists, sealed sessions (#29)."""
