"""I/O layer: sockets, asyncio, TLS, servers. Returns core result models; never prints."""
