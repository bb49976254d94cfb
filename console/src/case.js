// The case file: the case, its photos and history, its clock, and the supervisor's actions, each sent with If-Match.
import { ApiError, call, crs, get, query } from "./api.js";
import { ACTION, LEVEL, ROLE, STAGE, STATUS, UNIT } from "./labels.js";
import { light } from "./queue.js";
import { clear, el, fmtTime } from "./util.js";

const OPEN = ["submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved"];

// (action, label, statuses it leaves from, the fields it asks for, who may: supervisor or admin only)
const ACTIONS = [
  ["supervise", "督办", OPEN, [["note", "督办意见", true]]],
  ["accept", "受理", ["submitted"], [["note", "备注", false]]],
  ["reject", "不予受理", ["submitted"], [["reason", "理由", true]]],
  ["assign", "派遣", ["accepted", "assigned"], [["assignee_id", "处置人", true], ["note", "备注", false]]],
  ["reroute", "改派网格", ["submitted"], [["cell_code", "网格编码", true], ["note", "备注", false]]],
  ["approve_extension", "批准延期", ["assigned", "in_progress", "on_hold"], [["note", "备注", false]], "extension"],
  ["deny_extension", "驳回延期", ["assigned", "in_progress", "on_hold"], [["reason", "理由", true]], "extension"],
  ["close", "结案", ["resolved"], [["note", "结案意见", false]]],
  ["rework", "退回返工", ["resolved"], [["note", "返工要求", true]]],
  ["return", "退回重派", ["assigned", "in_progress"], [["reason", "理由", true]], "admin"],
];

