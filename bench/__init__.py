"""Benchmark: our POST /api/v1/reports on PostGIS against a one-statement psycopg floor, and locate on SpatiaLite."""
