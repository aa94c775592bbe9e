// The twins the signed-in person owns or was granted (all of them for admins): each at a glance (its app's
// title, where it is, alert / stale / ok, its last reading and how old it is), with search and filters kept
// in the address so a filtered list can be shared.
import { api, enc } from "../api.js";
import { ago, append, field, h, replace, table, when } from "../dom.js";

const STATUS_WORDS = { alert: "Alert", stale: "Stale", ok: "OK" };

function statusCell(g) {
  if (!g) return "–";
  return h("span", { class: `twin-status status-${g.status}`, "data-status": g.status },
    h("strong", { class: `badge status-${g.status}` }, STATUS_WORDS[g.status] || g.status),
    g.reasons.length ? h("span", { class: "reasons" }, ` ${g.reasons.join("; ")}`) : null);
}

function lastReading(g) {
  if (!g || !g.last_reading) return h("span", { class: "muted" }, "nothing reported yet");
  return h("span", { class: "last-reading" }, h("time", { datetime: g.last_reading, title: `${when(g.last_reading)} UTC` }, ago(g.last_reading)),
    g.last_property ? h("span", { class: "muted" }, ` (${g.last_property})`) : null);
}

function matches(t, q, app, status) {
  if (app && t.app_name !== app) return false;
  if (status && t.glance?.status !== status) return false;
  if (!q) return true;
  const text = [t.name, t.glance?.title, t.glance?.place, t.description, t.app, t.owner, ...(t.tags || [])].filter(Boolean).join(" ").toLowerCase();
  return q.toLowerCase().split(/\s+/).filter(Boolean).every((word) => text.includes(word));
}

export async function render(root, ctx) {
  const page = await api("/api/v1/twins", { params: { limit: 500, glance: true } });
  const apps = new Map();
  for (const t of page.items) if (!apps.has(t.app_name)) apps.set(t.app_name, t.glance?.title || t.app_name);
  const counts = { alert: 0, stale: 0, ok: 0 };
  for (const t of page.items) if (t.glance) counts[t.glance.status] += 1;

  const q = h("input", { type: "search", autocomplete: "off", value: ctx.query.get("q") || "", placeholder: "name, title, place, owner" });
  const appSelect = h("select", {}, h("option", { value: "" }, "all apps"),
    [...apps].sort((a, b) => a[1].localeCompare(b[1])).map(([name, title]) => h("option", { value: name, selected: ctx.query.get("app") === name }, title)));
  const statusSelect = h("select", {}, h("option", { value: "" }, "any status"),
    Object.entries(STATUS_WORDS).map(([value, text]) => h("option", { value, selected: ctx.query.get("status") === value }, `${text} (${counts[value]})`)));
  const shown = h("p", { class: "filter-count", role: "status" });
  const slot = h("div");

  function draw() {
    const items = page.items.filter((t) => matches(t, q.value.trim(), appSelect.value, statusSelect.value));
    const rows = items.map((t) => [
      h("td", { class: "twin-cell", "data-csv": t.name }, h("a", { href: `/ui/twins/${enc(t.name)}` }, t.name),
        t.glance?.title ? h("span", { class: "sub" }, t.glance.title) : null,
        t.glance?.place ? h("span", { class: "sub phone-only" }, t.glance.place) : null),
      t.glance?.place || "–", statusCell(t.glance), lastReading(t.glance),
      h("a", { href: `/ui/apps/${enc(t.app_name)}?version=${enc(t.app_version)}` }, t.app),
      t.owner, t.access, t.origin ? `fork of ${t.origin.twin_name} @ ${t.origin.revision}` : "", String(t.head_revision)]);
    replace(slot, table("Your twins", ["twin", "place", "status", "last reading", "app", "owner", "access", "origin", "revision"], rows,
      { empty: page.total ? "No twin matches these filters." : "No twins yet." }));
    slot.querySelector("table").classList.add("twins");
    for (const [i, tr] of [...slot.querySelectorAll("tbody tr")].entries()) if (items[i]) tr.dataset.twin = items[i].name;
    const filtered = items.length !== page.items.length;
    shown.textContent = filtered ? `${items.length} of ${page.items.length} twins match.` : "";
    const params = new URLSearchParams();
    if (q.value.trim()) params.set("q", q.value.trim());
    if (appSelect.value) params.set("app", appSelect.value);
    if (statusSelect.value) params.set("status", statusSelect.value);
    history.replaceState(null, "", `/ui/${params.toString() ? `?${params}` : ""}`);
  }
  q.addEventListener("input", draw);
  appSelect.addEventListener("change", draw);
  statusSelect.addEventListener("change", draw);
  const filters = h("form", { class: "row filters", role: "search", "aria-label": "Filter the twins", on: { submit: (e) => { e.preventDefault(); draw(); } } },
    field("twin-q", "Search", q), field("twin-app", "App", appSelect), field("twin-status", "Status", statusSelect));
  const attention = counts.alert + counts.stale;
  const canCreate = ctx.user.role === "user" || ctx.user.role === "admin";
  // ``append`` leaves out what is not there (the DOM's own ``append`` writes a null as the text "null")
  append(root, [h("h1", {}, "Twins"),
    h("p", { class: "muted" }, `${page.total} twin${page.total === 1 ? "" : "s"} you can see as ${ctx.user.name}`,
      page.total ? `: ${counts.alert} with an alert on, ${counts.stale} with stale data, ${counts.ok} ok. ` : ". ",
      page.total && canCreate ? h("a", { href: "/ui/catalog" }, "Create one from the catalogue.") : null),
    attention ? h("p", { class: "alert attention", role: "status" }, `${attention} twin${attention === 1 ? " needs" : "s need"} attention.`) : null,
    page.total ? [filters, shown, slot] : emptyWords(canCreate)]);
  if (page.total) draw();
}

/** What a person with no twin reads instead of an empty table: how to get one. */
function emptyWords(canCreate) {
  return h("section", { class: "card empty-twins", "aria-label": "No twins yet" },
    h("h2", { class: "panel-title" }, "No twins yet"),
    h("p", {}, "A twin is a digital copy of one physical thing (a river reach, a well field, a sensor network) made from an app of the catalogue."),
    canCreate ? h("p", {}, h("a", { href: "/ui/catalog" }, "Open the catalogue"), " and create one from an app's page, or ask a twin's owner to grant you access to theirs.")
      : h("p", {}, "Ask a twin's owner to grant you access to theirs; a developer account publishes apps rather than creating twins."));
}
