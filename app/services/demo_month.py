"""The demo district's last month of cases, played through the case loop's services at the moments they happened."""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from geoalchemy2.shape import to_shape
from shapely.geometry import Point
from sqlalchemy import func, select

from app.auth.passwords import hash_password
from app.errors import DomainError
from app.extensions import db
from app.models import (
    CLOCK_RUNNING_STATUSES,
    CaseEvent,
    Category,
    Cell,
    CellLevel,
    Duty,
    Report,
    Role,
    User,
    WorkerCell,
)
from app.models.base import clock_at, utcnow
from app.services.calendar import worktime
from app.services.cases import escalation, lifecycle as cases, reports as report_service
from app.services.field.attachments import add_attachment
from app.services.people.sessions import find_user_by_username
from app.services.public.residents import rate

# Marks the seeded cases (Report.source): the month is added once, and only its cases are swept in the past.
SOURCE = "demo"
DAYS = 30
SEED = 14
# Worker1's and worker2's cells stay as the README's walk-through finds them: its worker lists and tasks are theirs.
WALKTHROUGH_GRIDS = ("01", "02")
# A community whose grid worker post is vacant: its accepted cases wait for a worker (and escalate).
VACANT_COMMUNITY = "003003"

# One grid worker per community (but the vacant one), primary in all its grid cells; more residents who file.
CREW_NAMES = ["王芳", "李强", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周敏"]
# Their usernames: gw + street + community number, e.g. gw001003.
CREW_HINT = "gw001001 ... gw003002"
RESIDENTS = [("13900139001", "居民李四"), ("13900139002", "居民王五"), ("13900139003", "居民赵六")]
RESIDENTS += [("13900139004", "居民孙七"), ("13900139005", "居民周八")]

ROADS = ["文三路", "文二路", "古墩路", "天目山路", "学院路", "教工路", "莫干山路", "益乐路", "紫荆花路"]
PLACES = ["小区东门", "菜市场旁", "公交站台", "小学门口", "沿街商铺前", "地铁口", "公园入口", "停车场", "河道边"]

# (category, weight, residents' and workers' descriptions): what a month of a city district brings, the common first.
WHAT = {
    "0102": (14, ["垃圾桶满溢，垃圾散落在地面", "路边堆放生活垃圾，有异味", "绿化带里有人倾倒垃圾袋"]),
    "0403": (12, ["机动车停在人行道上，行人无法通行", "车辆长期占用消防通道", "小区门口车辆乱停堵塞出入"]),
    "0201": (10, ["电线杆上贴满小广告", "楼道墙面被喷涂办证电话", "公交站牌上张贴小广告"]),
    "0104": (9, ["路面有大片油污，容易打滑", "人行道上有碎玻璃", "雨后路面淤泥未清理"]),
    "0402": (8, ["水果店把货架摆到人行道上", "餐馆在店外摆桌经营", "五金店在门口堆放货物"]),
    "0401": (7, ["路口有流动摊贩占道经营", "地铁口聚集多个无照摊点", "学校门口有游商兜售食品"]),
    "0404": (5, ["夜间有露天烧烤，油烟很大", "烧烤摊占用人行道，烟雾扰民"]),
    "0301": (4, ["工地夜间施工，噪音很大", "凌晨还在施工，影响休息"]),
    "0303": (4, ["工地渣土未覆盖，扬尘严重", "施工车辆带泥上路，尘土飞扬"]),
    "0202": (4, ["沿街悬挂横幅未经审批", "树上私自悬挂广告布"]),
    "0204": (3, ["商铺招牌破损，有坠落危险", "店招灯箱脱落一半"]),
    "0103": (3, ["路边堆放建筑垃圾多日", "装修渣土堆在小区空地"]),
    "0106": (3, ["绿地里有大量杂物和垃圾", "草坪被踩踏并堆放杂物"]),
    "0101": (3, ["楼顶私自搭建彩钢棚", "沿街店铺私搭雨棚"]),
    "0105": (2, ["河道里有大量漂浮物", "河面有油污和垃圾"]),
    "0302": (2, ["施工围挡占用半幅道路", "施工材料堆放占道"]),
    "0203": (2, ["占道设置广告牌，遮挡视线"]),
    "0304": (1, ["人行道被挖开，没有施工许可公示"]),
    "0501": (2, ["路边水管破裂，大量漏水", "消防栓漏水严重"]),
    "0502": (1, ["路面出现塌陷坑洞，约一米宽"]),
    "0503": (2, ["暴雨后路口积水很深", "地下通道积水，车辆无法通行"]),
}
EVENING = {"0404", "0301"}
ANSWERS = {"0102": {"volume": ["medium"]}, "0502": {"diameter_m": ["1.0"]}}
RESOLVE_NOTES = ["已清理完毕", "已现场处置", "已劝导整改", "已联系责任单位处理", "已拆除", "已恢复原状"]
REJECT_NOTES = ["经现场核实，不属于城市管理事项", "已由其他部门处理，不予受理", "现场未发现所述问题"]
RATE_COMMENTS = ["处理及时，很满意", "问题已解决", "速度可以再快些", "处理得不错", None, None]


@dataclass
class MonthResult:
    cases: int = 0
    events: int = 0
    photos: int = 0
    sweeps: int = 0
    accounts: int = 0
    skipped_steps: list[str] = field(default_factory=list)


def already_seeded() -> bool:
    return db.session.scalar(select(Report.id).where(Report.source == SOURCE).limit(1)) is not None


# ---- photos: small PNG scenes, drawn here (no imaging library) ---------------------------------------------------


def photo(rng: random.Random, stage: str) -> bytes:
    """A 96x72 PNG: sky, road, and (before the work) a heap where the problem is; deterministic under `rng`."""
    width, height = 96, 72
    sky = (rng.randint(150, 200), rng.randint(180, 220), 235)
    road = (rng.randint(90, 120),) * 3
    heap = (rng.randint(120, 200), rng.randint(60, 120), rng.randint(20, 60))
    cx, cy, r = rng.randint(25, 70), rng.randint(45, 58), rng.randint(8, 14)
    rows = bytearray()
    for y in range(height):
        ground = bytes(sky if y < 30 else road)
        line = bytearray(ground * width)
        reach = r * r - 2 * (y - cy) ** 2
        if stage == "before" and reach >= 0:
            half = int(reach**0.5)
            lo, hi = max(cx - half, 0), min(cx + half + 1, width)
            line[3 * lo : 3 * hi] = bytes(heap) * (hi - lo)
        rows += b"\x00" + line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


# ---- the people of the month ----------------------------------------------------------------------------------


def _grid_cells(district_code: str) -> dict[str, list[Cell]]:
    """Grid cells by community code, the walk-through's two left out."""
    by_community: dict[str, list[Cell]] = {}
    for cell in db.session.scalars(
        select(Cell).where(Cell.level == CellLevel.grid.value, Cell.code.startswith(district_code)).order_by(Cell.code)
    ):
        community = cell.code[:12]
        if community == f"{district_code}001001" and cell.code[12:] in WALKTHROUGH_GRIDS:
            continue
        by_community.setdefault(community, []).append(cell)
    return by_community


def _account(username: str, password_hash: str, role: str, name: str, phone: str | None = None) -> User:
    # One hash of the demo password for all of them: a hash costs a memory-hard half second, and these accounts
    # share that password anyway.
    user = User(username=username, password_hash=password_hash, role=role, display_name=name, phone=phone)
    db.session.add(user)
    return user


def _people(password: str, district_code: str, cells: dict[str, list[Cell]], since: datetime) -> tuple[dict, int]:
    """The crew (one worker per staffed community, serving since the month began) and the residents; made once."""
    made = 0
    password_hash = None
    crew: dict[str, User] = {}
    for n, community in enumerate(sorted(cells)):
        if community.endswith(VACANT_COMMUNITY):
            continue
        username = f"gw{community[len(district_code) :]}"
        user = find_user_by_username(username)
        if user is None:
            password_hash = password_hash or hash_password(password)
            user = _account(username, password_hash, Role.worker.value, f"网格员{CREW_NAMES[n]}")
            db.session.flush()
            made += 1
            for cell in cells[community]:
                db.session.add(
                    WorkerCell(
                        user_id=user.id, cell_id=cell.id, duty=Duty.primary.value, valid_from=worktime.local_day(since)
                    )
                )
        crew[community] = user
    residents = [find_user_by_username("13800138000")]
    for phone, name in RESIDENTS:
        user = find_user_by_username(phone)
        if user is None:
            password_hash = password_hash or hash_password(password)
            user = _account(phone, password_hash, Role.resident.value, name, phone)
            made += 1
        residents.append(user)
    db.session.flush()
    street1 = find_user_by_username("street_supervisor")
    district = find_user_by_username("district_supervisor")
    return {
        "crew": crew,
        "residents": [r for r in residents if r is not None],
        "street1": street1,
        "district": district,
    }, made


# ---- time ----------------------------------------------------------------------------------------------------------


class Clock:
    """Local working moments, and the solving of an acceptance time that puts a case where we want it now."""

    def __init__(self, now: datetime, rng: random.Random) -> None:
        self.now, self.rng = now, rng
        self.tz = ZoneInfo(current_app.config["TIMEZONE"])

    def working(self, start: datetime, hours: float) -> datetime:
        """`hours` of working time after `start` (lands in working hours), to the second."""
        return worktime.deadline(start, hours, "working_hours").replace(microsecond=0)

    def filed_on(self, day_offset: float, evening: bool) -> datetime:
        """A plausible filing moment on the local day `day_offset` days before now."""
        day = (self.now - timedelta(days=day_offset)).astimezone(self.tz).date()
        # As many draws whatever the day, so the plan does not depend on the date it is made on.
        night = self.rng.choice([19, 20, 21, 22])
        weekend = self.rng.randint(9, 17)
        weekday = self.rng.choice([8, 9, 9, 10, 10, 11, 13, 14, 14, 15, 16, 17])
        minute, second = self.rng.randint(0, 59), self.rng.randint(0, 59)
        hour = night if evening else weekend if day.weekday() >= 5 else weekday
        return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=self.tz)

    def solve(self, target: Callable[[datetime], datetime]) -> datetime:
        """The acceptance time t with target(t) = now, by bisection (target never decreases)."""
        lo, hi = self.now - timedelta(days=DAYS - 1), self.now - timedelta(minutes=30)
        for _ in range(30):
            mid = lo + (hi - lo) / 2
            if target(mid) < self.now:
                lo = mid
            else:
                hi = mid
        return lo.replace(microsecond=0)


