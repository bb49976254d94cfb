"""Plain libraries with no app imports: coordinate systems, GeoJSON geometry, ... usable from every layer."""
