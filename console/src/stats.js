// Statistics per child cell for a period, the trend of filed and closed cases, and the table as CSV.
import uPlot from "uplot";
import { get, query } from "./api.js";
import { clear, el, fmtDuration, fmtNumber, fmtRate, localDay } from "./util.js";

const COLUMNS = [
  ["网格", (r) => r.cell.name],
  ["编码", (r) => r.cell.code],
  ["上报", (r) => r.filed],
  ["结案", (r) => r.closed],
  ["按期结案率", (r) => fmtRate(r.on_time_rate)],
  ["超期积压", (r) => r.overdue_backlog],
  ["平均结案时长", (r) => fmtDuration(r.avg_close_seconds)],
  ["满意度", (r) => (r.satisfaction_count ? `${fmtNumber(r.satisfaction_avg, 2)}（${r.satisfaction_count}）` : "—")],
  ["升级次数", (r) => r.escalations],
];

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function statsView(ctx) {
  const today = localDay();
  const from = el("input", { type: "date", id: "stats-from", value: `${today.slice(0, 8)}01` });
  const to = el("input", { type: "date", id: "stats-to", value: today });
  const status = el("span", { class: "muted", role: "status" });
  const table = el("table", { class: "grid-table", id: "stats-table" });
  const chart = el("div", { class: "chart", id: "stats-chart", role: "img", "aria-label": "上报与结案趋势" });
  let rows = [];
  let plot = null;
  const exportButton = el("button", { type: "button", id: "stats-export", onclick: () => exportCsv() }, "导出 CSV");
  const root = el(
    "section",
    { class: "view", id: "stats-view", "aria-labelledby": "stats-title" },
    el("h2", { id: "stats-title" }, "统计"),
    el(
      "form",
      { class: "toolbar", onsubmit: (e) => (e.preventDefault(), load()) },
      el("label", { for: "stats-from" }, "起"),
      from,
      el("label", { for: "stats-to" }, "止"),
      to,
      el("button", { type: "submit" }, "查询"),
      exportButton,
      status,
    ),
    el("div", { class: "table-wrap" }, table),
    el("h3", {}, "趋势（按日）"),
    chart,
  );

  // `to` is a day included: the API's `to` given as a date means that whole day.
  const period = () => ({ from: from.value, to: to.value });

  function renderTable(summary) {
    rows = [...summary.children, { ...summary.total, cell: { ...summary.total.cell, name: `${summary.total.cell.name}（合计）` } }];
    clear(
      table,
      el("caption", { class: "sr-only" }, "各网格统计"),
      el("thead", {}, el("tr", {}, COLUMNS.map(([h]) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((r, i) => el("tr", { class: i === rows.length - 1 ? "total" : "" }, COLUMNS.map(([, f]) => el("td", {}, f(r)))))),
    );
  }

  function renderTrend(trend) {
    const xs = trend.items.map((i) => Date.parse(i.start) / 1000);
    const data = [xs, trend.items.map((i) => i.filed), trend.items.map((i) => i.closed)];
    const width = Math.max(280, chart.clientWidth || 600);
    if (plot) plot.destroy();
    plot = new uPlot(
      {
        width,
        height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), trend.timezone),
        series: [{ label: "日期" }, { label: "上报", stroke: "#1565c0", width: 2 }, { label: "结案", stroke: "#2e7d32", width: 2 }],
        axes: [{}, { label: "件" }],
      },
      data,
      chart,
    );
  }

  async function load() {
    status.textContent = "加载中…";
    try {
      const cell = ctx.rootCell;
      const [summary, trend] = await Promise.all([
        get(`/stats/summary${query({ cell_id: cell.id, ...period() })}`),
        get(`/analytics/trend${query({ cell_id: cell.id, interval: "day", ...period() })}`),
      ]);
      renderTable(summary);
      renderTrend(trend);
      status.textContent = `${cell.name} · ${from.value} 至 ${to.value}`;
    } catch (err) {
      status.textContent = `加载失败：${err.message}`;
    }
  }

  function exportCsv() {
    const lines = [COLUMNS.map(([h]) => h), ...rows.map((r) => COLUMNS.map(([, f]) => f(r)))];
    // With a BOM, so spreadsheet programs read the Chinese names as UTF-8.
    const blob = new Blob(["\ufeff" + lines.map((l) => l.map(csvCell).join(",")).join("\r\n")], { type: "text/csv;charset=utf-8" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `统计_${ctx.rootCell.code}_${from.value}_${to.value}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  return { root, title: "统计", show: load, hide() {} };
}