def _chain(category: Category, accepted: datetime, levels: int) -> datetime:
    """When a case accepted at `accepted` and never handled runs out of `levels` escalation windows."""
    moment = worktime.deadline(accepted, category.time_limit_value, category.time_limit_unit)
    for _ in range(levels):
        moment = worktime.deadline(moment, category.escalation_window_value, category.escalation_window_unit)
    return moment


def _mark(category: Category, levels: int, share: float, accepted: datetime) -> datetime:
    """When a case accepted then has used `share` of its limit (levels 0), or of the window after `levels` - 1
    escalations: solved for now, it puts the case at that point today."""
    if levels == 0:
        return worktime.deadline(accepted, category.time_limit_value * share, category.time_limit_unit)
    window = category.escalation_window_value * share
    return worktime.deadline(_chain(category, accepted, levels - 1), window, category.escalation_window_unit)


# ---- the plans -------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One case to be: where, what, who filed it, and its steps (moment, action, arguments) in time order."""

    category: str
    cell: Cell
    point: Point
    address: str
    description: str
    reporter: User
    filed: datetime
    steps: list[tuple[datetime, str, dict]] = field(default_factory=list)
    report: Report | None = None


class Planner:
    def __init__(self, rng: random.Random, clock: Clock, people: dict, cells: dict[str, list[Cell]]) -> None:
        self.rng, self.clock, self.people, self.cells = rng, clock, people, cells
        self.categories = {c.code: c for c in db.session.scalars(select(Category).where(Category.code.in_(WHAT)))}
        self.codes = [code for code in WHAT if code in self.categories]
        self.weights = [WHAT[code][0] for code in self.codes]
        self.shapes: dict[int, object] = {}
        staffed = [c for c in sorted(cells) if c in people["crew"]]
        # Hot spots: a market, a school gate and a metro exit, where a third of the staffed cases cluster.
        self.hotspots = [self.rng.choice(cells[c]) for c in self.rng.sample(staffed, 3)]
        self.staffed = staffed

    def supervisor(self, cell: Cell) -> User:
        return self.people["street1"] if cell.code[:9].endswith("001") else self.people["district"]

    def place(self, community: str | None = None) -> tuple[Cell, Point]:
        if community is None and self.rng.random() < 0.33:
            cell = self.rng.choice(self.hotspots)
            shape = self._shape(cell)
            centre = shape.representative_point()
            for _ in range(50):
                point = Point(centre.x + self.rng.uniform(-4e-4, 4e-4), centre.y + self.rng.uniform(-4e-4, 4e-4))
                if shape.contains(point):
                    return cell, point
            return cell, centre
        cell = self.rng.choice(self.cells[community or self.rng.choice(self.staffed)])
        shape = self._shape(cell)
        minx, miny, maxx, maxy = shape.bounds
        for _ in range(100):
            point = Point(self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy))
            if shape.contains(point):
                return cell, point
        return cell, shape.representative_point()

    def _shape(self, cell: Cell):
        if cell.id not in self.shapes:
            self.shapes[cell.id] = to_shape(cell.geom)
        return self.shapes[cell.id]

    def new(self, outcome: str, *, age_days: float | None = None, code: str | None = None, community=None) -> Case:
        code = code or self.rng.choices(self.codes, self.weights)[0]
        cell, point = self.place(community)
        by_worker = outcome not in ("submitted", "rejected", "cancelled", "duplicate") and self.rng.random() < 0.4
        community = cell.code[:12]
        reporter = self.people["crew"][community] if by_worker and community in self.people["crew"] else None
        reporter = reporter or self.rng.choice(self.people["residents"])
        age = age_days if age_days is not None else self.rng.uniform(0.5, DAYS - 1)
        filed = self.clock.filed_on(age, code in EVENING)
        if filed > self.clock.now - timedelta(minutes=20):
            filed -= timedelta(days=1)
        road = ROADS[int(cell.code[-2:]) % len(ROADS)]
        address = f"演示区{road}{self.rng.randint(1, 300)}号{self.rng.choice(PLACES)}"
        return Case(code, cell, point, address, self.rng.choice(WHAT[code][1]), reporter, filed)

    def step(self, case: Case, at: datetime, action: str, **kwargs) -> datetime:
        case.steps.append((at, action, kwargs))
        return at

    def after(self, at: datetime, low: float, high: float) -> datetime:
        return self.clock.working(at, self.rng.uniform(low, high))

    # A case's start, to its acceptance (and the worker's dispatch, when automatic).
    def accepted(self, case: Case) -> datetime:
        at = case.filed
        if self.rng.random() < 0.3:
            self.step(case, at + timedelta(minutes=2), "photo", stage="before", by="reporter")
        if case.reporter.role == Role.resident.value:
            at = self.step(case, self.after(at, 0.2, 1.5), "accept")
        return at

    def worked(self, case: Case, at: datetime, *, late: bool = False) -> datetime:
        """Start and resolve, in about the category's time (or well past it)."""
        at = self.step(case, self.after(at, 0.1, 1.0), "start")
        category = self.categories[case.category]
        limit_h = max(
            worktime.seconds_between(
                at, worktime.deadline(at, category.time_limit_value, category.time_limit_unit), "working_hours"
            )
            / 3600,
            1.0,
        )
        spend = limit_h * (self.rng.uniform(1.3, 2.5) if late else self.rng.uniform(0.15, 0.5))
        if self.rng.random() < 0.5:
            self.step(case, self.after(at, 0.1, spend * 0.8), "photo", stage="after", by="assignee")
        return self.step(case, self.after(at, spend * 0.85, spend), "resolve", note=self.rng.choice(RESOLVE_NOTES))

    def closed(self, case: Case, at: datetime) -> None:
        verb = "verify" if self.rng.random() < 0.7 else "close"
        at = self.step(case, self.after(at, 0.1, 1.0), verb, note="现场核查通过" if verb == "verify" else "结案")
        if case.reporter.role == Role.resident.value and self.rng.random() < 0.75:
            score = self.rng.choices([5, 4, 3, 2, 1], [50, 25, 12, 8, 5])[0]
            self.step(
                case,
                at + timedelta(hours=self.rng.uniform(1, 30)),
                "rate",
                score=score,
                comment=self.rng.choice(RATE_COMMENTS),
            )

    def plan(self) -> list[Case]:
        rng, out = self.rng, []

        def closed_case(variant: str = "") -> None:
            case = self.new("closed", age_days=rng.uniform(3, DAYS - 1))
            at = self.accepted(case)
            if variant == "rework":
                at = self.worked(case, at)
                at = self.step(case, self.after(at, 0.3, 1), "rework", note="现场仍有残留，请返工")
                at = self.step(case, self.after(at, 0.1, 0.5), "start")
                at = self.step(case, self.after(at, 0.2, 1), "resolve", note="已返工清理")
            elif variant == "hold":
                at = self.step(case, self.after(at, 0.1, 1), "start")
                at = self.step(case, self.after(at, 0.5, 2), "hold", reason="等待产权单位到场")
                at = self.step(case, self.after(at, 4, 12), "resume", note="产权单位已到场")
                at = self.step(case, self.after(at, 0.5, 3), "resolve", note=rng.choice(RESOLVE_NOTES))
            elif variant == "extension":
                at = self.step(case, self.after(at, 0.1, 1), "start")
                at = self.step(case, self.after(at, 0.5, 2), "request_extension", value=2, reason="需协调多个部门")
                at = self.step(case, self.after(at, 0.2, 1), "approve_extension", note="同意延期")
                at = self.step(case, self.after(at, 0.5, 3), "resolve", note=rng.choice(RESOLVE_NOTES))
            elif variant == "return":
                at = self.step(case, self.after(at, 0.1, 1), "return", reason="不属于本网格，请改派")
                at = self.step(case, self.after(at, 0.2, 1), "reroute", neighbour=True)
                at = self.step(case, self.after(at, 0.1, 0.5), "accept")
                at = self.worked(case, at)
            else:
                at = self.worked(case, at, late=variant == "late")
            self.closed(case, at)
            out.append(case)

        for variant, count in (("", 18), ("late", 3), ("rework", 2), ("hold", 1), ("extension", 1), ("return", 1)):
            for _ in range(count):
                closed_case(variant)
        for _ in range(3):
            case = self.new("rejected", age_days=rng.uniform(1, DAYS - 1))
            self.step(case, self.after(case.filed, 0.2, 2), "reject", reason=rng.choice(REJECT_NOTES))
            out.append(case)
        for _ in range(2):
            case = self.new("cancelled", age_days=rng.uniform(1, DAYS - 1))
            self.step(case, case.filed + timedelta(minutes=rng.randint(10, 90)), "cancel", note="问题已自行解决")
            out.append(case)
        for _ in range(2):
            # A second resident's report of the same thing, soon after the first, which a supervisor folds into it.
            original = self.new("in_progress", age_days=rng.uniform(2, DAYS - 1))
            at = self.accepted(original)
            self.closed(original, self.worked(original, at))
            twin = Case(
                original.category,
                original.cell,
                original.point,
                original.address,
                original.description,
                rng.choice([r for r in self.people["residents"] if r.id != original.reporter.id]),
                original.filed + timedelta(minutes=rng.randint(15, 50)),
            )
            self.step(twin, twin.filed + timedelta(minutes=rng.randint(5, 20)), "mark_duplicate", of=original)
            out += [original, twin]
        for _ in range(3):
            case = self.new("submitted", age_days=rng.uniform(0, 0.6))
            if case.filed < self.clock.now - timedelta(minutes=10):
                out.append(case)
        for _ in range(3):
            case = self.new("resolved", age_days=rng.uniform(1, 4))
            self.worked(case, self.accepted(case))
            out.append(case)
        for _ in range(2):
            vacant = next(c for c in self.cells if c.endswith(VACANT_COMMUNITY))
            case = self.new("accepted", age_days=rng.uniform(0.5, 3), community=vacant)
            self.accepted(case)
            out.append(case)
        for _ in range(2):
            case = self.new("on_hold", age_days=rng.uniform(2, 6))
            at = self.step(case, self.after(self.accepted(case), 0.1, 1), "start")
            self.step(case, self.after(at, 0.5, 2), "hold", reason="等待施工方配合")
            out.append(case)
        out += self.open_cases()
        return out

    def open_cases(self) -> list[Case]:
        """Cases open now, placed by their acceptance time: green, yellow (due soon), and red at every level."""
        rng, out = self.rng, []
        day_codes = [c for c in self.codes if self.categories[c].time_limit_unit == "working_days"]
        hour_codes = [c for c in self.codes if self.categories[c].time_limit_unit == "working_hours"]
        # (how many, codes, levels of windows run out, share of the next window used, status, supervise)
        shapes = [
            (2, day_codes, 0, 0.3, "in_progress", False),  # green
            (1, day_codes, 0, 0.1, "assigned", False),  # green, not started
            (2, day_codes, 0, 0.9, "in_progress", False),  # yellow: 80-100 % of the limit used
            (1, day_codes, 0, 0.85, "assigned", False),  # yellow
            (2, hour_codes, 1, 0.5, "in_progress", False),  # red, at the community
            (1, hour_codes, 1, 0.3, "assigned", False),
            (2, hour_codes, 2, 0.5, "in_progress", True),  # red, at the street, supervised
            (2, hour_codes, 3, 0.5, "in_progress", True),  # red, at the district
            (1, hour_codes, 4, 0.5, "in_progress", True),  # red, critical past the district's window
        ]
        for count, codes, levels, share, status, supervised in shapes:
            for _ in range(count):
                code = rng.choice(codes)
                accepted = self.clock.solve(functools.partial(_mark, self.categories[code], levels, share))
                case = self.new(status, code=code)
                case.filed = accepted - timedelta(minutes=rng.randint(20, 90))
                if case.reporter.role != Role.resident.value:
                    case.filed = accepted
                at = self.accepted(case)
                # The acceptance happens when solved, not when the planner's first guess put it.
                case.steps = [s for s in case.steps if s[1] != "accept"]
                if case.reporter.role == Role.resident.value:
                    at = self.step(case, accepted, "accept")
                if status == "in_progress":
                    at = self.step(case, at + timedelta(minutes=rng.randint(10, 50)), "start")
                    if rng.random() < 0.3:
                        self.step(case, at + timedelta(minutes=5), "photo", stage="before", by="assignee")
                if supervised:
                    escalated = _chain(self.categories[code], accepted, 1)
                    self.step(
                        case,
                        escalated + timedelta(minutes=rng.randint(30, 90)),
                        "supervise",
                        note="已超期，请尽快处置并反馈",
                    )
                out.append(case)
        # One waits for a decision on the extension its worker asked for.
        case = self.new("in_progress", age_days=1.5, code=rng.choice(day_codes))
        at = self.step(case, self.after(self.accepted(case), 0.1, 1), "start")
        self.step(case, self.after(at, 0.5, 2), "request_extension", value=1, reason="材料需要采购")
        out.append(case)
        return out


