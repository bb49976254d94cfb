// The console: sign-in, then the queue, the map, the statistics and the case file, routed by the URL's hash.
import { ApiError, get, loadConfig, query, resume, signIn, signOut, whenSignedOut } from "./api.js";
import { caseView } from "./case.js";
import { ROLE } from "./labels.js";
import { mapView } from "./map.js";
import { queueView } from "./queue.js";
import { statsView } from "./stats.js";
import { clear, el, setZone } from "./util.js";

const STAFF = new Set(["supervisor", "admin"]);
const app = document.getElementById("app");
let notice = "";

function signInView() {
  const message = el("p", { class: "message message-error", role: "alert", id: "login-message" }, notice);
  notice = "";
  const username = el("input", { id: "username", name: "username", autocomplete: "username", required: true, maxlength: 64 });
  const password = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true, maxlength: 128 });
  const submit = el("button", { type: "submit", class: "primary" }, "登录");
  const form = el(
    "form",
    { class: "login", id: "login-form", "aria-labelledby": "login-title" },
    el("h1", { id: "login-title" }, "网格化管理 · 督办台"),
    el("label", { for: "username" }, "用户名"),
    username,
    el("label", { for: "password" }, "密码"),
    password,
    submit,
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.textContent = "";
    try {
      await signIn(username.value.trim(), password.value);
      await start();
    } catch (err) {
      message.textContent = err instanceof ApiError && err.status === 401 ? "用户名或密码错误" : `登录失败：${err.message}`;
    } finally {
      submit.disabled = false;
    }
  });
  clear(app, el("main", { class: "login-page" }, form));
  username.focus();
}

// The cells the user may filter by: their subtree's cells above the grid level, in code order with depth.
async function subtreeOf(rootCell) {
  const page = await get(`/cells${query({ code: rootCell.code, level: "district,street,community", page_size: 100 })}`);
  const depth = { district: 0, street: 1, community: 2 };
  const base = depth[rootCell.level] || 0;
  return page.items.map((c) => ({ ...c, depth: (depth[c.level] || 0) - base }));
}

async function rootCellOf(me) {
  if (me.cell) return me.cell;
  // An admin sees every cell: the first district is the console's root.
  const page = await get(`/cells${query({ level: "district", page_size: 1 })}`);
  return page.items[0];
}

async function start() {
  const me = await get("/me");
  if (!STAFF.has(me.role)) {
    await signOut().catch(() => {});
    notice = `督办台仅供督办员和管理员使用（当前账号：${ROLE[me.role] || me.role}），已退出登录。`;
    return signInView();
  }
  const rootCell = await rootCellOf(me);
  const ctx = { me, rootCell, subtree: rootCell ? await subtreeOf(rootCell) : [], openCase: (id) => (location.hash = `#/case/${id}`) };
  const views = { queue: queueView(ctx), map: mapView(ctx), stats: statsView(ctx), case: caseView(ctx) };
  const nav = el(
    "nav",
    { "aria-label": "主导航" },
    [["queue", "督办队列"], ["map", "地图"], ["stats", "统计"]].map(([key, label]) => el("a", { href: `#/${key}`, id: `nav-${key}`, dataset: { view: key } }, label)),
  );
  const signOutButton = el("button", { type: "button", id: "sign-out" }, "退出登录");
  const main = el("main", { id: "main" }, Object.values(views).map((v) => v.root));
  clear(
    app,
    el(
      "header",
      { class: "top" },
      el("h1", {}, "督办台"),
      nav,
      el("span", { class: "who", id: "who" }, `${me.display_name || me.username} · ${ROLE[me.role]}${rootCell ? ` · ${rootCell.name}` : ""}`),
      signOutButton,
    ),
    main,
  );
  let active = null;
  function route() {
    const [, name = "queue", id] = location.hash.match(/^#\/(\w+)(?:\/(\d+))?/) || [];
    const key = views[name] ? name : "queue";
    // The case file's back button returns to the view it was opened from (not out of the console when the case
    // was opened from a link or a bookmark).
    if (key === "case" && active && active !== views.case) ctx.previous = Object.keys(views).find((k) => views[k] === active);
    if (active && active !== views[key]) active.hide();
    for (const [k, v] of Object.entries(views)) v.root.hidden = k !== key;
    for (const link of nav.querySelectorAll("a")) link.toggleAttribute("aria-current", link.dataset.view === key);
    active = views[key];
    document.title = `${active.title} · 督办台`;
    if (key === "case" && id) active.open(Number(id));
    active.show();
  }
  window.onhashchange = route;
  signOutButton.addEventListener("click", async () => {
    window.onhashchange = null;
    Object.values(views).forEach((v) => v.hide());
    await signOut().catch(() => {});
    notice = "已退出登录。";
    history.replaceState(null, "", location.pathname);
    signInView();
    document.getElementById("login-message").className = "message message-ok";
  });
  route();
}

whenSignedOut((text) => {
  notice = text;
  signInView();
});

(async function boot() {
  const cfg = await loadConfig();
  setZone(cfg.timezone);
  if (await resume()) {
    try {
      return await start();
    } catch {
      /* fall through to the sign-in form */
    }
  }
  signInView();
})();
