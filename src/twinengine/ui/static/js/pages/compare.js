// Two twins side by side (a twin and its what-if fork, or two branches of a scenario): state values, what
// differs, and one property of both over one time axis: each twin's series (a fork's with its origin's values
// before the fork) and its newest recorded forecast after it.
import { api, enc } from "../api.js";
import { field, h, replace, show, table, when } from "../dom.js";
import { figure, seconds, timeSeries } from "../plot.js";
import { loadTwin, stateNames } from "../twinnav.js";

const MAX_ORIGINS = 4;  // a fork of a fork of ...: the values of up to this many origins before each fork

/** A twin's values of ``prop`` as it knows them: its own, after those its origins held up to the revision it was
 * forked at (a fork's log starts at the fork; its past is its origin's). ``before``: how many came from origins. */
export async function lineage(twin, prop) {
  const own = await api(`/api/v1/twins/${enc(twin.id)}/properties/${enc(prop)}/history`, { params: { limit: 100000 } });
  let items = own.items;
  let before = 0;
  let from = twin;
  const origins = [];
  for (let depth = 0; from.origin && depth < MAX_ORIGINS; depth += 1) {
    const cut = from.origin.revision;
    const first = items.length ? Date.parse(items[0].timestamp) : Infinity;
    const theirs = await api(`/api/v1/twins/${enc(from.origin.twin_id)}/properties/${enc(prop)}/history`, { params: { limit: 100000 } })
      .catch(() => null);  // an origin the reader may not read: the fork's own values only
    if (!theirs) break;
    const kept = theirs.items.filter((v) => v.revision <= cut && Date.parse(v.timestamp) < first);
    items = [...kept, ...items];
    before += kept.length;
    origins.push(`${from.origin.twin_name} up to revision ${cut}`);
    from = await api(`/api/v1/twins/${enc(from.origin.twin_id)}`).catch(() => ({}));
  }
  return { unit: own.unit, items, before, origins };
}

/** The newest forecast of ``prop`` the twin recorded (an ensemble's mean), at its valid times; null when none. */
async function newestForecast(twin, prop) {
  const found = await api(`/api/v1/twins/${enc(twin.id)}/forecasts`, { params: { property: prop, values: true, limit: 1 } }).catch(() => []);
  const f = found.find((x) => (x.values || []).length);
  return f ? { run: f.run_id, issued: f.issued_at, x: seconds(f.values, "valid_time"), y: f.values.map((v) => v.value) } : null;
}

/** Words for one twin's part of the plot. */
function says(name, got, forecast, unit) {
  const from = got.before ? ` (${got.before} of them from ${got.origins.join(", then ")}, before the fork)` : "";
  const peak = forecast ? Math.max(...forecast.y.filter(Number.isFinite)) : null;
  return `${got.items.length} points of ${name}${from}` + (forecast ? `, and its forecast of ${forecast.y.length} steps (run ${forecast.run}, issued ${when(forecast.issued)}, peak ${show(peak)}${unit ? ` ${unit}` : ""})` : "");
}

export async function render(root, ctx) {
  const [a, b] = await Promise.all(ctx.params.map((ref) => loadTwin(ref)));
  const [sa, sb] = await Promise.all([a, b].map(({ twin }) => api(`/api/v1/twins/${enc(twin.id)}/state`)));
  const names = [...new Set([...Object.keys(sa.reported), ...Object.keys(sb.reported)])].sort();
  const rows = names.map((n) => {
    const va = sa.reported[n]?.value;
    const vb = sb.reported[n]?.value;
    const same = JSON.stringify(va) === JSON.stringify(vb);
    return h("tr", { class: same ? "" : "changed", "data-property": n }, h("th", { scope: "row" }, n), h("td", {}, show(va)), h("td", {}, show(vb)), h("td", {}, same ? "" : "differs"));
  });
  const params = [...new Set([...Object.keys(a.twin.parameters), ...Object.keys(b.twin.parameters)])].sort()
    .filter((k) => JSON.stringify(a.twin.parameters[k]) !== JSON.stringify(b.twin.parameters[k]))
    .map((k) => [k, show(a.twin.parameters[k]), show(b.twin.parameters[k])]);
  const numeric = stateNames(a.manifest, { numeric: true, reported: true });
  // first the property the twins forecast (a hydrograph: the level), else the first one both report
  const forecasted = (await Promise.all([a, b].map(({ twin }) => api(`/api/v1/twins/${enc(twin.id)}/forecasts`, { params: { limit: 1 } }).catch(() => []))))
    .flat().map((f) => f.property).find((p) => numeric.includes(p));
  const initial = ctx.query.get("property") || forecasted || numeric.find((n) => n in sa.reported && n in sb.reported) || numeric[0];
  const select = h("select", {}, numeric.map((n) => h("option", { value: n, selected: n === initial }, n)));
  const fig = figure("Both twins");
  let plot = null;
  async function draw() {
    const prop = select.value;
    const [ha, hb] = await Promise.all([a, b].map(({ twin }) => lineage(twin, prop)));
    const [fa, fb] = await Promise.all([a, b].map(({ twin }) => newestForecast(twin, prop)));
    if (plot) plot.destroy();
    replace(fig.slot);
    const series = [
      { label: a.twin.name, x: seconds(ha.items), y: ha.items.map((v) => v.value) },
      { label: b.twin.name, x: seconds(hb.items), y: hb.items.map((v) => v.value), dash: [5, 3] },
      ...(fa ? [{ label: `${a.twin.name}: forecast`, x: fa.x, y: fa.y, dash: [2, 3] }] : []),
      ...(fb ? [{ label: `${b.twin.name}: forecast`, x: fb.x, y: fb.y, dash: [8, 3] }] : [])];
    const unit = ha.unit || hb.unit || "";
    plot = await timeSeries(fig.slot, { title: prop, yLabel: unit, series, caption: `${a.twin.name} and ${b.twin.name}` });
    fig.info.textContent = `${prop}: ${says(a.twin.name, ha, fa, unit)}; ${says(b.twin.name, hb, fb, unit)}`;
    const q = new URLSearchParams(location.search);
    q.set("property", prop);
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }
  select.addEventListener("change", () => draw().catch((err) => { fig.info.textContent = err.message; }));
  root.append(h("h1", {}, `${a.twin.name} and ${b.twin.name}`),
    h("p", { class: "muted" }, h("a", { href: `/ui/twins/${enc(a.twin.name)}` }, a.twin.name), " and ", h("a", { href: `/ui/twins/${enc(b.twin.name)}` }, b.twin.name),
      b.twin.origin ? ` (forked from ${b.twin.origin.twin_name} at revision ${b.twin.origin.revision})` : ""),
    h("div", { class: "side" },
      h("section", { class: "card", "aria-label": "Reported state" }, h("h2", { class: "panel-title" }, "Reported state"),
        h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "State side by side" }, h("table", { class: "compare" },
          h("thead", {}, h("tr", {}, ["property", a.twin.name, b.twin.name, "difference"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)))),
      h("section", { class: "card", "aria-label": "Parameters that differ" }, h("h2", { class: "panel-title" }, "Parameters that differ"),
        table(null, ["parameter", a.twin.name, b.twin.name], params, { empty: "Same parameters." }))),
    h("section", { class: "card", "aria-label": "History of both" }, h("h2", { class: "panel-title" }, "History and forecast of both"),
      h("p", { class: "muted" }, "Each twin's values over one time axis (a fork's with its origin's before the fork) and its newest forecast after them."),
      field("cmp-prop", "Property", select), fig.el));
  if (numeric.length) await draw();
  return () => plot && plot.destroy();
}