# ---- the run ---------------------------------------------------------------------------------------------------------


# The history's sweep ran every quarter hour (make run's runs every minute): fewer sweeps to replay, same story.
TICK_MINUTES = 15


def _next_tick(moment: datetime) -> datetime:
    """The first quarter-hour strictly after `moment`."""
    minutes = (moment.minute // TICK_MINUTES + 1) * TICK_MINUTES
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=minutes)


class Runner:
    def __init__(self, rng: random.Random, people: dict, planner: Planner, result: MonthResult) -> None:
        self.rng, self.people, self.planner, self.result = rng, people, planner, result
        self.scope = Report.source == SOURCE
        self.swept: datetime | None = None

    def sweep_until(self, moment: datetime) -> None:
        """Run the sweep as `make run` does (every minute) up to `moment`: at the minute after each deadline or
        warning mark of a seeded case that falls before it."""
        while True:
            running = (self.scope, Report.status.in_(CLOCK_RUNNING_STATUSES))
            since = (Report.deadline_at >= self.swept,) if self.swept else ()
            deadline = db.session.scalar(select(func.min(Report.deadline_at)).where(*running, *since))
            since = (Report.warn_at >= self.swept,) if self.swept else ()
            warn = db.session.scalar(
                select(func.min(Report.warn_at)).where(
                    *running, *since, Report.reminded_level.is_distinct_from(Report.escalation_level)
                )
            )
            marks = [m for m in (deadline, warn) if m is not None]
            if not marks:
                return
            at = _next_tick(min(marks))
            if self.swept is not None and at <= self.swept:
                at = self.swept + timedelta(minutes=1)
            if at > moment:
                return
            self.sweep(at)

    def sweep(self, at: datetime) -> None:
        claimed = False
        while escalation.escalate_batch(at, scope=self.scope).claimed:
            claimed = True
        self.result.sweeps += 1
        self.swept = at
        if claimed:
            # The sweep writes with set-based SQL: the loaded cases are stale (their version moved).
            db.session.expire_all()

    def run(self, plans: list[Case], now: datetime, progress) -> None:
        queue: list = []
        counter = itertools.count()
        for case in plans:
            heapq.heappush(queue, (case.filed, next(counter), case, "file", {}))
            for at, action, kwargs in case.steps:
                heapq.heappush(queue, (at, next(counter), case, action, kwargs))
        ordered = [heapq.heappop(queue) for _ in range(len(queue))]
        dead: set[int] = set()
        for at, _, case, action, kwargs in progress(ordered, "demo month of cases"):
            if at > now or id(case) in dead:
                dead.add(id(case))
                continue
            self.sweep_until(at)
            with clock_at(at):
                try:
                    self.act(case, action, kwargs)
                except (DomainError, _Unplanned) as err:
                    # The world moved otherwise than planned (a vacant post, a case escalated): the rest is off.
                    dead.add(id(case))
                    self.result.skipped_steps.append(f"{action}: {err.code}")
        self.sweep_until(now)
        self.sweep(now)

    def act(self, case: Case, action: str, kwargs: dict) -> None:
        if action == "file":
            case.report = report_service.create_report(
                case.reporter,
                category_code=case.category,
                description=case.description,
                location={"lon": case.point.x, "lat": case.point.y, "crs": "wgs84"},
                address=case.address,
                attributes=ANSWERS.get(case.category) if case.reporter.role == Role.resident.value else None,
                extra={"source": SOURCE},
            )
            self.result.cases += 1
            return
        report = case.report
        assert report is not None
        version = {report.version}
        supervisor = self.planner.supervisor(report.cell)
        if action == "photo":
            who = case.reporter if kwargs["by"] == "reporter" else report.assignee
            if who is not None:
                add_attachment(
                    who,
                    report,
                    stage=kwargs["stage"],
                    data=photo(self.rng, kwargs["stage"]),
                    filename=f"现场{kwargs['stage']}.png",
                )
                self.result.photos += 1
        elif action in ("accept", "verify", "close", "approve_extension"):
            getattr(cases, action)(supervisor, report, version, note=kwargs.get("note"))
        elif action in ("reject", "deny_extension"):
            getattr(cases, action)(supervisor, report, version, reason=kwargs["reason"])
        elif action in ("rework", "supervise"):
            getattr(cases, action)(supervisor, report, version, note=kwargs["note"])
        elif action == "reroute":
            siblings = [c for c in self.planner.cells.get(report.cell.code[:12], []) if c.id != report.cell_id]
            cases.reroute(supervisor, report, version, cell_id=self.rng.choice(siblings).id, note="改派至相邻网格")
        elif action == "mark_duplicate":
            original = kwargs["of"].report
            cases.mark_duplicate(supervisor, report, version, duplicate_of=original.id, note="与已受理案件重复")
        elif action == "cancel":
            cases.cancel(case.reporter, report, version, note=kwargs["note"])
        elif action == "rate":
            rate(case.reporter, report, version, score=kwargs["score"], comment=kwargs["comment"])
        elif action in ("start", "resolve", "hold", "resume", "request_extension", "return"):
            if report.assignee is None:
                raise _Unplanned(f"no assignee to {action}")
            perform = cases.return_case if action == "return" else getattr(cases, action)
            perform(report.assignee, report, version, **kwargs)
        else:
            raise AssertionError(action)


class _Unplanned(Exception):
    """A step the plan cannot take as the case now stands (no worker has it)."""

    code = "no_assignee"


def seed_month(
    password: str, district_code: str, progress: Callable[[Iterable, str], Iterable] = lambda it, _l: it
) -> MonthResult:
    """Once (the cases carry source "demo"): the crew and residents, then a month of cases up to now."""
    result = MonthResult()
    if already_seeded():
        return result
    now = utcnow().replace(microsecond=0)
    since = now - timedelta(days=DAYS)
    rng = random.Random(SEED)
    cells = _grid_cells(district_code)
    people, result.accounts = _people(password, district_code, cells, since)
    db.session.flush()
    clock = Clock(now, rng)
    planner = Planner(rng, clock, people, cells)
    plans = planner.plan()
    Runner(rng, people, planner, result).run(plans, now, progress)
    db.session.flush()
    result.events = db.session.scalar(
        select(func.count())
        .select_from(CaseEvent)
        .join(Report, Report.id == CaseEvent.report_id)
        .where(Report.source == SOURCE)
    )
    return result
