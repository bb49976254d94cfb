"""Accounts, login sessions, grid workers and their cells, API keys."""
