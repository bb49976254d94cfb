"""Generates a district of irregular, exactly tiling cells (demo data and the benchmark grid)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.ops import unary_union

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class GridSpec:
    district_code: str
    district_name: str
    origin_lon: float  # south-west corner
    origin_lat: float
    streets: int = 3
    communities_per_street: int = 3
    grid_side: int = 4  # each community is grid_side x grid_side grid cells
    cell_size_m: float = 250.0
    jitter: float = 0.25  # interior vertices move up to this share of a cell
    seed: int = 7

    @property
    def cols(self) -> int:
        return self.streets * self.grid_side

    @property
    def rows(self) -> int:
        return self.communities_per_street * self.grid_side

    @property
    def grid_cells(self) -> int:
        return self.cols * self.rows


def _lattice(spec: GridSpec) -> list[list[tuple[float, float]]]:
    rng = random.Random(spec.seed)
    dlon = spec.cell_size_m / (M_PER_DEG_LON_EQUATOR * math.cos(math.radians(spec.origin_lat)))
    dlat = spec.cell_size_m / M_PER_DEG_LAT
    points = []
    for i in range(spec.cols + 1):
        column = []
        for j in range(spec.rows + 1):
            x, y = i, j
            # Interior vertices wander; the district's outline stays straight.
            if 0 < i < spec.cols:
                x += rng.uniform(-spec.jitter, spec.jitter)
            if 0 < j < spec.rows:
                y += rng.uniform(-spec.jitter, spec.jitter)
            column.append((round(spec.origin_lon + x * dlon, 7), round(spec.origin_lat + y * dlat, 7)))
        points.append(column)
    return points


def _feature(code: str, name: str, level: str, parent_code: str | None, geom) -> dict[str, Any]:
    multi = geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])
    return {
        "type": "Feature",
        "geometry": mapping(multi),
        "properties": {"code": code, "name": name, "level": level, "parent_code": parent_code},
    }


def generate(spec: GridSpec, progress: Callable[[Iterable, str], Iterable] = lambda it, _l: it) -> list[dict]:
    """Features for one district, its streets, communities and grid cells, parents first."""
    lattice = _lattice(spec)
    grid_digits = 2 if spec.grid_side**2 <= 99 else 3
    features: list[dict] = []
    street_parts: dict[str, list] = {}
    community_features: list[dict] = []
    grid_features: list[dict] = []
    for s in progress(range(spec.streets), "Generating streets"):
        street_code = f"{spec.district_code}{s + 1:03d}"
        street_parts[street_code] = []
        for c in range(spec.communities_per_street):
            community_code = f"{street_code}{c + 1:03d}"
            quads = []
            n = 0
            for gj in range(spec.grid_side):
                for gi in range(spec.grid_side):
                    i, j = s * spec.grid_side + gi, c * spec.grid_side + gj
                    quad = Polygon(
                        [lattice[i][j], lattice[i + 1][j], lattice[i + 1][j + 1], lattice[i][j + 1], lattice[i][j]]
                    )
                    n += 1
                    quads.append(quad)
                    grid_features.append(
                        _feature(
                            f"{community_code}{n:0{grid_digits}d}",
                            f"第{s + 1}街道第{c + 1}社区第{n}网格",
                            "grid",
                            community_code,
                            quad,
                        )
                    )
            community = unary_union(quads)
            street_parts[street_code].append(community)
            community_features.append(
                _feature(community_code, f"第{s + 1}街道第{c + 1}社区", "community", street_code, community)
            )
    street_features = []
    for s, (code, parts) in enumerate(street_parts.items()):
        street_features.append(_feature(code, f"第{s + 1}街道", "street", spec.district_code, unary_union(parts)))
    district = unary_union([unary_union(p) for p in street_parts.values()])
    features.append(_feature(spec.district_code, spec.district_name, "district", None, district))
    return features + street_features + community_features + grid_features
