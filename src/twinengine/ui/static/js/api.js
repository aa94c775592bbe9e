// The public API as the portal calls it: same-origin requests carrying the httpOnly session cookie, and
// the session's CSRF token on every write. No token is ever held by the page.

let csrf = null;

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.details = (body && body.details) || [];
  }
}

// A string, or one of the tokens NaN, Infinity and -Infinity that the API writes for float values (JSON has
// none); strings are matched whole so a token inside one is left alone.
const NON_FINITE = /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g;

/** JSON text as the API writes it: NaN and ±Infinity (stream records, float state) become null, shown as missing. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!/NaN|Infinity/.test(text)) throw error;
    return JSON.parse(text.replace(NON_FINITE, (m) => (m[0] === '"' ? m : "null")));
  }
}

export function query(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") out.set(k, String(v));
  }
  const text = out.toString();
  return text ? `?${text}` : "";
}

/** api("/api/v1/twins", {method: "POST", body: {...}}) → parsed JSON (null for 204). */
export async function api(path, { method = "GET", body, params, raw = false, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path + query(params), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin", signal,
  });
  if (!response.ok) {
    let payload = null;
    try { payload = await response.json(); } catch { payload = null; }
    if (payload && payload.description && !payload.message) payload.message = payload.description;  // EDR errors
    const error = new ApiError(response.status, payload);
    if (response.status === 401) document.dispatchEvent(new CustomEvent("twin:signed-out"));
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return parseJson(await response.text());
}

/** Server-Sent Events with the session cookie (same origin); returns a function that closes them. */
export function events(path, handlers) {
  const source = new EventSource(path, { withCredentials: true });
  for (const [type, fn] of Object.entries(handlers)) {
    source.addEventListener(type, (event) => fn(event.data ? parseJson(event.data) : null, event));
  }
  return () => source.close();
}

const loaded = new Map();

/** Load a vendored classic script (Leaflet, topojson) once; resolves when it ran. */
export function loadScript(src) {
  if (!loaded.has(src)) {
    loaded.set(src, new Promise((resolve, reject) => {
      const el = document.createElement("script");
      el.src = src;
      el.addEventListener("load", () => resolve());
      el.addEventListener("error", () => reject(new Error(`could not load ${src}`)));
      document.head.append(el);
    }));
  }
  return loaded.get(src);
}

export function loadStyle(href) {
  if (!document.querySelector(`link[href="${href}"]`)) {
    const el = document.createElement("link");
    el.rel = "stylesheet";
    el.href = href;
    document.head.append(el);
  }
}

/** uPlot is loaded by the shell with ``defer``; wait for it when a module runs first. */
export async function uPlotReady() {
  for (let i = 0; i < 200 && !window.uPlot; i += 1) await new Promise((r) => setTimeout(r, 10));
  return window.uPlot;
}

export const enc = encodeURIComponent;
