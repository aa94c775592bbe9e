// A twin's page: state (live), time travel by revision or time, history plots, diffs, forks and grants.
import { api, enc, events } from "../api.js";
import { ago, askFirst, field, h, replace, section, show, table, tableCsvButton, when, words } from "../dom.js";
import { clearErrors, collect, formErrors, schemaFields, showErrors } from "../form.js";
import { figure, flaggedPoints, flagWords, seconds, summary, timeSeries } from "../plot.js";
import { createMap } from "../geo.js";
import { assimilationSection, modelWords, skillSection } from "../trust.js";
import { loadTwin, stateNames, twinHeader, valueCell } from "../twinnav.js";

/** Keyed properties (``head: {key: well}``): their keys' values are shown in a table of their own. */
function keyedNames(manifest) {
  return Object.entries(manifest.state || {}).filter(([, p]) => p.key).map(([n]) => n);
}

/** The app's own bookkeeping (``internal: true``): served by the API, left out of the page's tables and plots. */
export function internalNames(manifest) {
  return Object.entries(manifest.state || {}).filter(([, p]) => p.internal).map(([n]) => n);
}

const baseName = (path) => path.replace(/\[.*\]$/, "");

/** The state table's properties, in the manifest's order, without each keyed property's own keys and without
 * the app's bookkeeping; and the bookkeeping left out, to be named once. */
export function shownProperties(state, manifest) {
  const keyed = new Set(keyedNames(manifest));
  const internal = new Set(internalNames(manifest));
  const names = [...new Set([...Object.keys(manifest.state || {}), ...Object.keys(state.reported), ...Object.keys(state.desired)])]
    .filter((n) => !(keyed.has(baseName(n)) && n !== baseName(n)));
  return { names: names.filter((n) => !internal.has(baseName(n))), hidden: names.filter((n) => internal.has(baseName(n))) };
}

