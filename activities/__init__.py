"""Every side effect of an order: PostgreSQL and the outside systems over HTTP."""
