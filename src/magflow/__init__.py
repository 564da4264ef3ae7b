"""magflow: a local, queryable PostgreSQL copy of an eMAG marketplace seller's catalogue."""

__version__ = "0.1.0"
