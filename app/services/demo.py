"""The demo district: grid, categories, work calendar and one account of every role."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Cell, Duty, Role, WorkerCell
from app.services.calendar.days import import_year, library_years
from app.services.cases.categories import upsert_category
from app.services.demo_month import MonthResult, seed_month
from app.services.grid.cells import import_cells
from app.services.grid.gridgen import GridSpec, generate
from app.services.people.sessions import find_user_by_username
from app.services.people.users import create_user
from app.services.people.workers import assign

DEMO_GRID = GridSpec(
    district_code="330106",
    district_name="演示区",
    origin_lon=120.10,
    origin_lat=30.24,
    streets=3,
    communities_per_street=3,
    grid_side=4,
    cell_size_m=250.0,
)

# (code, group, name, limit, unit, keywords) after the digital city-management (数字化城市管理) event classes: working
# time for routine classes, calendar hours for emergencies and night-time nuisances.
CATEGORIES = [
    ("0101", "市容环境", "私搭乱建", 15, "working_days", "违建,搭建"),
    ("0102", "市容环境", "暴露垃圾", 4, "working_hours", "垃圾,脏乱"),
    ("0103", "市容环境", "积存垃圾渣土", 4, "working_days", "渣土,建筑垃圾"),
    ("0104", "市容环境", "道路不洁", 4, "working_hours", "路面,保洁"),
    ("0105", "市容环境", "水域不洁", 2, "working_days", "河道,漂浮物"),
    ("0106", "市容环境", "绿地脏乱", 2, "working_days", "绿地,草坪"),
    ("0201", "宣传广告", "非法小广告", 1, "working_days", "小广告,牛皮癣"),
    ("0202", "宣传广告", "违章张贴悬挂", 1, "working_days", "横幅,张贴"),
    ("0203", "宣传广告", "占道广告牌", 5, "working_days", "广告牌,占道"),
    ("0204", "宣传广告", "招牌破损", 5, "working_days", "招牌,店招"),
    ("0301", "施工管理", "施工扰民", 8, "hours", "噪音,夜间施工"),
    ("0302", "施工管理", "施工占道", 2, "working_days", "围挡,占道"),
    ("0303", "施工管理", "工地扬尘", 8, "working_hours", "扬尘,覆盖"),
    ("0304", "施工管理", "无证掘路", 8, "working_hours", "挖掘,路面"),
    ("0401", "街面秩序", "无照经营游商", 4, "working_hours", "摊贩,游商"),
    ("0402", "街面秩序", "店外经营", 8, "working_hours", "出店经营"),
    ("0403", "街面秩序", "机动车乱停放", 4, "working_hours", "停车,占道"),
    ("0404", "街面秩序", "露天烧烤", 4, "hours", "烧烤,油烟"),
    ("0501", "突发事件", "管道破裂", 2, "hours", "水管,爆管"),
    ("0502", "突发事件", "路面塌陷", 2, "hours", "塌陷,坑洞"),
    ("0503", "突发事件", "道路积水", 2, "hours", "积水,内涝"),
    ("0999", "演示", "演示", 5, "minutes", "演示,测试"),
]
# A demo class whose cases escalate within minutes, so a new install shows an escalation in its first ten minutes;
# each level above the grid gets the same five minutes (the others get the default working day).
ESCALATION_WINDOWS = {"0999": (5, "minutes")}

SELF_HANDLED = {"0104", "0201"}
# Hazards on the public road, which the city shows everyone in full (description, exact point, after photos):
# nothing in them is about a person, and passers-by should know where they are.
PUBLIC = {"0502", "0503"}

# Open311 attributes (service definitions) for a few classes, asked when a request is filed.
ATTRIBUTES = {
    "0102": [
        {
            "code": "volume",
            "datatype": "singlevaluelist",
            "required": True,
            "order": 1,
            "description": "大约多少垃圾？",
            "values": [
                {"key": "small", "name": "一袋以内"},
                {"key": "medium", "name": "一车以内"},
                {"key": "large", "name": "一车以上"},
            ],
        },
        {
            "code": "kinds",
            "datatype": "multivaluelist",
            "required": False,
            "order": 2,
            "description": "垃圾种类",
            "values": [
                {"key": "household", "name": "生活垃圾"},
                {"key": "construction", "name": "建筑垃圾"},
                {"key": "hazardous", "name": "有害垃圾"},
            ],
        },
    ],
    "0502": [
        {
            "code": "notice",
            "variable": False,
            "datatype": "string",
            "order": 1,
            "description": "有人员受伤请直接拨打 120。",
        },
        {
            "code": "diameter_m",
            "datatype": "number",
            "required": True,
            "order": 2,
            "description": "坑洞直径（米）",
            "datatype_description": "约数即可，如 1.5",
        },
        {
            "code": "blocks_traffic",
            "datatype": "singlevaluelist",
            "required": False,
            "order": 3,
            "description": "是否阻断交通",
            "values": [{"key": "yes", "name": "是"}, {"key": "no", "name": "否"}],
        },
    ],
}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    cell_code: str | None
    display_name: str


def demo_accounts() -> list[DemoAccount]:
    district = DEMO_GRID.district_code
    street = f"{district}001"
    community = f"{street}001"
    return [
        DemoAccount("admin", Role.admin.value, None, "系统管理员"),
        DemoAccount("district_supervisor", Role.supervisor.value, district, "区级督办员"),
        DemoAccount("street_supervisor", Role.supervisor.value, street, "街道监督员"),
        DemoAccount("worker1", Role.worker.value, f"{community}01", "网格员一"),
        DemoAccount("worker2", Role.worker.value, f"{community}02", "网格员二"),
        DemoAccount("13800138000", Role.resident.value, None, "居民张三"),
    ]


def demo_backups() -> list[tuple[str, str]]:
    """(worker, grid cell) backup assignments on top of each worker's primary cell, so dispatch can fall back."""
    community = f"{DEMO_GRID.district_code}001001"
    return [("worker2", f"{community}01"), ("worker1", f"{community}02")]


