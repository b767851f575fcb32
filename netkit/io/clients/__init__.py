"""Clients that hold connections or ask peers: `send tcp|udp`, the connection pool, reflector queries."""
