// The map: Leaflet on a plate carrée (EPSG:4326, so the engine's lon/lat grids lay over it exactly) with
// the engine's own offline background (Natural Earth country outlines, shipped in the package), twins that
// carry a location, a collection's field drawn by the engine (EDR cube, f=png) with a time slider, and its
// named locations (stations, or the cyclone centres of a point collection) as markers.
import { api, enc, loadScript, loadStyle } from "./api.js";
import { field, h, replace } from "./dom.js";
import { bboxOf, collectionTimes, fieldImage, parametersOf } from "./edr.js";
import { twinLocation } from "./twinnav.js";

const VENDOR = "/ui/static/vendor";
const MAX_LOCATIONS = 5000;  // markers drawn per collection (SVG paths; more would slow the page)
let background = null;

export async function leaflet() {
  loadStyle(`${VENDOR}/leaflet/leaflet.css`);
  await Promise.all([loadScript(`${VENDOR}/leaflet/leaflet.js`), loadScript(`${VENDOR}/topojson-client/topojson-client.min.js`)]);
  return window.L;
}

async function countries() {
  if (!background) {
    background = fetch(`${VENDOR}/world-atlas/countries-50m.json`).then((r) => r.json())
      .then((topo) => window.topojson.feature(topo, topo.objects.countries));
  }
  return background;
}

/** A map in ``el`` showing ``bbox`` [w, s, e, n]. */
export async function createMap(el, bbox) {
  const L = await leaflet();
  const map = L.map(el, { crs: L.CRS.EPSG4326, zoomSnap: 0.25, minZoom: 0, maxZoom: 18, worldCopyJump: false, keyboard: true });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Natural Earth (offline background)");
  L.control.scale({ imperial: false }).addTo(map);
  const [w, s, e, n] = bbox || [-180, -90, 180, 90];
  map.fitBounds([[s, w], [n, e]], { padding: [20, 20] });
  const geo = await countries();
  map.createPane("background").style.zIndex = "150";  // below the overlay pane, where the engine's field lies
  L.geoJSON(geo, { pane: "background", renderer: L.svg({ pane: "background" }), interactive: false,
    style: { color: "#7a8796", weight: 0.8, fillColor: "#f4f1ea", fillOpacity: 1 } }).addTo(map);
  map.getContainer().setAttribute("aria-label", "Map");
  el.leafletMap = map;  // for scripts that drive the page (the browser tests click at a longitude and latitude)
  return { L, map };
}

/** A label for Leaflet, which puts a string into the page as HTML: names come from data, so they go in as
 * text. */
function text(value) {
  return h("span", {}, String(value));
}

/** Twins with a location as markers labelled with their name; returns the markers. */
export function addTwins(L, map, twins, highlight = null) {
  const markers = [];
  for (const twin of twins) {
    const at = twinLocation(twin);
    if (!at) continue;
    const popup = h("div", {}, h("strong", {}, twin.name), h("br"), twin.app, h("br"), h("a", { href: `/ui/twins/${encodeURIComponent(twin.name)}` }, "Open the twin"));
    const marker = L.circleMarker([at[1], at[0]], { radius: twin.name === highlight ? 9 : 7, color: "#12324f", weight: 2, fillColor: "#f0a202", fillOpacity: 0.9, className: "twin-marker" })
      .bindPopup(popup).bindTooltip(text(twin.name), { permanent: true, direction: "right", className: "twin-label" }).addTo(map);
    markers.push(marker);
  }
  return markers;
}

