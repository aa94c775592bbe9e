// A run's provenance (W3C PROV-JSON) drawn as a graph people can read: what the run used on the left, the
// run and who it acted for in the middle, what it generated on the right, each relation a labelled arrow.
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 230; const H = 34; const GX = 120; const GY = 12;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** "twin:result/run-1/result.json" with type "twin:RunResult" → "RunResult · result.json". */
export function provLabel(id, attrs = {}) {
  const type = String(attrs["prov:type"] || "").replace(/^[a-z]+:/, "");
  const tail = id.replace(/^[a-z]+:/, "").split("/").filter(Boolean);
  const name = tail.length > 1 ? tail.slice(1).join("/") : tail[0] || id;
  const room = Math.max(8, 30 - type.length);
  const short = name.length > room ? `${name.slice(0, Math.ceil(room / 2) - 1)}…${name.slice(-Math.floor(room / 2))}` : name;
  return type ? `${type} · ${short}` : short;
}

const RELATIONS = [  // [PROV-JSON key, from key, to key, words]
  ["used", "prov:entity", "prov:activity", "used by"],
  ["wasGeneratedBy", "prov:activity", "prov:entity", "generated"],
  ["wasAssociatedWith", "prov:agent", "prov:activity", "ran"],
  ["wasAttributedTo", "prov:agent", "prov:entity", "attributed"],
  ["wasDerivedFrom", "prov:usedEntity", "prov:generatedEntity", "derived"],
  ["wasInformedBy", "prov:informant", "prov:informed", "informed"],
  ["actedOnBehalfOf", "prov:responsible", "prov:delegate", "on behalf of"],
];

/** The relations of a PROV-JSON document as [from, to, words]. */
export function provEdges(doc) {
  const edges = [];
  for (const [key, from, to, words] of RELATIONS) {
    for (const rel of Object.values(doc[key] || {})) {
      for (const r of Array.isArray(rel) ? rel : [rel]) if (r[from] && r[to]) edges.push([r[from], r[to], words]);
    }
  }
  return edges;
}

/** The document as an SVG graph: inputs | activities and agents | outputs. */
export function provGraph(doc) {
  const entities = doc.entity || {}; const activities = doc.activity || {}; const agents = doc.agent || {};
  const edges = provEdges(doc);
  const generated = new Set(edges.filter(([, , w]) => w === "generated").map(([, to]) => to));
  // runs informed by others (an ensemble by its members) stand right of them: a column per step
  const depth = new Map(Object.keys(activities).map((id) => [id, 0]));
  const informs = edges.filter(([a, b, w]) => w === "informed" && depth.has(a) && depth.has(b));
  for (let pass = 0; pass < depth.size; pass += 1) for (const [a, b] of informs) depth.set(b, Math.max(depth.get(b), depth.get(a) + 1));
  const steps = Math.max(0, ...depth.values()) + 1;
  const columns = Array.from({ length: steps + 2 }, () => []);
  const kind = new Map();
  for (const id of Object.keys(entities)) { columns[generated.has(id) ? steps + 1 : 0].push(id); kind.set(id, "entity"); }
  for (const id of Object.keys(activities)) { columns[1 + depth.get(id)].push(id); kind.set(id, "activity"); }
  for (const id of Object.keys(agents)) { columns[0].push(id); kind.set(id, "agent"); }  // under the inputs: who ran it, left to right
  const many = new Map();
  for (const [, , w] of edges) many.set(w, (many.get(w) || 0) + 1);
  const pos = new Map();
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  columns.forEach((col, c) => {
    const offset = ((tallest - col.length) * (H + GY)) / 2;  // centred: the run sits in the middle
    col.forEach((id, r) => pos.set(id, [10 + c * (W + GX), 10 + offset + r * (H + GY)]));
  });
  const width = 20 + columns.length * W + (columns.length - 1) * GX;
  const height = 20 + tallest * (H + GY) - GY;
  const root = svg("svg", { class: "prov", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Provenance: ${columns[0].length} inputs, ${Object.keys(activities).length} activities, ${Object.keys(agents).length} agents, ${columns.at(-1).length} outputs, ${edges.length} relations` });
  for (const [a, b, words] of edges) {
    if (!pos.has(a) || !pos.has(b)) continue;
    const [x1, y1] = pos.get(a); const [x2, y2] = pos.get(b);
    const [sx, ex] = x1 <= x2 ? [x1 + W, x2] : [x1, x2 + W];
    const sy = y1 + H / 2; const ey = y2 + H / 2;
    const same = x1 === x2;
    const d = same ? `M${x1 + W} ${sy} C${x1 + W + 50} ${sy} ${x2 + W + 50} ${ey} ${x2 + W} ${ey}`
      : `M${sx} ${sy} C${(sx + ex) / 2} ${sy} ${(sx + ex) / 2} ${ey} ${ex} ${ey}`;
    root.append(svg("path", { class: "edge", d, "marker-end": "url(#prov-arrow)", "data-relation": words }));
    if (words === "used by" || many.get(words) > 3) continue;  // their columns say it: many labels would only crowd
    const lx = same ? x1 + W + 40 : (sx + ex) / 2; const ly = (sy + ey) / 2 - 3;
    root.append(svg("text", { class: "edge-label", x: lx, y: ly, "text-anchor": "middle" }, words));
  }
  root.prepend(svg("defs", {}, svg("marker", { id: "prov-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0 0 L10 5 L0 10 z", fill: "#8a96a8" }))));
  for (const [id, [x, y]] of pos) {
    const k = kind.get(id);
    const attrs = (k === "entity" ? entities : k === "activity" ? activities : agents)[id] || {};
    const shape = k === "entity" ? svg("ellipse", { cx: x + W / 2, cy: y + H / 2, rx: W / 2, ry: H / 2 })
      : k === "activity" ? svg("rect", { x, y, width: W, height: H, rx: 3 })
        : svg("polygon", { points: `${x},${y + H / 2} ${x + 14},${y} ${x + W - 14},${y} ${x + W},${y + H / 2} ${x + W - 14},${y + H} ${x + 14},${y + H}` });
    root.append(svg("g", { class: `node ${k}`, "data-id": id },
      svg("title", {}, `${k} ${id}\n${Object.entries(attrs).map(([a, v]) => `${a}: ${String(typeof v === "object" ? JSON.stringify(v) : v).slice(0, 120)}`).join("\n")}`),
      shape, svg("text", { x: x + W / 2, y: y + H / 2 + 4, "text-anchor": "middle" }, provLabel(id, attrs))));
  }
  return root;
}

/** The graph in a box that scrolls sideways, with a line in words and a legend. */
export function provFigure(doc) {
  const count = (k) => Object.keys(doc[k] || {}).length;
  return h("div", { class: "prov-figure" },
    h("p", { class: "prov-summary" }, `${count("entity")} entities, ${count("activity")} activities, ${count("agent")} agents, ${count("used")} used, ${count("wasGeneratedBy")} generated`),
    h("p", { class: "muted prov-legend" }, "Ellipses are data (what the run used on the left, what it generated on the right), boxes are runs, hexagons are the people and software that ran them (left, under the inputs); hover a node for its details."),
    h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Provenance graph" }, provGraph(doc)));
}
