"""Writes a GeoJSON FeatureCollection of N irregular grid cells tiling one district.

The cells come from app.services.gridgen (the generator behind the demo data): a jittered lattice, so
neighbouring polygons share their edges exactly, grouped district > street > community > grid.

    python -m bench.gen_grid --cells 10000 --out bench/out/grid-10000.geojson
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from app.services.grid.gridgen import GridSpec, generate

DEFAULT_DISTRICT = ("110105", "朝阳区（基准）")
DEFAULT_ORIGIN = (116.40, 39.90)


def spec_for(
    cells: int,
    *,
    cell_size_m: float = 100.0,
    seed: int = 7,
    district: tuple[str, str] = DEFAULT_DISTRICT,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
) -> GridSpec:
    """A spec with exactly `cells` grid cells: streets x communities x side², squarest shape first.

    10,000 -> 10 streets x 10 communities x 10x10 cells of ~100 m (a 10 km x 10 km district).
    """
    if cells < 1:
        raise ValueError("cells must be at least 1")
    for side in (10, 9, 8, 7, 6, 5, 4, 3, 2, 1):
        if cells % (side * side):
            continue
        communities_total = cells // (side * side)
        # Streets: the largest divisor not above the square root, so the district is close to square.
        streets = max(d for d in range(1, math.isqrt(communities_total) + 1) if communities_total % d == 0)
        per_street = communities_total // streets
        if streets <= 999 and per_street <= 999:
            return GridSpec(
                district_code=district[0],
                district_name=district[1],
                origin_lon=origin[0],
                origin_lat=origin[1],
                streets=streets,
                communities_per_street=per_street,
                grid_side=side,
                cell_size_m=cell_size_m,
                seed=seed,
            )
    raise ValueError(f"cannot lay out {cells} cells as streets x communities x side² (at most 999 each)")


def extent(spec: GridSpec) -> tuple[float, float, float, float]:
    """The district's bounding box (its outline is straight, so every point inside is in a grid cell)."""
    dlon = spec.cell_size_m / (111_320.0 * math.cos(math.radians(spec.origin_lat)))
    dlat = spec.cell_size_m / 110_574.0
    return (
        spec.origin_lon,
        spec.origin_lat,
        round(spec.origin_lon + spec.cols * dlon, 7),
        round(spec.origin_lat + spec.rows * dlat, 7),
    )


def progress_bar(items: Iterable, label: str) -> Iterator:
    items = list(items)
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar


def feature_collection(spec: GridSpec, show_progress: bool = True) -> dict:
    features = generate(spec, progress_bar if show_progress else (lambda it, _label: it))
    return {"type": "FeatureCollection", "features": features}


@click.command()
@click.option("--cells", "-n", default=10_000, show_default=True, help="Number of grid-level cells.")
@click.option("--cell-size", default=100.0, show_default=True, help="Nominal cell edge in metres.")
@click.option("--seed", default=7, show_default=True, help="Seed for the vertex jitter.")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (default bench/out/grid-N.geojson); '-' writes to stdout.",
)
def main(cells: int, cell_size: float, seed: int, out: Path | None) -> None:
    """Generate N irregular grid cells (district > street > community > grid) as GeoJSON."""
    try:
        spec = spec_for(cells, cell_size_m=cell_size, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cells") from exc
    fc = feature_collection(spec)
    text = json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
    if str(out) == "-":
        sys.stdout.write(text)
        return
    out = out or Path(__file__).resolve().parent / "out" / f"grid-{cells}.geojson"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(
        f"{spec.streets} streets x {spec.communities_per_street} communities x "
        f"{spec.grid_side}x{spec.grid_side} cells = {spec.grid_cells} grid cells "
        f"({len(fc['features'])} features) -> {out}",
        err=True,
    )


if __name__ == "__main__":
    main()
