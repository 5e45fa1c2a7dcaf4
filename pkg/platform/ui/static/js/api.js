// The dashboard API client. The JWT lives in localStorage (the API is
// Bearer-only, no cookies, so there is no CSRF surface); the selected tenant
// travels as X-Tenant-ID.

const TOKEN = "exo.token";
const EXPIRES = "exo.expires_at";
const TENANT = "exo.tenant";

export class APIError extends Error {
  constructor(status, code, message) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() {
    const t = localStorage.getItem(TOKEN);
    const exp = localStorage.getItem(EXPIRES);
    if (!t || (exp && new Date(exp).getTime() <= Date.now())) return null;
    return t;
  },
  get tenant() { return localStorage.getItem(TENANT); },
  set tenant(id) { id ? localStorage.setItem(TENANT, id) : localStorage.removeItem(TENANT); },
  save({ token, expires_at, tenant_id }) {
    localStorage.setItem(TOKEN, token);
    if (expires_at) localStorage.setItem(EXPIRES, expires_at);
    if (tenant_id) localStorage.setItem(TENANT, tenant_id);
  },
  clear() {
    for (const k of [TOKEN, EXPIRES, TENANT]) localStorage.removeItem(k);
  },
};

// headers returns the auth headers for a request of the current session.
export function authHeaders() {
  const h = {};
  const t = session.token;
  if (t) h.Authorization = `Bearer ${t}`;
  const tenant = session.tenant;
  if (tenant) h["X-Tenant-ID"] = tenant;
  return h;
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// api performs a JSON request and returns the decoded body (null for 204).
export async function api(method, path, body, { signal, timeout = 30000 } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new DOMException("request timed out", "TimeoutError")), timeout);
  signal?.addEventListener("abort", () => ctrl.abort(signal.reason), { once: true });
  const headers = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctrl.signal, cache: "no-store" });
  } catch (e) {
    if (e?.name === "AbortError" && signal?.aborted) throw e;
    throw new APIError(0, "network", e?.name === "TimeoutError" ? "The server did not answer in time." : "Cannot reach the server.");
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new APIError(res.status, data?.error?.code, data?.error?.message);
    if (res.status === 401 && session.token) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (p, o) => api("GET", p, undefined, o);
export const post = (p, b, o) => api("POST", p, b ?? {}, o);
export const put = (p, b, o) => api("PUT", p, b, o);
export const patch = (p, b, o) => api("PATCH", p, b, o);
export const del = (p, o) => api("DELETE", p, undefined, o);

// enc escapes one path segment.
export const enc = encodeURIComponent;
