"""The grid of cells: queries, edits and the all-or-nothing GeoJSON import."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from geoalchemy2.shape import to_shape
from shapely import STRtree
from shapely.geometry import MultiPolygon
from sqlalchemy import Select, exists, select

from app.dialect import spatial
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.lib.geometry import (
    GeometryProblem,
    overlap_m2,
    parse_polygonal,
    to_db,
    to_geojson,
)
from app.lib.i18n import tr
from app.models import (
    CODE_LENGTHS,
    Cell,
    CellLevel,
    Report,
    User,
    WorkerCell,
    in_subtree,
)

CODE_PATTERN = re.compile(r"^\d+$")
MAX_SIBLING_OVERLAP_M2 = 1.0

Progress = Callable[[Iterable, str], Iterable]


def _no_progress(items: Iterable, _label: str) -> Iterable:
    return items


# ---- queries ---------------------------------------------------------------------------------


def cells_query(
    *,
    level: list[str] | None = None,
    parent_id: int | None = None,
    code_prefix: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    active: bool | None = None,
) -> Select:
    stmt = select(Cell)
    if level:
        stmt = stmt.where(Cell.level.in_(level))
    if parent_id is not None:
        stmt = stmt.where(Cell.parent_id == parent_id)
    if code_prefix:
        stmt = stmt.where(in_subtree(Cell.code, code_prefix))
    if bbox is not None:
        stmt = stmt.where(spatial.bbox_filter(Cell.geom, Cell.id, bbox))
    if active is not None:
        stmt = stmt.where(Cell.active.is_(active))
    return stmt.order_by(Cell.code)


def get_cell(cell_id: int) -> Cell:
    cell = db.session.get(Cell, cell_id)
    if cell is None:
        raise NotFound(tr("No cell with id {cell_id}.", cell_id=cell_id), code="cell_not_found")
    return cell


def get_cell_by_code(code: str) -> Cell | None:
    return db.session.scalars(select(Cell).where(Cell.code == code)).first()


def resolve_cell(cell_id: int | None = None, code: str | None = None) -> Cell | None:
    """The cell a filter names by id (`cell_id`), code (`cell`) or both; None when neither is given.

    Either naming no cell, or the two naming different cells, is bad input: 422 on the parameter at fault."""
    by_id = by_code = None
    if cell_id is not None:
        by_id = db.session.get(Cell, cell_id)
        if by_id is None:
            raise ValidationFailed(errors={"cell_id": [tr("No cell with id {cell_id}.", cell_id=cell_id)]})
    if code is not None:
        by_code = get_cell_by_code(code)
        if by_code is None:
            raise ValidationFailed(errors={"cell": [tr("No cell with code {code}.", code=code)]})
    if by_id is not None and by_code is not None and by_id.id != by_code.id:
        raise ValidationFailed(
            errors={"cell": [tr("Cell {code} is not cell id {cell_id}.", code=code, cell_id=cell_id)]}
        )
    return by_id or by_code


def ancestors(cell: Cell) -> list[Cell]:
    """Root first, the cell's parent last."""
    chain: list[Cell] = []
    current = cell.parent
    while current is not None:
        chain.append(current)
        current = current.parent
    return list(reversed(chain))


def cells_feature_collection(**filters: Any) -> dict[str, Any]:
    return feature_collection(db.session.scalars(cells_query(**filters)))


