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

const CLUSTER_PX = 28;  // twins closer than this on screen share one marker, labelled with a count

/** Twins whose markers would overlap at the map's zoom, grouped (greedily, in name order). */
function groupTwins(map, twins) {
  const groups = [];
  for (const twin of [...twins].sort((a, b) => String(a.name).localeCompare(String(b.name)))) {
    const at = twinLocation(twin);
    if (!at) continue;
    const p = map.latLngToLayerPoint([at[1], at[0]]);
    const near = groups.find((g) => g.point.distanceTo(p) < CLUSTER_PX);
    if (near) near.twins.push(twin);
    else groups.push({ point: p, at, twins: [twin] });
  }
  return groups;
}

/** Twins with a location as markers labelled with their name; twins that would overlap at the map's zoom share
 * one marker labelled with the first name and how many more (regrouped when the zoom changes), so no label
 * lies over another. Returns the markers (updated in place). */
export function addTwins(L, map, twins, highlight = null) {
  const markers = [];
  const layer = L.layerGroup().addTo(map);
  function draw() {
    layer.clearLayers();
    markers.length = 0;
    for (const group of groupTwins(map, twins)) {
      const names = group.twins.map((t) => t.name);
      const first = names.includes(highlight) ? highlight : names[0];
      const label = names.length > 1 ? `${first} +${names.length - 1}` : first;
      const popup = h("div", {}, names.length > 1 ? h("strong", {}, `${names.length} twins here`) : null,
        group.twins.map((twin) => h("div", {}, h("strong", {}, twin.name), " ", twin.app, " ", h("a", { href: `/ui/twins/${encodeURIComponent(twin.name)}` }, "Open the twin"))));
      const marker = L.circleMarker([group.at[1], group.at[0]], { radius: names.includes(highlight) ? 9 : 7 + Math.min(4, names.length - 1), color: "#12324f", weight: 2, fillColor: "#f0a202", fillOpacity: 0.9, className: "twin-marker" })
        .bindPopup(popup).bindTooltip(text(label), { permanent: true, direction: "right", className: "twin-label" }).addTo(layer);
      marker.twinNames = names;
      markers.push(marker);
    }
    map.getContainer().dataset.twinMarkers = String(markers.length);
  }
  draw();
  map.on("zoomend", draw);
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
  const state = { collection: null, parameter: null, times: [], overlay: null, bbox: null, locations: 0, places: [], asked: undefined };

  for (const c of collections) {
    const b = bboxOf(c);
    if (b) L.rectangle([[b[1], b[0]], [b[3], b[2]]], { color: "#1f5f99", weight: 1, fill: false, dashArray: "4 3", interactive: false, className: "collection-extent" }).addTo(outlines);
  }

  let asked = 0;  // the newest drawing asked for: an older answer arriving later is dropped
  let inflight = null;  // the AbortController of the drawing under way

  /** Draw the field at the slider's time (``pick``: let the engine choose the most informative time, and move
   * the slider there). Under fast stepping only the newest answer is laid on the map: the label always names
   * the time of the image shown. */
  async function draw({ pick = false } = {}) {
    if (!state.collection || !state.parameter || !(state.collection.data_queries || {}).trajectory) return;
    const wanted = pick ? null : (state.times[Number(slider.value)] || null);
    const id = ++asked;
    state.asked = wanted;
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    const scale = lo.value !== "" && hi.value !== "" && Number(hi.value) > Number(lo.value) ? [Number(lo.value), Number(hi.value)] : null;
    status.textContent = `Drawing ${state.parameter} at ${wanted || (pick ? "its most informative time" : "the only time")}…`;
    map.getContainer().dataset.drawing = String(id);
    const started = performance.now();
    let image;
    try {
      image = await fieldImage(state.collection.id, state.parameter, state.bbox, wanted, scale, controller.signal);
    } catch (error) {
      if (id !== asked || error.name === "AbortError") return;  // a newer drawing replaced this one
      throw error;
    }
    if (id !== asked) { URL.revokeObjectURL(image.url); return; }
    const bounds = [[image.bounds[1], image.bounds[0]], [image.bounds[3], image.bounds[2]]];
    const next = L.imageOverlay(image.url, bounds, { opacity: 0.75, className: "field-layer", alt: `${state.parameter} at ${image.time || ""}` });
    await new Promise((resolve) => { next.once("load", resolve); next.once("error", resolve); next.addTo(map); });
    if (id !== asked) { next.remove(); URL.revokeObjectURL(image.url); return; }
    if (state.overlay) { URL.revokeObjectURL(state.overlay.getElement()?.src || ""); state.overlay.remove(); }
    state.overlay = next;
    inflight = null;
    if (pick && image.time) {
      const at = state.times.indexOf(image.time);
      if (at >= 0) slider.value = String(at);
      state.asked = image.time;
    }
    const img = next.getElement();
    img.dataset.time = image.time || "";
    timeLabel.textContent = image.time || wanted || "";
    slider.setAttribute("aria-valuetext", timeLabel.textContent);
    showLegend(image);
    status.textContent = `${state.parameter} at ${image.time || wanted}: ${img.naturalWidth} x ${img.naturalHeight} cells drawn by the engine in ${(performance.now() - started).toFixed(0)} ms`;
    map.getContainer().dataset.field = `${state.collection.id}:${state.parameter}:${image.time || ""}`;
    delete map.getContainer().dataset.drawing;
  }

  /** The colour scale the engine drew on: fixed per variable (its declared range or the table of common
   * quantities), with the floor below which cells are left empty. */
  function showLegend(image) {
    const [a, b] = image.scale;
    const units = image.units || "";
    const fixed = { declared: "the variable's declared range", default: `the usual range of ${state.parameter}`, request: "the range you set", data: "this image's range" }[image.source] || "";
    legend.dataset.lo = String(a); legend.dataset.hi = String(b); legend.dataset.source = image.source || "";
    lo.placeholder = String(Number(a.toPrecision(4))); hi.placeholder = String(Number(b.toPrecision(4)));
    if (image.floor !== null) legend.dataset.floor = String(image.floor); else delete legend.dataset.floor;
    replace(legend, h("span", { class: "legend-lo" }, `${Number(a.toPrecision(3))}`),
      h("span", { class: "colorbar", role: "img", "aria-label": "colour scale from dark blue (low) to yellow (high)" }),
      h("span", { class: "legend-hi" }, `${Number(b.toPrecision(3))} ${units}`),
      h("span", { class: "muted legend-note" }, [fixed ? `scale: ${fixed}` : "", image.floor !== null ? `below ${Number(image.floor.toPrecision(3))} ${units} drawn as none` : ""].filter(Boolean).join("; ")));
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
    state.places = features.map((f) => ({ name: String(f.id ?? f.properties?.name ?? ""), at: f.geometry.coordinates.slice(0, 2).map(Number) }));
    map.getContainer().dataset.locations = `${state.collection.id}:${features.length}`;
  }

  async function choose() {
    state.collection = collections.find((c) => c.id === select.value) || null;
    status.textContent = state.collection ? `Loading ${collectionTitle(state.collection, twins)}…` : "";
    delete map.getContainer().dataset.field;
    replace(params);
    asked += 1;  // a drawing of the collection shown before is dropped when it arrives
    if (inflight) { inflight.abort(); inflight = null; }
    delete map.getContainer().dataset.drawing;
    if (state.overlay) { state.overlay.remove(); state.overlay = null; }
    places.clearLayers();
    state.locations = 0;
    state.places = [];
    delete map.getContainer().dataset.locations;
    lo.value = ""; hi.value = "";
    state.asked = undefined;
    timeLabel.textContent = "";
    replace(legend);
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
    slider.value = slider.max;  // until the engine names the most informative time
    onChange(state);
    await draw({ pick: state.times.length > 1 });
  }
  select.addEventListener("change", () => choose().catch((e) => { status.textContent = e.message; }));
  params.addEventListener("change", () => { state.parameter = params.value; lo.value = ""; hi.value = ""; draw().catch((e) => { status.textContent = e.message; }); onChange(state); });
  function step() {  // input (each step, keys included) and change both fire: one drawing per time asked for
    if ((state.times[Number(slider.value)] || null) === state.asked) return;
    draw().catch((e) => { status.textContent = e.message; });
  }
  slider.addEventListener("input", step);
  slider.addEventListener("change", step);
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
