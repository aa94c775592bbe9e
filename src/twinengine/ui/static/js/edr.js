// EDR queries the map makes, and what it reads from their CoverageJSON answers.
import { api, enc } from "./api.js";

/** Times of a collection from its extent: listed values, or R<n>/<start>/PT<s>S. */
export function collectionTimes(collection) {
  const temporal = collection.extent && collection.extent.temporal;
  if (!temporal) return [];
  const values = temporal.values || [];
  if (values.length === 1 && /^R\d+\//.test(values[0])) {
    const [r, start, step] = values[0].split("/");
    const n = Number(r.slice(1));
    const seconds = Number((step.match(/PT(\d+(?:\.\d+)?)S/) || [])[1] || 3600);
    const t0 = Date.parse(start);
    return Array.from({ length: n }, (_, i) => new Date(t0 + i * seconds * 1000).toISOString().replace(".000Z", "Z"));
  }
  if (values.length) return values;
  return (temporal.interval || [])[0] || [];
}

export function bboxOf(collection) {
  const b = collection.extent && collection.extent.spatial && collection.extent.spatial.bbox && collection.extent.spatial.bbox[0];
  return b && b.length >= 4 ? b : null;
}

export function parametersOf(collection) {
  return Object.keys(collection.parameter_names || {});
}

function grid(doc, name) {
  const range = doc.ranges[name];
  return { values: range.values.map((v) => (v === null ? NaN : v)), shape: range.shape || [range.values.length], axes: range.axisNames || [] };
}

function interval(times) {
  return times.length ? `${times[0]}/${times[times.length - 1]}` : null;
}

/** Position query: the nearest cell's series. */
export async function positionSeries(id, parameter, lon, lat, times) {
  const doc = await api(`/edr/collections/${enc(id)}/position`, { params: { coords: `POINT(${lon} ${lat})`, "parameter-name": parameter, datetime: interval(times) } });
  const t = doc.domain.axes.t ? doc.domain.axes.t.values : [];
  const g = grid(doc, parameter);
  return { times: t, values: g.values, cell: [doc.domain.axes.x.values[0], doc.domain.axes.y.values[0]], units: doc.parameters[parameter]?.unit?.symbol };
}

/** Area query: the area mean per time step, weighting cells by cos(latitude) as the grid's cells shrink. */
export async function areaMean(id, parameter, ring, times) {
  const wkt = `POLYGON((${ring.map(([x, y]) => `${x} ${y}`).join(", ")}))`;
  const doc = await api(`/edr/collections/${enc(id)}/area`, { params: { coords: wkt, "parameter-name": parameter, datetime: interval(times) } });
  const axes = doc.domain.axes;
  const t = axes.t ? axes.t.values : [null];
  const ys = axes.y.values;
  const xs = axes.x.values;
  const g = grid(doc, parameter);
  const idx = (name) => g.axes.indexOf(name);
  const stride = (k) => g.shape.slice(k + 1).reduce((a, b) => a * b, 1);
  const means = [];
  let cells = 0;
  for (let ti = 0; ti < t.length; ti += 1) {
    let sum = 0; let weight = 0; let inside = 0;
    for (let yi = 0; yi < ys.length; yi += 1) {
      const w = Math.cos((ys[yi] * Math.PI) / 180);
      for (let xi = 0; xi < xs.length; xi += 1) {
        const at = (idx("t") >= 0 ? ti * stride(idx("t")) : 0) + yi * stride(idx("y")) + xi * stride(idx("x"));
        const v = g.values[at];
        if (Number.isFinite(v)) { sum += v * w; weight += w; inside += 1; }
      }
    }
    cells = Math.max(cells, inside);
    means.push(weight ? sum / weight : null);
  }
  return { times: t, values: means, cells, units: doc.parameters[parameter]?.unit?.symbol };
}

/** The engine's drawing of one time step (f=png; no ``time``: the engine picks the most informative one), with
 * the cell edges, the time, the colour scale and its floor from its headers. */
export async function fieldImage(id, parameter, bbox, time, scale, signal = undefined) {
  const response = await api(`/edr/collections/${enc(id)}/cube`, { raw: true, signal, params: { bbox: bbox.slice(0, 4).join(","), "parameter-name": parameter, datetime: time, f: "png", scale: scale ? scale.join(",") : null } });
  const bounds = response.headers.get("X-Bounds").split(",").map(Number);
  const drawn = response.headers.get("X-Scale").split(",").map(Number);
  const floor = response.headers.get("X-Floor");
  const blob = await response.blob();
  return { url: URL.createObjectURL(blob), bounds, scale: drawn, units: response.headers.get("X-Units"), time: response.headers.get("X-Datetime"),
    floor: floor === null ? null : Number(floor), source: response.headers.get("X-Scale-Source") };
}
