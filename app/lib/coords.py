"""Conversions between WGS-84 and the Chinese map datums (GCJ-02, BD-09), exact to well under a metre."""

from __future__ import annotations

import math
from typing import Any

CRS_VALUES = ("wgs84", "gcj02", "bd09")
# Every coordinate an answer carries is rounded to this many decimals: 1e-7 degree is about 1 cm.
COORDINATE_DECIMALS = 7

# Krasovsky 1940 ellipsoid, as the GCJ-02 obfuscation defines it.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def _outside_china(lon: float, lat: float) -> bool:
    # GCJ-02 leaves points outside this box unshifted.
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _shift_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    if _outside_china(lon, lat):
        return lon, lat
    dlat = _shift_lat(lon - 105.0, lat - 35.0)
    dlon = _shift_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _invert(forward, lon: float, lat: float) -> tuple[float, float]:
    """Solve forward(x) = (lon, lat) by fixed-point iteration; the shifts vary slowly, so it converges fast."""
    x, y = lon, lat
    for _ in range(30):
        fx, fy = forward(x, y)
        dx, dy = fx - lon, fy - lat
        x, y = x - dx, y - dy
        if abs(dx) < 1e-10 and abs(dy) < 1e-10:
            break
    return x, y


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    return _invert(gcj02_to_bd09, lon, lat)


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _within_range(lon: float, lat: float) -> tuple[float, float]:
    """BD-09's offset applies everywhere, so undoing it near a pole or the antimeridian can step off WGS-84's range
    by up to ~700 m: past a pole is that pole, past the antimeridian wraps round."""
    if lon > 180:
        lon -= 360
    elif lon < -180:
        lon += 360
    return lon, max(-90.0, min(90.0, lat))


def to_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """WGS-84 lon/lat, always within [-180, 180] x [-90, 90] for an input within them."""
    if crs == "wgs84":
        return lon, lat
    if crs == "gcj02":
        return _within_range(*gcj02_to_wgs84(lon, lat))
    if crs == "bd09":
        return _within_range(*bd09_to_wgs84(lon, lat))
    raise ValueError(f"unknown crs {crs!r}; expected one of {CRS_VALUES}")


def from_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    if crs == "wgs84":
        return lon, lat
    if crs == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if crs == "bd09":
        return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    raise ValueError(f"unknown crs {crs!r}; expected one of {CRS_VALUES}")


def shown(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """A WGS-84 point as an answer gives it: in `crs`, rounded to 1 cm (no float noise)."""
    x, y = from_wgs84(lon, lat, crs)
    return round(x, COORDINATE_DECIMALS), round(y, COORDINATE_DECIMALS)


def shown_geometry(geometry: dict[str, Any] | None, crs: str = "wgs84") -> dict[str, Any] | None:
    """A WGS-84 GeoJSON geometry as an answer gives it: every vertex in `crs`, rounded like `shown`."""
    if geometry is None:
        return None
    if geometry.get("type") == "GeometryCollection":
        return {**geometry, "geometries": [shown_geometry(g, crs) for g in geometry["geometries"]]}
    return {**geometry, "coordinates": _positions(geometry["coordinates"], crs)}


def _positions(coordinates: Any, crs: str) -> Any:
    if coordinates and isinstance(coordinates[0], (int, float)):
        return [*shown(coordinates[0], coordinates[1], crs), *coordinates[2:]]
    return [_positions(part, crs) for part in coordinates]
