// The map: twins with a location, gridded collections with a field drawn by the engine and a time slider;
// a click asks EDR for the position's time series, a drawn polygon for the area mean; both are plotted.
import { api } from "../api.js";
import { field, h, replace } from "../dom.js";
import { areaMean, positionSeries } from "../edr.js";
import { addTwins, createMap, fieldControls, listCollections } from "../geo.js";
import { figure, seconds, summary, timeSeries } from "../plot.js";
import { twinLocation } from "../twinnav.js";

function extentOf(collections, twins) {
  const boxes = collections.map((c) => c.extent?.spatial?.bbox?.[0]).filter(Boolean);
  for (const t of twins) { const at = twinLocation(t); if (at) boxes.push([at[0], at[1], at[0], at[1]]); }
  if (!boxes.length) return null;
  return [Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1])), Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))];
}

/** The map with its tools, for the map page and for the map panels of app views. */
export async function mapWithTools(container, { collections, twins, initial = null, parameter = null, highlight = null, small = false }) {
  const mapEl = h("div", { class: `map${small ? " small" : ""}`, tabindex: "0" });
  const fig = figure("EDR query");
  const modeClick = h("input", { type: "radio", name: `mode-${Math.random().toString(36).slice(2, 6)}`, value: "point", checked: true });
  const modeArea = h("input", { type: "radio", name: modeClick.name, value: "area" });
  const finish = h("button", { type: "button", class: "secondary", disabled: true }, "Finish the area");
  const wkt = h("input", { type: "text", placeholder: "lon lat, lon lat, … (at least 3 points)" });
  const queryArea = h("button", { type: "button", class: "secondary" }, "Area mean of these points");
  const twinList = h("ul", { class: "twin-list" });
  const placeList = h("ul", { class: "place-list" });
  container.append(h("div", { class: "grid" },
    h("div", { class: "wide" }, mapEl),
    h("section", { class: "card", "aria-label": "Field" }, h("h2", { class: "panel-title" }, "Field"), h("div", { class: "field-slot" })),
    h("section", { class: "card", "aria-label": "Query" }, h("h2", { class: "panel-title" }, "Query the field"),
      h("fieldset", {}, h("legend", {}, "A click on the map"), h("label", {}, modeClick, " shows the time series there"), h("br"), h("label", {}, modeArea, " adds a corner of an area")),
      h("p", {}, finish), field(`wkt-${modeClick.name}`, "Or type the area's corners", wkt), h("p", {}, queryArea)),
    h("section", { class: "card wide", "aria-label": "Result" }, fig.el),
    h("section", { class: "card", "aria-label": "Twins on the map" }, h("h2", { class: "panel-title" }, "Twins on the map"), twinList),
    h("section", { class: "card", "aria-label": "Places of the collection" }, h("h2", { class: "panel-title" }, "Places of the collection"), placeList)));
  const { L, map } = await createMap(mapEl, extentOf(collections, twins));
  const markers = addTwins(L, map, twins, highlight);
  /** A button that shows the field's series at a place: the keyboard's way to what a click on the map does. */
  const seriesButton = (name, [lon, lat]) => h("button", { type: "button", class: "secondary series-here", "aria-label": `Series here at ${name}`,
    on: { click: () => atPoint(L.latLng(lat, lon)).catch((e) => { fig.info.textContent = e.message; }) } }, "Series here");
  for (const t of twins) {
    const at = twinLocation(t);
    if (at) twinList.append(h("li", {}, h("a", { href: `/ui/twins/${encodeURIComponent(t.name)}` }, t.name), ` (${at.map((v) => v.toFixed(3)).join(", ")}) `, seriesButton(t.name, at)));
  }
  if (!twinList.children.length) twinList.append(h("li", { class: "muted" }, "No twin carries a location (parameters longitude and latitude)."));
  function listPlaces(state) {
    replace(placeList, state.places.length ? state.places.slice(0, 200).map((p) => h("li", {}, `${p.name} (${p.at.map((v) => v.toFixed(3)).join(", ")}) `, seriesButton(p.name, p.at)))
      : h("li", { class: "muted" }, state.collection ? "This collection names no places." : "Choose a collection."));
  }
  const controls = fieldControls(L, map, collections, { initial, parameter, twins: new Map(twins.map((t) => [t.id, t])), onChange: listPlaces });
  listPlaces(controls.state);
  container.querySelector(".field-slot").append(controls.el);
  let plot = null;
  let vertices = [];
  let sketch = null;
  let marker = null;

  async function show(result, label) {
    if (plot) plot.destroy();
    replace(fig.slot);
    const x = seconds(result.times.map((t) => ({ timestamp: t })));
    plot = await timeSeries(fig.slot, { title: label, yLabel: result.units || "", series: [{ label, x, y: result.values }] });
    const s = summary(result.values);
    fig.info.textContent = `${label}: ${result.values.length} values` + (s ? `, max ${Number(s.hi.toPrecision(4))} ${result.units || ""}` : "");
  }
  async function atPoint(latlng) {
    const { state } = controls;
    if (!state.collection) { fig.info.textContent = "Choose a collection first."; return; }
    if (marker) marker.remove();
    marker = L.circleMarker(latlng, { radius: 5, color: "#a4161a", className: "query-point", interactive: false }).addTo(map);
    const result = await positionSeries(state.collection.id, state.parameter, latlng.lng.toFixed(5), latlng.lat.toFixed(5), state.times);
    await show(result, `${state.parameter} at ${result.cell[0].toFixed(3)}°E ${result.cell[1].toFixed(3)}°N (nearest cell)`);
  }
  async function area(ring) {
    const { state } = controls;
    if (!state.collection) { fig.info.textContent = "Choose a collection first."; return; }
    if (sketch) sketch.remove();
    sketch = L.polygon(ring.map(([x, y]) => [y, x]), { color: "#a4161a", weight: 2, className: "query-area", interactive: false }).addTo(map);
    const closed = [...ring, ring[0]];
    const result = await areaMean(state.collection.id, state.parameter, closed, state.times);
    await show(result, `area mean of ${state.parameter} over ${result.cells} cells`);
  }
  map.on("click", (event) => {
    if (modeArea.checked) {
      vertices.push([event.latlng.lng, event.latlng.lat]);
      if (sketch) sketch.remove();
      sketch = L.polyline(vertices.map(([x, y]) => [y, x]), { color: "#a4161a", dashArray: "4 3", className: "query-sketch", interactive: false }).addTo(map);
      finish.disabled = vertices.length < 3;
      fig.info.textContent = `${vertices.length} corner${vertices.length === 1 ? "" : "s"}; ${vertices.length < 3 ? "add more" : "finish the area when done"}`;
    } else {
      atPoint(event.latlng).catch((e) => { fig.info.textContent = e.message; });
    }
  });
  finish.addEventListener("click", () => { const ring = vertices; vertices = []; finish.disabled = true; area(ring).catch((e) => { fig.info.textContent = e.message; }); });
  queryArea.addEventListener("click", () => {
    const ring = wkt.value.split(",").map((p) => p.trim().split(/\s+/).map(Number)).filter((p) => p.length === 2 && p.every(Number.isFinite));
    if (ring.length < 3) { fig.info.textContent = "Give at least three corners as lon lat pairs."; return; }
    area(ring).catch((e) => { fig.info.textContent = e.message; });
  });
  if (initial) await controls.choose();
  return { map, markers, controls, destroy: () => { if (plot) plot.destroy(); map.remove(); } };
}