export function caseView(ctx) {
  const message = el("div", { class: "message", role: "alert", id: "case-message" });
  const content = el("div", { class: "case-content" });
  const root = el(
    "section",
    { class: "view", id: "case-view", "aria-labelledby": "case-title" },
    el("div", { class: "toolbar" }, el("button", { type: "button", id: "case-back", onclick: () => (location.hash = `#/${ctx.previous || "queue"}`) }, "← 返回"), el("h2", { id: "case-title" }, "案件")),
    message,
    content,
  );
  let current = null; // {id, report, etag}
  const objectUrls = [];

  function say(text, kind = "info") {
    message.textContent = text;
    message.className = `message message-${kind}`;
  }

  function field(label, value) {
    return [el("dt", {}, label), el("dd", {}, value === null || value === undefined || value === "" ? "—" : value)];
  }

  async function photos(id) {
    const list = await get(`/reports/${id}/attachments`);
    while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
    if (!list.length) return el("p", { class: "muted" }, "没有照片");
    // Fetched with the token, shown from blob: URLs (the CSP allows those, not other hosts).
    const figures = await Promise.all(
      list.map(async (a) => {
        try {
          const { data } = await call(`/reports/${id}/attachments/${a.id}/content`, { blob: true });
          const url = URL.createObjectURL(data);
          objectUrls.push(url);
          return el("figure", {}, el("img", { src: url, alt: `${STAGE[a.stage] || a.stage}照片`, loading: "lazy" }), el("figcaption", {}, `${STAGE[a.stage] || a.stage} · ${fmtTime(a.created_at)}`));
        } catch {
          return el("figure", {}, el("figcaption", {}, `${STAGE[a.stage] || a.stage}：照片无法加载`));
        }
      }),
    );
    return el("div", { class: "photos" }, figures);
  }

  function historyList(events) {
    return el(
      "ol",
      { class: "history", id: "case-history" },
      events.map((e) =>
        el(
          "li",
          { dataset: { action: e.action } },
          el("time", {}, fmtTime(e.created_at)),
          " ",
          el("strong", {}, ACTION[e.action] || e.action),
          e.to_status && e.from_status !== e.to_status ? ` ${STATUS[e.from_status] || e.from_status || ""} → ${STATUS[e.to_status] || e.to_status}` : "",
          e.action === "escalate" && e.data && LEVEL[e.data.to_level] ? ` 至${LEVEL[e.data.to_level]}级` : "",
          e.actor_role ? el("span", { class: "muted" }, ` · ${ROLE[e.actor_role] || e.actor_role}${e.actor_id ? ` #${e.actor_id}` : ""}`) : "",
          e.note ? el("p", { class: "note" }, e.note) : "",
        ),
      ),
    );
  }

  // The API assigns only to a worker serving the case's own grid cell (primary or backup), whatever level handles it.
  async function workerOptions(report) {
    if (!report.cell) return [];
    const page = await get(`/workers${query({ cell: report.cell.code, page_size: 100 })}`);
    return page.items.map((w) => el("option", { value: String(w.id) }, `${w.display_name || w.username}${w.on_duty ? "（在岗）" : ""}`));
  }

  function available(report) {
    return ACTIONS.filter(([, , from, , who]) => {
      if (!from.includes(report.status)) return false;
      if (who === "extension") return Boolean(report.extension_requested);
      if (who === "admin") return ctx.me.role === "admin";
      return true;
    });
  }

  async function actionForm(action) {
    const [name, label, , inputs] = action;
    const report = current.report;
    const controls = [];
    let blocked = "";
    for (const [key, text, required] of inputs) {
      const id = `action-${key}`;
      let input;
      if (key === "assignee_id") {
        const options = await workerOptions(report);
        if (!options.length) blocked = `${report.cell ? report.cell.name : "该案件"}目前没有网格员，无法派遣；可改派网格或先为该网格配置网格员。`;
        input = el("select", { id, name: key, required, disabled: !options.length }, options);
      } else if (key === "cell_code") {
        input = el("input", { id, name: key, required, pattern: "\\d{6,20}", inputmode: "numeric" });
      } else {
        input = el("textarea", { id, name: key, required, rows: 3, maxlength: 2000 });
      }
      controls.push(el("label", { for: id }, text, required ? " *" : ""), input);
    }
    const form = el(
      "form",
      { class: "action-form", id: `form-${name}`, "aria-label": label },
      el("h3", {}, label),
      controls,
      blocked ? el("p", { class: "message message-warn", id: "action-blocked" }, blocked) : null,
      el(
        "div",
        { class: "buttons" },
        el("button", { type: "submit", class: "primary", disabled: Boolean(blocked) }, `提交${label}`),
        el("button", { type: "button", onclick: () => form.remove() }, "取消"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const [key] of inputs) {
        const value = form.elements[key].value.trim();
        if (!value) continue;
        body[key] = key === "assignee_id" ? Number(value) : value;
      }
      if (body.cell_code) {
        const cells = await get(`/cells${query({ code: body.cell_code, page_size: 1 })}`);
        const match = cells.items.find((c) => c.code === body.cell_code);
        if (!match) return say(`没有编码为 ${body.cell_code} 的网格`, "error");
        body.cell_id = match.id;
        delete body.cell_code;
      }
      await perform(name, label, body);
    });
    return form;
  }

  async function perform(name, label, body) {
    const { id, etag } = current;
    try {
      await call(`/reports/${id}/actions/${name}`, { method: "POST", body, headers: { "If-Match": etag } });
      await load(id);
      say(`${label}成功`, "ok");
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        await load(id);
        say("案件已被他人更新，已重新加载最新内容，请核对后再操作。", "warn");
      } else if (err instanceof ApiError && err.status === 409) {
        await load(id);
        say(`当前状态不允许${label}：${err.message}`, "error");
      } else {
        say(`${label}失败：${err.message}`, "error");
      }
    }
  }

  function render(report, events, photoBlock) {
    const actionsBox = el("div", { class: "actions", id: "case-actions" });
    const formSlot = el("div", { class: "form-slot" });
    for (const action of available(report)) {
      actionsBox.append(
        el(
          "button",
          {
            type: "button",
            dataset: { action: action[0] },
            onclick: async () => {
              clear(formSlot, await actionForm(action));
              formSlot.querySelector("textarea, select, input")?.focus();
            },
          },
          action[1],
        ),
      );
    }
    if (!actionsBox.childElementCount) actionsBox.append(el("p", { class: "muted" }, "当前状态下没有可执行的督办操作"));
    const limit = report.time_limit_value ? `${report.time_limit_value}${UNIT[report.time_limit_unit] || report.time_limit_unit}` : "—";
    clear(
      content,
      el(
        "div",
        { class: "case-columns" },
        el(
          "div",
          {},
          el("h3", {}, `${report.case_number} · ${report.category ? report.category.name : ""}`),
          el("p", { class: "description", id: "case-description" }, report.description || ""),
          el(
            "dl",
            { class: "facts" },
            field("状态", STATUS[report.status] || report.status),
            field("SLA", light(report.sla_state)),
            field("本级", light(report.level_sla_state)),
            field("层级", `${LEVEL[report.escalation_level]}级${report.critical ? " · 紧急" : ""}`),
            field("网格", report.cell ? `${report.cell.name}（${report.cell.code}）` : "待分拨"),
            field("处置网格", report.handling_cell ? report.handling_cell.name : "—"),
            field("处置人", report.assignee ? report.assignee.display_name || report.assignee.username : "未派遣"),
            field("上报人", report.reporter ? `${report.reporter.name || ""} ${report.reporter.phone || ""}` : "—"),
            field("地址", report.address),
            field("时限", limit),
            field("上报时间", fmtTime(report.created_at)),
            field("受理时间", fmtTime(report.accepted_at)),
            field("本级预警", fmtTime(report.warn_at)),
            field("本级截止", fmtTime(report.level_deadline_at)),
            field("案件截止", fmtTime(report.due_at)),
            field("超期起始", fmtTime(report.late_since)),
            field("延期申请", report.extension_requested ? `${report.extension_requested}${UNIT[report.time_limit_unit] || ""}` : "—"),
            field("满意度", report.rating ? `${report.rating} / 5` : "—"),
          ),
          el("h3", {}, "照片"),
          photoBlock,
        ),
        el("div", {}, el("h3", {}, "督办操作"), actionsBox, formSlot, el("h3", {}, "处置记录"), historyList(events)),
      ),
    );
  }

  async function load(id) {
    const { data: report, etag } = await call(`/reports/${id}${query({ crs: crs() })}`);
    const [events, photoBlock] = await Promise.all([get(`/reports/${id}/events`), photos(id)]);
    current = { id, report, etag };
    root.dataset.etag = etag || "";
    render(report, events, photoBlock);
  }

  return {
    root,
    title: "案件",
    async open(id) {
      say("");
      clear(content, el("p", { class: "muted" }, "加载中…"));
      try {
        await load(id);
      } catch (err) {
        clear(content);
        say(err instanceof ApiError && err.status === 404 ? "案件不存在或不在您的管辖范围内" : `加载失败：${err.message}`, "error");
      }
    },
    show() {},
    hide() {},
  };
}
