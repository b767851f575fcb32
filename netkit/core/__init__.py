"""Pure core: models, parsing, statistics, wire formats. No sockets, no clocks, no printing."""
