// The API client: the access token lives in this module's memory only; the refresh token in an HttpOnly cookie.
//
// Why: a script injected into the page could read localStorage or sessionStorage at leisure, and a stolen refresh
// token lasts 30 days. In memory, the access token (15 minutes) is gone on reload; the HttpOnly, SameSite=Strict
// cookie, sent only to /api/v1/auth, brings the session back without ever being readable by a script.
let config = { api: "/api/v1", timezone: "Asia/Shanghai", tile_url: "", tile_attribution: "", tile_crs: "wgs84" };
let access = null;
let refreshTimer = null;
let refreshing = null;
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem || {};
  }
}

// The problem's detail, and for a 422 what was wrong with each field ("请求未通过校验" alone says nothing).
function describe(status, problem) {
  const text = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
  const errors = problem && problem.errors && typeof problem.errors === "object" ? problem.errors : null;
  if (!errors) return text;
  const reasons = Object.values(errors).flat(Infinity).filter((r) => typeof r === "string");
  return reasons.length ? `${text}：${reasons.join("；")}` : text;
}

export async function loadConfig() {
  const resp = await fetch("config.json", { headers: { Accept: "application/json" } });
  if (resp.ok) config = await resp.json();
  return config;
}

export const settings = () => config;
export const crs = () => config.tile_crs || "wgs84";

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

async function authPost(path, body) {
  const resp = await fetch(config.api + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": "zh-CN" },
    body: JSON.stringify(body),
  });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

function keep(tokens) {
  access = tokens.access_token;
  clearTimeout(refreshTimer);
  // A minute before it expires (at least 10 s from now), in the background.
  const inMs = Math.max(10, (tokens.expires_in || 900) - 60) * 1000;
  refreshTimer = setTimeout(() => refresh().catch(() => {}), inMs);
}

export async function signIn(username, password) {
  keep(await authPost("/auth/login", { username, password, refresh_cookie: true }));
}

// One exchange at a time: the cookie's token is rotated on each, and two at once would look like a replay.
export function refresh() {
  if (!refreshing) {
    refreshing = authPost("/auth/refresh", {})
      .then((tokens) => {
        keep(tokens);
        return true;
      })
      .catch((err) => {
        forget();
        throw err;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export async function resume() {
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

function forget() {
  access = null;
  clearTimeout(refreshTimer);
}

export async function signOut() {
  try {
    await authPost("/auth/logout", {});
  } finally {
    forget();
  }
}

// A call of the API with the access token; one refresh and retry on a 401. Returns {data, etag, status}.
export async function call(path, { method = "GET", body, headers = {}, blob = false, retried = false } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: blob ? "*/*" : "application/json", "Accept-Language": "zh-CN", ...headers },
  };
  if (access) init.headers.Authorization = `Bearer ${access}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(config.api + path, init);
  if (resp.status === 401 && !retried) {
    try {
      await refresh();
    } catch {
      onSignedOut("会话已过期，请重新登录。");
      throw new ApiError(401, { detail: "会话已过期，请重新登录。" });
    }
    return call(path, { method, body, headers, blob, retried: true });
  }
  if (!resp.ok) {
    const problem = await resp.json().catch(() => null);
    throw new ApiError(resp.status, problem);
  }
  const data = resp.status === 204 ? null : blob ? await resp.blob() : await resp.json();
  return { data, etag: resp.headers.get("ETag"), status: resp.status };
}

export const get = async (path) => (await call(path)).data;

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