function stateTable(state, manifest, previous) {
  const keyed = new Set(keyedNames(manifest));
  const { names, hidden } = shownProperties(state, manifest);
  const rows = names.map((name) => {
    if (keyed.has(name)) {
      const n = Object.keys(state.reported).filter((k) => baseName(k) === name && k !== name).length;
      const key = manifest.state[name].key;
      const where = manifest.state[name].type === "object" && n ? `the map of each ${key} below` : `“${name} per ${key}” below`;
      return h("tr", { "data-property": name }, h("th", { scope: "row" }, name),
        h("td", { colspan: 5 }, n && where.startsWith("the map") ? `${n} ${key}${n === 1 ? "" : "s"}: see ${where}`
          : h("a", { href: `#keyed-${name}` }, `${n} ${key}${n === 1 ? "" : "s"}: see ${where}`)));
    }
    const r = state.reported[name];
    const d = state.desired[name];
    const unit = (manifest.state || {})[name]?.unit;
    const tr = h("tr", { "data-property": name }, h("th", { scope: "row" }, name), h("td", { class: "reported" }, valueCell(r, unit)),
      h("td", { class: "desired" }, valueCell(d, unit)), h("td", {}, r ? when(r.timestamp) : d ? when(d.timestamp) : "–"),
      h("td", { class: "num" }, String(r?.revision ?? d?.revision ?? "–")), h("td", {}, name in state.delta ? "differs" : ""));
    if (previous && JSON.stringify(previous.reported[name]) !== JSON.stringify(r)) tr.classList.add("flash");
    return tr;
  });
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "State values" }, h("table", { class: "state" },
    h("caption", {}, (state.revision !== null && state.revision !== undefined ? `State at revision ${state.revision}` : `State as of ${when(state.at)}`)
      + (hidden.length ? ` (not shown: ${hidden.join(", ")}, the app's own bookkeeping; the API returns ${hidden.length === 1 ? "it" : "them"})` : "")),
    h("thead", {}, h("tr", {}, ["property", "reported", "desired", "time (UTC)", "revision", "delta"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

export function numericProps(manifest) {
  return stateNames(manifest, { numeric: true });
}

/** A location a value carries: {lon, lat}, {longitude, latitude} or a GeoJSON Point. */
export function pointOf(v) {
  if (!v || typeof v !== "object") return null;
  const pairs = [[v.lon, v.lat], [v.longitude, v.latitude], v.type === "Point" ? v.coordinates || [] : []];
  for (const [x, y] of pairs) if (typeof x === "number" && typeof y === "number" && Math.abs(x) <= 180 && Math.abs(y) <= 90) return [x, y];
  return null;
}

/** Each keyed property: a table of its keys with their latest values and ages (one read of the property
 * whole, ``GET .../properties/{prop}``), and a map of the keys when another property with the same key holds
 * their locations. */
async function keyedSections(base, manifest, params) {
  const names = keyedNames(manifest);
  if (!names.length) return [];
  const reads = await Promise.all(names.map((n) => api(`${base}/properties/${enc(n)}`, { params }).catch(() => null)));
  const byName = new Map(names.map((n, i) => [n, reads[i]]));
  const out = [];
  for (const name of names) {
    const read = byName.get(name);
    const decl = manifest.state[name];
    if (!read || decl.type === "object" && Object.values(read.keys || {}).some((v) => pointOf(v.value))) continue;  // locations: drawn on the map
    const keys = Object.entries(read.keys || {}).sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }));  // ow2 before ow10
    const locations = names.map((n) => byName.get(n)).find((r) => r && manifest.state[r.property]?.key === decl.key
      && Object.values(r.keys || {}).some((v) => pointOf(v.value)));
    const rows = keys.map(([key, v]) => {
      const tr = h("tr", { "data-key": key, class: v.quality?.flag ? `flag-${v.quality.flag}` : "" }, h("th", { scope: "row" }, key),
        h("td", { class: "reported" }, valueCell(v, read.unit || decl.unit)), h("td", {}, when(v.timestamp)), h("td", { class: "age" }, ago(v.timestamp)),
        h("td", { class: "num" }, String(v.revision)));
      return tr;
    });
    const caption = `${name} per ${decl.key} (${keys.length})`;
    const el = h("table", { class: "keyed", "data-property": name }, h("caption", {}, caption),
      h("thead", {}, h("tr", {}, [decl.key, name, "time (UTC)", "age", "revision"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, `No ${decl.key} has reported ${name} yet.`))));
    const card = h("section", { class: "card wide", id: `keyed-${name}`, "aria-label": `${name} per ${decl.key}` },
      h("h2", { class: "panel-title" }, `${name} per ${decl.key}`), decl.description ? h("p", { class: "muted" }, decl.description) : null,
      h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": caption }, el),
      rows.length ? h("p", { class: "downloads" }, tableCsvButton(el, caption)) : null);
    const spots = locations ? keys.map(([key, v]) => [key, v, pointOf(locations.keys?.[key]?.value)]).filter(([, , at]) => at) : [];
    if (spots.length) card.append(h("div", { class: "map keyed-map", tabindex: "0", "data-keys": String(spots.length) }));
    out.push({ card, spots, unit: read.unit || decl.unit || "", name });
  }
  return out;
}

async function drawKeyedMap(section) {
  const el = section.card.querySelector(".keyed-map");
  if (!el) return null;
  const xs = section.spots.map(([, , at]) => at[0]); const ys = section.spots.map(([, , at]) => at[1]);
  const pad = 0.01;
  const { L, map } = await createMap(el, [Math.min(...xs) - pad, Math.min(...ys) - pad, Math.max(...xs) + pad, Math.max(...ys) + pad]);
  for (const [key, v, at] of section.spots) {
    const flag = v.quality?.flag;
    L.circleMarker([at[1], at[0]], { radius: 7, color: "#12324f", weight: 2, fillColor: flag === "bad" ? "#a4161a" : flag === "suspect" ? "#d97706" : "#1f5f99", fillOpacity: 0.85, className: "key-marker" })
      .bindTooltip(h("span", {}, `${key}: ${typeof v.value === "number" ? Number(v.value.toPrecision(6)) : words(v.value)} ${section.unit} (${ago(v.timestamp)})`), { permanent: section.spots.length <= 30, direction: "right", className: "key-label" })
      .addTo(map);
  }
  return () => map.remove();
}

export async function render(root, ctx) {
  const { twin, manifest } = await loadTwin(ctx.params[0]);
  const base = `/api/v1/twins/${enc(twin.id)}`;
  let head = twin.head_revision;
  let viewing = ctx.query.get("revision") !== null ? { revision: Number(ctx.query.get("revision")) }
    : ctx.query.get("at") ? { at: ctx.query.get("at") } : null;
  let current = null;
  let cursor = null;
  let plotted = null;

  const stateSlot = h("div");
  const keyedSlot = h("div", { class: "wide keyed-slot" });
  const keyedMaps = [];
  const live = h("span", { class: "live", "aria-live": "polite" });
  const banner = h("div", { class: "banner", hidden: true, role: "status" });
  const slider = h("input", { type: "range", min: "0", max: String(head), step: "1", value: String(viewing?.revision ?? head) });
  const sliderLabel = h("output", { for: "travel-revision" }, "");
  const atInput = h("input", { type: "datetime-local", step: "1" });

  let asked = 0;  // each read of the state is numbered: only the newest one asked for is drawn
  let shown = null;  // what the table shows: null (now) or the past it was asked as
  let reads = 0;
  let liveWords = "live";  // the newest revision announced, said while the page shows now

  /** The banner and the live line say what the table shows: the state now (live) or a past one (not live). */
  function mode() {
    banner.hidden = !shown;
    replace(banner, shown ? [h("span", {}, shown.revision !== undefined ? `Viewing the past: revision ${shown.revision} of ${head}.`
      : `Viewing the past: the state as of ${when(shown.at)}.`), h("button", { type: "button", class: "secondary", on: { click: backToNow } }, "Back to now")] : []);
    live.className = shown ? "live paused" : "live";
    if (!shown) { live.textContent = liveWords; return; }
    const newer = shown.revision !== undefined ? head - shown.revision : 0;
    live.textContent = `not live while you view the past${newer > 0 ? ` (${newer} newer revision${newer === 1 ? "" : "s"}: Back to now shows them)` : ""}`;
  }

  async function loadState() {
    const mine = ++asked;
    const want = viewing;  // what this read shows, whatever is asked for while it is under way
    const params = want ? (want.revision !== undefined ? { revision: want.revision } : { at: want.at }) : {};
    let state; let keyed;
    try {
      [state, keyed] = await Promise.all([api(`${base}/state`, { params }), keyedSections(base, manifest, params)]);
    } finally {
      stateSlot.dataset.reads = String(reads += 1);
    }
    if (mine !== asked) return;  // a newer read was asked for (a revision arrived, the slider moved): its answer is drawn instead
    replace(stateSlot, stateTable(state, manifest, want ? null : current));
    current = state;
    shown = want;
    if (!want && state.revision !== null && state.revision !== undefined) head = Math.max(head, state.revision);
    mode();
    const stamps = Object.values(state.reported).map((v) => Date.parse(v.timestamp) / 1000);
    cursor = want ? (want.at ? Date.parse(want.at) / 1000 : (stamps.length ? Math.max(...stamps) : null)) : null;
    slider.max = String(head);
    slider.value = String(want?.revision ?? head);
    sliderLabel.textContent = want?.revision !== undefined ? `revision ${want.revision}` : want ? "by time" : `revision ${head} (now)`;
    const q = want ? `?${new URLSearchParams(want.revision !== undefined ? { revision: String(want.revision) } : { at: want.at })}` : "";
    history.replaceState(null, "", location.pathname + q);
    keyedMaps.splice(0).forEach((d) => d && d());
    replace(keyedSlot, keyed.map((k) => k.card));
    const maps = await Promise.all(keyed.map((k) => drawKeyedMap(k).catch(() => null)));
    if (mine !== asked) { maps.forEach((d) => d && d()); return; }
    keyedMaps.push(...maps);
    if (plotted) await drawHistory();
  }

  function backToNow() { viewing = null; loadState(); }

  slider.addEventListener("input", () => { sliderLabel.textContent = `revision ${slider.value}`; });
  slider.addEventListener("change", () => {
    const r = Number(slider.value);
    viewing = r >= head ? null : { revision: r };
    loadState();
  });
  const atButton = h("button", { type: "button", class: "secondary", on: { click: () => {
    if (!atInput.value) return;
    viewing = { at: `${atInput.value.length === 16 ? `${atInput.value}:00` : atInput.value}Z` };
    loadState();
  } } }, "Show the state as of this time");

  // history
  const props = numericProps(manifest);
  const propSelect = h("select", {}, props.map((p) => h("option", { value: p }, p)));
  const kindSelect = h("select", {}, h("option", { value: "reported" }, "reported"), h("option", { value: "desired" }, "desired"));
  const since = h("input", { type: "datetime-local", step: "1" });
  const until = h("input", { type: "datetime-local", step: "1" });
  const fig = figure("History plot");
  async function drawHistory() {
    const prop = propSelect.value;
    const iso = (el) => (el.value ? `${el.value.length === 16 ? `${el.value}:00` : el.value}Z` : null);
    const started = performance.now();
    const history = await api(`${base}/properties/${enc(prop)}/history`, { params: { kind: kindSelect.value, since: iso(since), until: iso(until), limit: 100000 } });
    const fetched = performance.now() - started;
    if (plotted) plotted.destroy();
    replace(fig.slot);
    const ys = history.items.map((v) => (typeof v.value === "number" ? v.value : null));
    const flags = flaggedPoints(history.items);
    plotted = await timeSeries(fig.slot, { series: [{ label: `${prop}${history.unit ? ` (${history.unit})` : ""}`, x: seconds(history.items), y: ys }],
      yLabel: history.unit || "", cursorAt: cursor, title: `${prop} (${history.kind})`, flags });
    const s = summary(ys);
    fig.info.textContent = `${history.items.length.toLocaleString("en")} points of ${prop}` + (history.items.length
      ? `, ${when(history.items[0].timestamp)} – ${when(history.items[history.items.length - 1].timestamp)}`
        + (s ? `; min ${show(s.lo)} ${history.unit || ""}, max ${show(s.hi)} ${history.unit || ""}` : "") : "")
      + (flags.length ? `; ${flagWords(flags)}` : "") + ` (read in ${fetched.toFixed(0)} ms, drawn in ${plotted.ms.toFixed(0)} ms)`;
  }
  const historyForm = h("form", { class: "row", "aria-label": "History" }, field("hist-prop", "Property", propSelect), field("hist-kind", "Kind", kindSelect),
    field("hist-since", "Since (UTC)", since), field("hist-until", "Until (UTC)", until), h("div", {}, h("button", { type: "submit" }, "Plot")));
  historyForm.addEventListener("submit", (e) => { e.preventDefault(); drawHistory().catch((err) => { fig.info.textContent = err.message; }); });

  // diff
  const from = h("input", { type: "text", inputmode: "numeric", value: String(Math.max(0, head - 1)) });
  const to = h("input", { type: "text", inputmode: "numeric", value: String(head) });
  const diffSlot = h("div");
  const diffForm = h("form", { class: "row", "aria-label": "Diff" }, field("diff-from", "From revision", from), field("diff-to", "To revision", to),
    h("div", {}, h("button", { type: "submit" }, "Compare revisions")));
  diffForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const diff = await api(`${base}/diff`, { params: { from: from.value, to: to.value } });
      replace(diffSlot, table(`Changes from revision ${diff.from_revision} to ${diff.to_revision}`, ["property", "kind", "change", "before", "after"],
        diff.changes.map((c) => [c.property, c.kind, c.change, c.before ? show(c.before.value) : "–", c.after ? show(c.after.value) : "–"]), { empty: "No changes." }));
    } catch (err) { replace(diffSlot, h("p", { class: "alert", role: "alert" }, err.message)); }
  });

  const trustSlot = h("div", { class: "wide trust-slot" });
  const [forks, grants] = await Promise.all([forkSection(twin, manifest, ctx, () => viewing?.revision ?? head), grantsSection(twin, ctx)]);
  const parts = [...twinHeader(twin, manifest, "state"), banner,
    h("div", { class: "grid" },
      h("section", { class: "card wide", "aria-label": "State" }, h("h2", { class: "panel-title" }, "State"), live, stateSlot),
      keyedSlot,
      section("Time travel", field("travel-revision", "Revision", slider), sliderLabel,
        h("div", { class: "row" }, field("travel-at", "Or as of a time (UTC)", atInput), atButton)),
      h("section", { class: "card wide", "aria-label": "History" }, h("h2", { class: "panel-title" }, "History"), historyForm, fig.el),
      trustSlot, section("Diff", diffForm, diffSlot), forks, grants)];
  root.append(...parts);
  await loadState();
  // the skill and models load after the page is ready: below the fold, they never hold up the state
  let trusted = null;
  const trust = trustSection(twin, current, base, trustSlot, manifest).then((d) => { trusted = d; }).catch(() => null);
  if (props.length) await drawHistory().catch((err) => { fig.info.textContent = err.message; });
  void trust;

  let timer = null;
  const close = events(`${base}/state/events`, {
    revision: (rev) => {
      head = Math.max(head, rev.revision);
      slider.max = String(head);
      for (const el of root.querySelectorAll(".head-revision")) el.textContent = String(head);
      liveWords = `live: revision ${rev.revision} by ${rev.author} at ${when(rev.recorded_at)}`;
      if (shown || viewing) { mode(); return; }  // the past stays as it is; the live line counts what arrived since
      live.textContent = liveWords;
      clearTimeout(timer);
      timer = setTimeout(() => { if (!viewing) loadState(); }, 150);
    },
  });
  mode();
  return () => { close(); clearTimeout(timer); if (plotted) plotted.destroy(); if (trusted) trusted(); keyedMaps.forEach((d) => d && d()); };
}

