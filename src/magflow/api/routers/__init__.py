"""Thin routers: parse, authorise, call the sync engine or the read-side queries, commit at the edge."""