@dataclass
class SeedResult:
    cells_created: int = 0
    categories_created: int = 0
    users_created: int = 0
    calendar_days_created: int = 0
    calendar_years: list[int] = field(default_factory=list)
    calendar_years_missing: list[int] = field(default_factory=list)
    month: MonthResult = field(default_factory=MonthResult)


def seed_demo(
    password: str, progress: Callable[[Iterable, str], Iterable] = lambda it, _l: it, *, month: bool = True
) -> SeedResult:
    """Idempotent: what exists is left as it is, what is missing is added; with `month`, the last month of cases
    (app.services.demo_month), once."""
    result = SeedResult()
    if db.session.scalars(select(Cell).where(Cell.code == DEMO_GRID.district_code)).first() is None:
        result.cells_created = import_cells(generate(DEMO_GRID), progress).created
    for code, group, name, limit, unit, keywords in CATEGORIES:
        _, created = upsert_category(
            {
                "code": code,
                "group": group,
                "name": name,
                "time_limit_value": limit,
                "time_limit_unit": unit,
                "keywords": keywords,
                "description": f"{group} / {name}",
                # Small jobs a grid worker fixes on the spot (撕小广告, 清扫).
                "self_handling": code in SELF_HANDLED,
                "public": code in PUBLIC,
                "attributes": ATTRIBUTES.get(code),
                **(
                    {
                        "escalation_window_value": ESCALATION_WINDOWS[code][0],
                        "escalation_window_unit": ESCALATION_WINDOWS[code][1],
                    }
                    if code in ESCALATION_WINDOWS
                    else {}
                ),
            }
        )
        result.categories_created += int(created)
    this_year = datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).year
    for year in (this_year, this_year + 1):
        if year in library_years():
            result.calendar_days_created += import_year(year, progress).created
            result.calendar_years.append(year)
        else:
            result.calendar_years_missing.append(year)
    for account in demo_accounts():
        if find_user_by_username(account.username) is None:
            create_user(
                username=account.username,
                password=password,
                role=account.role,
                cell_code=account.cell_code,
                display_name=account.display_name,
                phone=account.username if account.role == Role.resident.value else None,
            )
            result.users_created += 1
    for username, cell_code in demo_backups():
        worker = find_user_by_username(username)
        cell = db.session.scalars(select(Cell).where(Cell.code == cell_code)).one()
        if (
            worker is not None
            and db.session.scalar(
                select(WorkerCell.id).where(WorkerCell.user_id == worker.id, WorkerCell.cell_id == cell.id).limit(1)
            )
            is None
        ):
            assign(cell, user_id=worker.id, duty=Duty.backup.value)
    db.session.flush()
    if month:
        result.month = seed_month(password, DEMO_GRID.district_code, progress)
        result.users_created += result.month.accounts
    return result