/** How far to trust the twin's forecasts: the skill of its newest forecast's property per lead time, its
 * models' gate decisions, and what its assimilation adds (nothing when it has none of these). */
async function trustSection(twin, state, base, slot, manifest) {
  const [forecasts, models, assimilated] = await Promise.all([api(`${base}/forecasts`, { params: { limit: 1 } }), modelWords(twin),
    manifest.assimilation ? assimilationSection(twin).catch(() => null) : null]);
  const prop = forecasts[0]?.property;
  if (!prop && !models.length && !assimilated) return null;
  const skill = prop ? await skillSection(twin, prop, { lastObserved: state?.reported?.[prop]?.timestamp, title: "Trust: forecast skill and models" }) : null;
  const el = skill ? skill.el : section(assimilated ? "Trust: assimilation" : "Trust: models");
  if (assimilated) el.classList.add("wide");
  if (models.length) el.append(h("p", { class: "model-words" }, models.join(" ")));
  if (assimilated) el.append(assimilated.el);
  replace(slot, el);
  if (skill) await skill.after();
  if (assimilated) await assimilated.after();
  return () => { if (skill) skill.destroy(); if (assimilated) assimilated.destroy(); };
}

async function forkSection(twin, manifest, ctx, revisionNow) {
  const page = await api("/api/v1/twins", { params: { limit: 500 } });
  const forks = page.items.filter((t) => t.origin && t.origin.twin_id === twin.id);
  const name = h("input", { type: "text", autocomplete: "off" });
  name.dataset.loc = "name";
  const at = h("input", { type: "text", inputmode: "numeric", placeholder: "the revision shown" });
  at.dataset.loc = "at_revision";
  const params = h("fieldset", { class: "stack" }, h("legend", {}, "Parameter overrides (leave empty to keep)"),
    schemaFields(manifest.parameters || {}, { prefix: "parameters", idPrefix: "fork", values: {} }));
  for (const input of params.querySelectorAll("[data-type]")) input.value = "";
  const form = h("form", { class: "stack", novalidate: true, "aria-label": "Fork" }, field("fork-name", "Name of the what-if twin", name),
    field("fork-at", "At revision", at), h("details", {}, h("summary", {}, "Parameters"), params), formErrors(),
    h("div", {}, h("button", { type: "submit" }, "Fork")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const overrides = collect(params);
    const body = { name: name.value.trim(), at_revision: at.value.trim() ? Number(at.value) : revisionNow() };
    if (Object.keys(overrides).length) body.parameters = overrides;
    try {
      const fork = await api(`/api/v1/twins/${enc(twin.id)}/fork`, { method: "POST", body });
      ctx.toast(`Forked ${fork.name}`);
      ctx.navigate(`/ui/twins/${enc(twin.name)}/compare/${enc(fork.name)}`);
    } catch (err) { showErrors(form, err); }
  });
  return section("Fork and compare",
    table("What-if twins forked from this one", ["fork", "at revision", "compare"], forks.map((f) => [
      h("a", { href: `/ui/twins/${enc(f.name)}` }, f.name), String(f.origin.revision),
      h("a", { href: `/ui/twins/${enc(twin.name)}/compare/${enc(f.name)}` }, "compare side by side")]), { empty: "No forks yet." }),
    ["owner", "operate", "admin"].includes(twin.access) || ctx.user.role === "user" ? form : null);
}

