// The portal's entry: who is signed in (the session), the navigation, and a small router that loads one
// page module per address and hands it the main element.

import { api, ApiError, setCsrf } from "./api.js";
import { h, replace } from "./dom.js";

const ROUTES = [
  [/^\/ui\/?$/, "home"],
  [/^\/ui\/signin$/, "signin"],
  [/^\/ui\/catalog$/, "catalog"],
  [/^\/ui\/apps\/([^/]+)$/, "app"],
  [/^\/ui\/twins\/([^/]+)$/, "twin"],
  [/^\/ui\/twins\/([^/]+)\/compare\/([^/]+)$/, "compare"],
  [/^\/ui\/twins\/([^/]+)\/workflows$/, "workflows"],
  [/^\/ui\/runs\/([^/]+)$/, "run"],
  [/^\/ui\/twins\/([^/]+)\/streams$/, "streams"],
  [/^\/ui\/twins\/([^/]+)\/models$/, "models"],
  [/^\/ui\/twins\/([^/]+)\/views\/([^/]+)$/, "view"],
  [/^\/ui\/map$/, "map"],
  [/^\/ui\/lake$/, "lake"],
  [/^\/ui\/admin$/, "admin"],
  [/^\/ui\/subscriptions$/, "subscriptions"],
  [/^\/ui\/compute$/, "compute"],
  [/^\/ui\/dataspace$/, "dataspace"],
];

const state = { user: null, cleanup: null };
const main = document.getElementById("main");

function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ""; }, 4000);
}

export function navigate(path, { replace: swap = false } = {}) {
  if (swap) history.replaceState(null, "", path); else history.pushState(null, "", path);
  render();
}

function nav() {
  const user = state.user;
  const links = user ? [["/ui/", "Twins"], ["/ui/catalog", "Catalogue"], ["/ui/map", "Map"], ["/ui/lake", "Data lake"], ["/ui/subscriptions", "Subscriptions"], ["/ui/dataspace", "Data space"]] : [];
  if (user && (user.role === "admin" || user.role === "provider")) links.push(["/ui/compute", "Compute"]);
  if (user && user.role === "admin") links.push(["/ui/admin", "Admin"]);
  const here = location.pathname;
  replace(document.getElementById("nav"), links.map(([href, text]) => h("a", {
    href, "aria-current": (href === "/ui/" ? here === "/ui/" || here.startsWith("/ui/twins") || here.startsWith("/ui/runs")
      : here.startsWith(href)) ? "page" : null,
  }, text)));
  const who = document.getElementById("who");
  if (!user) { replace(who); return; }
  replace(who, h("span", {}, `${user.name} (${user.role})`),
    h("button", { type: "button", on: { click: signOut } }, "Sign out"));
}

async function signOut() {
  try { await api("/api/v1/session", { method: "DELETE" }); } catch { /* already gone */ }
  state.user = null;
  setCsrf(null);
  // a session from an OpenID provider ends there too (when it offers that); then back to the sign-in page
  location.assign("/auth/oidc/end-session");
}

async function whoami() {
  try {
    const session = await api("/api/v1/session");
    setCsrf(session.csrf_token);
    return session;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

export function signedIn(session) {
  state.user = session;
  setCsrf(session.csrf_token);
}

async function render() {
  if (state.cleanup) { try { state.cleanup(); } catch { /* page gone */ } state.cleanup = null; }
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  let page = "notfound";
  let params = [];
  for (const [pattern, name] of ROUTES) {
    const match = (path === "/ui" ? "/ui/" : path).match(pattern);
    if (match) { page = name; params = match.slice(1).map(decodeURIComponent); break; }
  }
  if (!state.user && page !== "signin") {
    history.replaceState(null, "", `/ui/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
    page = "signin";
    params = [];
  }
  nav();
  replace(main, h("p", { class: "muted" }, "Loading…"));
  const ctx = { user: state.user, params, query: new URLSearchParams(location.search), navigate, toast, signedIn };
  try {
    const module = await import(`./pages/${page}.js`);
    const container = h("div", { class: "page", "data-page": page, "aria-busy": "true" });
    replace(main, container);  // in the document while it is built: maps and plots need their size
    const cleanup = await module.render(container, ctx);
    container.removeAttribute("aria-busy");
    state.cleanup = typeof cleanup === "function" ? cleanup : null;
    const title = container.querySelector("h1");
    document.title = `${title ? title.textContent : "twinengine"} · twinengine`;
    main.focus({ preventScroll: true });
    performance.mark("twin:ready", { detail: page });  // interactive: what bench/portal.py measures
    document.dispatchEvent(new CustomEvent("twin:page", { detail: { page } }));
  } catch (error) {
    replace(main, h("div", { class: "page", "data-page": "error" },
      h("h1", {}, error.status === 404 ? "Not found" : error.status === 403 ? "Not allowed" : "Something went wrong"),
      h("p", { class: "alert", role: "alert" }, error.message || String(error))));
    document.title = "Error · twinengine";
    document.dispatchEvent(new CustomEvent("twin:page", { detail: { page: "error" } }));
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.getAttribute("href").startsWith("#") || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/") || link.hasAttribute("download")) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});
window.addEventListener("popstate", render);
document.addEventListener("twin:signed-out", () => {
  if (state.user && location.pathname !== "/ui/signin") { state.user = null; navigate(`/ui/signin?next=${encodeURIComponent(location.pathname)}`); }
});

state.user = await whoami();
await render();
