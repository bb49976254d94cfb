"""Reading many cases at once: spatial lists and maps, hotspots and heat maps, statistics."""