async function grantsSection(twin, ctx) {
  const slot = h("div");
  const canManage = twin.access === "owner" || twin.access === "admin";
  async function refresh() {
    const grants = await api(`/api/v1/twins/${enc(twin.id)}/grants`);
    replace(slot, table("Who else has access", ["identity", "permission", "granted by", "granted (UTC)", "action"], grants.map((g) => [g.identity, g.permission, g.granted_by, when(g.granted_at),
      canManage ? askFirst("Revoke", { "aria-label": `Revoke ${g.identity}` }, `Revoke it? ${g.identity} loses ${g.permission} on this twin at once.`, async () => {
        try {
          await api(`/api/v1/twins/${enc(twin.id)}/grants/${enc(g.identity)}`, { method: "DELETE" });
          ctx.toast(`Revoked ${g.identity}`);
        } catch (error) { ctx.toast(error.message); }
        refresh();
      }) : ""]), { empty: "Nobody else." }));
  }
  await refresh();
  if (!canManage) return wide(section("Grants", slot));
  const who = h("input", { type: "text", autocomplete: "off" });
  who.dataset.loc = "identity";
  const perm = h("select", {}, h("option", { value: "read" }, "read"), h("option", { value: "operate" }, "operate"));
  perm.dataset.loc = "permission";
  const form = h("form", { class: "row", novalidate: true, "aria-label": "Grant" }, field("grant-identity", "Identity", who), field("grant-permission", "Permission", perm),
    h("div", {}, h("button", { type: "submit" }, "Grant")), formErrors());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      await api(`/api/v1/twins/${enc(twin.id)}/grants/${enc(who.value.trim())}`, { method: "PUT", body: { permission: perm.value } });
      ctx.toast(`Granted ${perm.value} to ${who.value.trim()}`);
      who.value = "";
      await refresh();
    } catch (err) { showErrors(form, err); }
  });
  return wide(section("Grants", slot, form));
}

// A card across the grid: a table of five columns (the last one the Revoke button) is cut in a third of it.
function wide(card) {
  card.classList.add("wide");
  return card;
}
