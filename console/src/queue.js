// The escalation queue: open escalated cases of my subtree, most overdue first, refreshed by polling the list.
import { ApiError, get, query } from "./api.js";
import { CELL_LEVEL, LEVEL, LIGHT, STATUS } from "./labels.js";
import { clear, el, fmtDuration, fmtTime } from "./util.js";

const POLL_MS = 30_000;

// The API's escalated case has no light of its own: it is late (red) once it has missed a due time.
export function lightOf(item) {
  if (item.overdue_seconds > 0) return "red";
  if (item.deadline_at && new Date(item.deadline_at) < new Date()) return "red";
  return item.sla_state || "green";
}

export function light(state) {
  const name = state || "none";
  return el("span", { class: `light light-${name}`, title: LIGHT[state] || "未计时" }, LIGHT[state] || "—");
}

export function queueView(ctx) {
  const filters = { cell: "", escalation_level: "" };
  const cellSelect = el("select", { id: "queue-cell", "aria-label": "网格筛选" }, el("option", { value: "" }, "全部"));
  const levelSelect = el(
    "select",
    { id: "queue-level", "aria-label": "层级筛选" },
    el("option", { value: "" }, "全部层级"),
    [1, 2, 3].map((n) => el("option", { value: String(n) }, `${LEVEL[n]}级`)),
  );
  const status = el("span", { class: "muted", role: "status" });
  const body = el("tbody");
  const table = el(
    "table",
    { class: "grid-table", id: "queue-table" },
    el("caption", { class: "sr-only" }, "督办队列"),
    el(
      "thead",
      {},
      el("tr", {}, ["案件编号", "SLA", "超时", "层级", "类别", "状态", "网格链", "处置人", "本级截止"].map((h) => el("th", { scope: "col" }, h))),
    ),
    body,
  );
  const root = el(
    "section",
    { class: "view", id: "queue-view", "aria-labelledby": "queue-title" },
    el("h2", { id: "queue-title" }, "督办队列"),
    el(
      "div",
      { class: "toolbar" },
      el("label", { for: "queue-cell" }, "网格"),
      cellSelect,
      el("label", { for: "queue-level" }, "层级"),
      levelSelect,
      el("button", { type: "button", onclick: () => load() }, "刷新"),
      status,
    ),
    el("div", { class: "table-wrap" }, table),
  );

  cellSelect.addEventListener("change", () => {
    filters.cell = cellSelect.value;
    load();
  });
  levelSelect.addEventListener("change", () => {
    filters.escalation_level = levelSelect.value;
    load();
  });

  for (const cell of ctx.subtree) {
    cellSelect.append(el("option", { value: cell.code }, `${"\u3000".repeat(cell.depth)}${cell.name}（${CELL_LEVEL[cell.level] || cell.level}）`));
  }

  function row(item) {
    const open = () => ctx.openCase(item.id);
    const chain = (item.chain || []).map((c) => c.name).join(" › ");
    return el(
      "tr",
      { dataset: { caseId: item.id }, class: `row-${lightOf(item)}` },
      el("td", {}, el("button", { type: "button", class: "link", onclick: open }, item.case_number)),
      el("td", {}, light(lightOf(item))),
      el("td", { class: "num" }, item.overdue_seconds > 0 ? fmtDuration(item.overdue_seconds) : "—"),
      el("td", {}, `${LEVEL[item.escalation_level] || item.escalation_level}级`),
      el("td", {}, item.category ? item.category.name : ""),
      el("td", {}, STATUS[item.status] || item.status),
      el("td", { class: "chain" }, chain),
      el("td", {}, item.assignee ? item.assignee.display_name || `#${item.assignee.id}` : "未派遣"),
      el("td", {}, fmtTime(item.deadline_at)),
    );
  }

  let timer = null;
  async function load() {
    status.textContent = "加载中…";
    try {
      const page = await get(`/escalations${query({ ...filters, page_size: 100 })}`);
      clear(body, page.items.length ? page.items.map(row) : el("tr", {}, el("td", { colspan: 9, class: "muted" }, "没有待督办的案件")));
      status.textContent = `共 ${page.total} 件 · 更新于 ${fmtTime(new Date().toISOString())}`;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) status.textContent = `加载失败：${err.message}`;
    }
  }

  return {
    root,
    title: "督办队列",
    show() {
      load();
      clearInterval(timer);
      timer = setInterval(load, POLL_MS);
    },
    hide() {
      clearInterval(timer);
    },
  };
}