/** The controls of a collection's field layer (collection, parameter, time slider, colour scale). */
export function fieldControls(L, map, collections, { initial = null, parameter = null, onChange = () => {}, twins = new Map() } = {}) {
  const select = h("select", {}, h("option", { value: "" }, "– none –"), collections.map((c) => h("option", { value: c.id, selected: c.id === initial, title: c.id }, collectionTitle(c, twins))));
  const params = h("select", {});
  const slider = h("input", { type: "range", min: "0", max: "0", step: "1", value: "0" });
  const timeLabel = h("output", {}, "");
  const lo = h("input", { type: "text", inputmode: "decimal", size: "6" });
  const hi = h("input", { type: "text", inputmode: "decimal", size: "6" });
  const legend = h("p", { class: "legend" });
  const status = h("p", { class: "field-status", role: "status" });
  const outlines = L.layerGroup().addTo(map);
  const places = L.layerGroup().addTo(map);
  const state = { collection: null, parameter: null, times: [], overlay: null, bbox: null, locations: 0 };

  for (const c of collections) {
    const b = bboxOf(c);
    if (b) L.rectangle([[b[1], b[0]], [b[3], b[2]]], { color: "#1f5f99", weight: 1, fill: false, dashArray: "4 3", interactive: false, className: "collection-extent" }).addTo(outlines);
  }

  async function draw() {
    if (!state.collection || !state.parameter || !(state.collection.data_queries || {}).trajectory) return;
    const time = state.times[Number(slider.value)] || null;
    timeLabel.textContent = time || "";
    const scale = lo.value !== "" && hi.value !== "" && Number(hi.value) > Number(lo.value) ? [Number(lo.value), Number(hi.value)] : null;
    status.textContent = `Drawing ${state.parameter} at ${time || "the only time"}…`;
    const started = performance.now();
    const image = await fieldImage(state.collection.id, state.parameter, state.bbox, time, scale);
    const bounds = [[image.bounds[1], image.bounds[0]], [image.bounds[3], image.bounds[2]]];
    const next = L.imageOverlay(image.url, bounds, { opacity: 0.75, className: "field-layer", alt: `${state.parameter} at ${image.time || ""}` });
    await new Promise((resolve) => { next.once("load", resolve); next.once("error", resolve); next.addTo(map); });
    if (state.overlay) { URL.revokeObjectURL(state.overlay.getElement()?.src || ""); state.overlay.remove(); }
    state.overlay = next;
    if (!scale) { lo.value = String(Number(image.scale[0].toPrecision(4))); hi.value = String(Number(image.scale[1].toPrecision(4))); }
    const img = next.getElement();
    replace(legend, `${image.scale[0].toPrecision(3)}`, h("span", { class: "colorbar", role: "img", "aria-label": "colour scale from dark blue (low) to yellow (high)" }),
      `${image.scale[1].toPrecision(3)} ${image.units || ""}`);
    status.textContent = `${state.parameter} at ${image.time || time}: ${img.naturalWidth} x ${img.naturalHeight} cells drawn by the engine in ${(performance.now() - started).toFixed(0)} ms`;
    map.getContainer().dataset.field = `${state.collection.id}:${state.parameter}:${image.time || ""}`;
  }

  /** The collection's named locations (EDR locations: stations, storm centres) as markers with their names. */
  async function drawLocations() {
    const doc = await api(`/edr/collections/${enc(state.collection.id)}/locations`);
    const features = (doc.features || []).filter((f) => f.geometry && f.geometry.type === "Point").slice(0, MAX_LOCATIONS);
    for (const f of features) {
      const [x, y] = f.geometry.coordinates;
      L.circleMarker([y, x], { radius: 4, color: "#a4161a", weight: 1.5, fillColor: "#e85d04", fillOpacity: 0.8, className: "location-marker" })
        .bindTooltip(text(f.id ?? f.properties?.name ?? ""), { direction: "top" }).addTo(places);
    }
    state.locations = features.length;
    map.getContainer().dataset.locations = `${state.collection.id}:${features.length}`;
  }

  async function choose() {
    state.collection = collections.find((c) => c.id === select.value) || null;
    replace(params);
    if (state.overlay) { state.overlay.remove(); state.overlay = null; }
    places.clearLayers();
    state.locations = 0;
    delete map.getContainer().dataset.locations;
    lo.value = ""; hi.value = "";
    if (!state.collection) { onChange(state); return; }
    const queries = state.collection.data_queries || {};
    if (queries.locations) await drawLocations();
    if (!queries.trajectory) {  // a point collection (EDR answers trajectories of grids only): no field to draw
      for (const name of parametersOf(state.collection)) params.append(h("option", { value: name, selected: name === parameter }, name));
      state.parameter = params.value;
      state.times = collectionTimes(state.collection);
      status.textContent = `${state.collection.id}: a point collection, ${state.locations} locations drawn`;
      onChange(state);
      return;
    }
    const names = parametersOf(state.collection);
    for (const name of names) params.append(h("option", { value: name, selected: name === parameter }, name));
    state.parameter = params.value;
    state.times = collectionTimes(state.collection);
    state.bbox = bboxOf(state.collection);
    slider.max = String(Math.max(0, state.times.length - 1));
    slider.value = slider.max;  // the latest time step first
    onChange(state);
    await draw();
  }
  select.addEventListener("change", () => choose().catch((e) => { status.textContent = e.message; }));
  params.addEventListener("change", () => { state.parameter = params.value; lo.value = ""; hi.value = ""; draw().catch((e) => { status.textContent = e.message; }); onChange(state); });
  slider.addEventListener("input", () => { timeLabel.textContent = state.times[Number(slider.value)] || ""; });
  slider.addEventListener("change", () => draw().catch((e) => { status.textContent = e.message; }));
  for (const input of [lo, hi]) input.addEventListener("change", () => draw().catch((e) => { status.textContent = e.message; }));

  const uid = Math.random().toString(36).slice(2, 7);
  const el = h("div", { class: "map-tools" },
    h("div", { class: "row" }, field(`fc-${uid}`, "Collection", select), field(`fp-${uid}`, "Parameter", params)),
    field(`ft-${uid}`, "Time", slider), timeLabel,
    h("div", { class: "row" }, field(`flo-${uid}`, "Colour scale from", lo), field(`fhi-${uid}`, "to", hi)), legend, status);
  return { el, state, choose, draw, slider };
}

/** A collection as people name it: its title; for a stream's collection (``tw-<id>-<stream>``, titled by its
 * id) the stream and its twin's name; an ensemble's results by the ensemble. ``twins``: the twins the person
 * sees (id → twin). */
export function collectionTitle(c, twins = new Map()) {
  if (c.title && c.title !== c.id) return c.title;
  const stream = String(c.id).match(/^(tw-[0-9a-f]{12})-(.+)$/);
  if (stream) return twins.has(stream[1]) ? `${stream[2]} stream of ${twins.get(stream[1]).name}` : `${stream[2]} stream of a twin`;
  const ensemble = String(c.id).match(/^results\.(ens-[0-9a-f]+)$/);
  if (ensemble) return `Results of ensemble ${ensemble[1]}`;
  return String(c.id).replace(/[-_]+/g, " ").replace(/^./, (ch) => ch.toUpperCase());
}

export async function listCollections() {
  const doc = await api("/edr/collections");
  return doc.collections || [];
}
