// The session (access + refresh token) lives in sessionStorage and travels only in the
// Authorization header: no cookie, so no ambient credential and no CSRF surface (docs/console.md).
const KEY = "prism.console.session";

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error ? body.error : {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || null;
  }
}

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { return null; }
}
function save(tokens) { sessionStorage.setItem(KEY, JSON.stringify({ access: tokens.access_token, refresh: tokens.refresh_token })); }
export function clearSession() { sessionStorage.removeItem(KEY); }

export async function login(email, password) {
  const r = await fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  save(body);
}

let refreshing = null;
async function refresh() {
  const s = session();
  if (!s) return false;
  refreshing ??= fetch("/auth/refresh", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: s.refresh }) })
    .then(async (r) => { if (!r.ok) return false; save(await r.json()); return true; })
    .finally(() => { refreshing = null; });
  return refreshing;
}

export let onSignedOut = () => {};
export function setSignedOut(fn) { onSignedOut = fn; }

// fetch with the bearer token; one refresh on 401. Returns the raw Response.
export async function raw(path, init = {}, retried = false) {
  const s = session();
  const headers = new Headers(init.headers || {});
  if (s) headers.set("authorization", "Bearer " + s.access);
  if (init.json !== undefined) { headers.set("content-type", "application/json"); init = { ...init, body: JSON.stringify(init.json) }; }
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401 && !retried && s) {
    if (await refresh()) return raw(path, init, true);
    clearSession();
    onSignedOut();
  }
  return r;
}

export async function api(path, init = {}) {
  const r = await raw(path, init);
  if (r.status === 204) return null;
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}
