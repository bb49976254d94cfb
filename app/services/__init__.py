"""Business rules as plain functions; they flush, the request or CLI batch commits."""