def feature_collection(cells: Iterable[Cell]) -> dict[str, Any]:
    features = []
    for cell in cells:
        features.append(
            {
                "type": "Feature",
                "id": cell.id,
                "geometry": to_geojson(cell.geom),
                "properties": {
                    "id": cell.id,
                    "code": cell.code,
                    "name": cell.name,
                    "level": cell.level,
                    "parent_id": cell.parent_id,
                    "active": cell.active,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# ---- import ----------------------------------------------------------------------------------


@dataclass
class ValidFeature:
    index: int
    code: str
    name: str
    level: CellLevel
    parent_code: str | None
    geom: MultiPolygon
    active: bool


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


def _code_problems(code: str, level: CellLevel) -> list[str]:
    if not CODE_PATTERN.match(code):
        return ["code must contain digits only"]
    lengths = CODE_LENGTHS[level]
    if len(code) not in lengths:
        return [f"a {level.value} code has {' or '.join(map(str, lengths))} digits, got {len(code)}"]
    return []


def _parse_feature(index: int, feature: Any) -> tuple[ValidFeature | None, list[str]]:
    reasons: list[str] = []
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, ["not a GeoJSON Feature"]
    props = feature.get("properties")
    if not isinstance(props, dict):
        return None, ["properties are missing"]
    code = props.get("code")
    name = props.get("name")
    level_raw = props.get("level")
    parent_code = props.get("parent_code")
    active = props.get("active", True)
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not code:
        reasons.append("code is required (a string of digits)")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        reasons.append("name is required (1-200 characters)")
    try:
        level = CellLevel(level_raw)
    except ValueError:
        level = None
        reasons.append(f"level must be one of {', '.join(lv.value for lv in CellLevel)}")
    if parent_code is not None and isinstance(parent_code, int) and not isinstance(parent_code, bool):
        parent_code = str(parent_code)
    if parent_code is not None and not isinstance(parent_code, str):
        reasons.append("parent_code must be a string")
    if not isinstance(active, bool):
        reasons.append("active must be true or false")
    if isinstance(code, str) and level is not None:
        reasons.extend(_code_problems(code, level))
    geom = None
    try:
        geom = parse_polygonal(feature.get("geometry"))
    except GeometryProblem as exc:
        reasons.append(str(exc))
    if reasons:
        return None, reasons
    return ValidFeature(index, code, name.strip(), level, parent_code or None, geom, active), []


def validate_import(features: list[Any], progress: Progress = _no_progress) -> list[ValidFeature]:
    """Check every feature against the file and the database; raise listing every bad one."""
    problems: dict[int, list[str]] = defaultdict(list)
    parsed: list[ValidFeature] = []
    first_index_of: dict[str, int] = {}
    rejected_index_of: dict[str, int] = {}
    for index, feature in enumerate(progress(features, "Checking features")):
        valid, reasons = _parse_feature(index, feature)
        raw_code = _code_of(feature)
        if isinstance(raw_code, (str, int)) and not isinstance(raw_code, bool):
            raw_code = str(raw_code)
            # Duplicates are caught whether or not the first feature with the code is valid.
            if raw_code in first_index_of:
                reasons.append(f"duplicate code {raw_code} (also feature {first_index_of[raw_code]})")
            else:
                first_index_of[raw_code] = index
        if reasons:
            problems[index].extend(reasons)
            if isinstance(raw_code, str):
                rejected_index_of.setdefault(raw_code, index)
            continue
        parsed.append(valid)

    in_file = {f.code: f for f in parsed}
    wanted = set(in_file) | {f.parent_code for f in parsed if f.parent_code}
    existing = {c.code: c for c in _cells_with_codes(wanted)}

    for f in parsed:
        current = existing.get(f.code)
        if current is not None and current.level != f.level.value:
            problems[f.index].append(f"cell {f.code} exists as a {current.level}; its level cannot change")
        if f.level == CellLevel.district:
            if f.parent_code:
                problems[f.index].append("a district has no parent: level not one below the parent's")
            continue
        if not f.parent_code:
            problems[f.index].append(f"parent_code is required for a {f.level.value}")
            continue
        parent_level = (
            in_file[f.parent_code].level
            if f.parent_code in in_file
            else CellLevel(existing[f.parent_code].level)
            if f.parent_code in existing
            else None
        )
        if parent_level is None:
            if f.parent_code in rejected_index_of:
                # The parent is in the file but bad itself: say so rather than "unknown".
                problems[f.index].append(
                    f"parent {f.parent_code} is itself invalid (feature {rejected_index_of[f.parent_code]})"
                )
            else:
                problems[f.index].append(f"unknown parent {f.parent_code}")
            continue
        if parent_level.child != f.level:
            problems[f.index].append(
                f"level not one below the parent's: a {f.level.value} cannot sit under a {parent_level.value}"
            )
        if not f.code.startswith(f.parent_code) or len(f.code) <= len(f.parent_code):
            problems[f.index].append(f"code {f.code} does not extend the parent's code {f.parent_code}")

    _check_sibling_overlaps(
        [f for f in parsed if f.index not in problems and f.level == CellLevel.grid], existing, problems
    )
    if problems:
        bad = [{"index": i, "code": _code_of(features[i]), "reasons": problems[i]} for i in sorted(problems)]
        raise ValidationFailed(
            tr("{bad} of {total} features are invalid; nothing was imported.", bad=len(bad), total=len(features)),
            code="invalid_grid_import",
            errors=bad,
        )
    return parsed


def _code_of(feature: Any) -> Any:
    if isinstance(feature, dict) and isinstance(feature.get("properties"), dict):
        return feature["properties"].get("code")
    return None


def _check_sibling_overlaps(
    grid_features: list[ValidFeature], existing: dict[str, Cell], problems: dict[int, list[str]]
) -> None:
    by_parent: dict[str, list[ValidFeature]] = defaultdict(list)
    for f in grid_features:
        by_parent[f.parent_code].append(f)
    # The stored siblings of every parent in one query, not one per parent.
    parent_ids = {existing[code].id: code for code in by_parent if code in existing}
    stored: dict[str, list[Cell]] = defaultdict(list)
    if parent_ids:
        for chunk in _chunks(parent_ids):
            for cell in db.session.scalars(select(Cell).where(Cell.parent_id.in_(chunk))):
                stored[parent_ids[cell.parent_id]].append(cell)
    for parent_code, siblings in by_parent.items():
        shapes: list[tuple[str, int | None, Any]] = [(f.code, f.index, f.geom) for f in siblings]
        codes_in_file = {f.code for f in siblings}
        shapes.extend(
            (cell.code, None, to_shape(cell.geom)) for cell in stored[parent_code] if cell.code not in codes_in_file
        )
        tree = STRtree([s[2] for s in shapes])
        for i, (code, index, geom) in enumerate(shapes):
            if index is None:
                continue
            for j in tree.query(geom):
                j = int(j)
                if j == i or (shapes[j][1] is not None and j < i):
                    continue
                area = overlap_m2(geom, shapes[j][2])
                if area > MAX_SIBLING_OVERLAP_M2:
                    problems[index].append(
                        f"overlaps sibling grid cell {shapes[j][0]} by {area:.1f} m² (more than 1 m²)"
                    )
                    if shapes[j][1] is not None:
                        problems[shapes[j][1]].append(
                            f"overlaps sibling grid cell {code} by {area:.1f} m² (more than 1 m²)"
                        )


# PostgreSQL takes at most 65,535 bound values per statement: a city's file of 100,000 cells is asked in parts.
_IN_CHUNK = 10_000


def _chunks(values) -> list[list]:
    values = list(values)
    return [values[start : start + _IN_CHUNK] for start in range(0, len(values), _IN_CHUNK)]


def _cells_with_codes(codes) -> list[Cell]:
    return [cell for chunk in _chunks(codes) for cell in db.session.scalars(select(Cell).where(Cell.code.in_(chunk)))]


def apply_import(valid: list[ValidFeature], progress: Progress = _no_progress) -> ImportResult:
    codes = [f.code for f in valid]
    existing = {c.code: c for c in _cells_with_codes(codes)}
    parent_codes = {f.parent_code for f in valid if f.parent_code}
    ids = {
        code: cell_id
        for chunk in _chunks(parent_codes)
        for code, cell_id in db.session.execute(select(Cell.code, Cell.id).where(Cell.code.in_(chunk)))
    }
    created = updated = 0
    ordered = sorted(valid, key=lambda f: (f.level.rank, f.code))
    current_rank = None
    for f in progress(ordered, "Writing cells"):
        if f.level.rank != current_rank:
            # Parents of this level were written in the previous pass; learn their ids.
            db.session.flush()
            ids.update({c.code: c.id for c in existing.values() if c.id is not None})
            current_rank = f.level.rank
        cell = existing.get(f.code)
        if cell is None:
            cell = Cell(code=f.code, level=f.level.value)
            db.session.add(cell)
            existing[f.code] = cell
            created += 1
        else:
            updated += 1
        cell.name = f.name
        cell.geom = to_db(f.geom)
        cell.active = f.active
        cell.parent_id = ids.get(f.parent_code) if f.parent_code else None
    db.session.flush()
    return ImportResult(created=created, updated=updated)


def import_cells(features: list[Any], progress: Progress = _no_progress) -> ImportResult:
    return apply_import(validate_import(features, progress), progress)


# ---- single-cell edits -----------------------------------------------------------------------


def _validate_single(feature: dict[str, Any], field: str) -> ValidFeature:
    """One cell checked by the import's rules; its reasons are reported under `field`."""
    try:
        return validate_import([feature])[0]
    except ValidationFailed as exc:
        reasons = exc.extra["errors"][0]["reasons"]
        raise ValidationFailed(
            tr("The cell is not valid: {reasons}", reasons="; ".join(reasons)),
            code="invalid_cell",
            errors={field: reasons},
        ) from exc


def create_cell(
    *, code: str, name: str, level: str, parent_code: str | None, geometry: Any, active: bool = True
) -> Cell:
    if get_cell_by_code(code) is not None:
        raise Conflict(tr("A cell with code {code} exists.", code=code), code="cell_code_taken")
    feature = {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"code": code, "name": name, "level": level, "parent_code": parent_code, "active": active},
    }
    apply_import([_validate_single(feature, "cell")])
    return get_cell_by_code(code)


def update_cell(cell: Cell, changes: dict[str, Any]) -> Cell:
    if "geometry" in changes:
        parent = cell.parent
        feature = {
            "type": "Feature",
            "geometry": changes["geometry"],
            "properties": {
                "code": cell.code,
                "name": changes.get("name", cell.name),
                "level": cell.level,
                "parent_code": parent.code if parent else None,
                "active": changes.get("active", cell.active),
            },
        }
        cell.geom = to_db(_validate_single(feature, "geometry").geom)
    if "name" in changes:
        cell.name = changes["name"].strip()
    if "active" in changes:
        cell.active = changes["active"]
    db.session.flush()
    return cell


def delete_cell(cell: Cell) -> None:
    blockers = []
    if db.session.scalar(select(exists().where(Cell.parent_id == cell.id))):
        blockers.append("it has child cells")
    if db.session.scalar(select(exists().where(Report.cell_id == cell.id))):
        blockers.append("reports are routed to it")
    if db.session.scalar(select(exists().where(WorkerCell.cell_id == cell.id))) or db.session.scalar(
        select(exists().where(User.cell_id == cell.id))
    ):
        blockers.append("users are assigned to it")
    if blockers:
        raise Conflict(
            tr("Cell {code} cannot be deleted: {blockers}.", code=cell.code, blockers="; ".join(blockers)),
            code="cell_in_use",
        )
    db.session.delete(cell)
    db.session.flush()
