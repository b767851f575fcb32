"""Servers: `serve tcp|udp`, the sessions they run and the guard that bounds what a peer may spend."""
