"""The grid: cells and their import, routing a point to its cell, generating a demo district."""