/** The layer the map opens with: the one named in ``?collection=``, else the gridded collection reaching
 * furthest in time (a forecast before the observations it follows, the newest data before older), so the page
 * never opens empty; the engine then picks its most informative time. */
export function defaultCollection(collections, asked = null) {
  if (asked && collections.some((c) => c.id === asked)) return asked;
  const gridded = collections.filter((c) => (c.data_queries || {}).trajectory && c.extent?.temporal?.interval?.[0]?.[1]);
  gridded.sort((a, b) => String(b.extent.temporal.interval[0][1]).localeCompare(String(a.extent.temporal.interval[0][1])) || String(a.id).localeCompare(String(b.id)));
  return gridded.length ? gridded[0].id : null;
}

export async function render(root) {
  const [collections, twins] = await Promise.all([listCollections(), api("/api/v1/twins", { params: { limit: 500 } })]);
  root.append(h("h1", {}, "Map"), h("p", { class: "muted" }, `${collections.length} gridded collection${collections.length === 1 ? "" : "s"} and the twins you can see. The background is drawn offline from Natural Earth.`));
  const initial = defaultCollection(collections, new URLSearchParams(window.location.search).get("collection"));
  const tools = await mapWithTools(root, { collections, twins: twins.items, initial });
  return () => tools.destroy();
}
