// A run's provenance (W3C PROV-JSON) drawn as a graph people can read: what the run used on the left, the
// run and who it acted for in the middle, what it generated on the right, each relation a labelled arrow.
// Every node is as wide as its words (never cut), and the graph fits its box (or is shown at its own size).
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const H = 38; const GX = 110; const GY = 12; const LEAST = 110;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const plain = (v) => (v && typeof v === "object" && "$" in v ? v.$ : v);

/** What a node is and its name, in words and whole: ``["Dataset", "rain-forecast"]``, ``["StateRevision",
 * "revision 99 of demo-reach (initial state)"]``; ``doc`` names a revision's twin. */
export function provParts(id, attrs = {}, doc = null) {
  const type = String(plain(attrs["prov:type"]) || "").replace(/^[a-z]+:/, "");
  const tail = id.replace(/^[a-z]+:/, "").split("/").filter(Boolean);
  let name = tail.length > 1 ? tail.slice(1).join("/") : tail[0] || id;
  if (attrs["twin:collection"] !== undefined) {  // a dataset: its collection, and its version where it has one
    const version = plain(attrs["twin:version"]);
    name = String(plain(attrs["twin:collection"])) + (version && version !== "None" ? ` @ ${String(version).slice(0, 12)}` : "");
  } else if (tail[0] === "twin" && tail.length === 2 && attrs["twin:name"]) {
    name = String(plain(attrs["twin:name"]));
  } else if (tail[0] === "twin" && tail[2] === "revision") {
    const twin = plain(doc?.entity?.[`twin:twin/${tail[1]}`]?.["twin:name"]);
    const role = plain(attrs["twin:role"]);
    name = `revision ${tail[3]}${twin ? ` of ${twin}` : ""}${role ? ` (${role})` : ""}`;
  } else if (tail[0] === "graph") {
    name = tail[1].slice(0, 12);  // a SHA-256 named as git names a commit; the whole one is in the node's details
  } else if (tail[0] === "engine") {
    name = `twinengine ${tail[1]}`;
  }
  return [type, name];
}

/** "twin:result/run-1/result.json" with type "twin:RunResult" → "RunResult · run-1/result.json". */
export function provLabel(id, attrs = {}, doc = null) {
  const [type, name] = provParts(id, attrs, doc);
  return type ? `${type} · ${name}` : name;
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

let ruler = null;

/** How wide ``text`` is drawn at the size the report prints labels at (12 px): on screen (11 px) it has room to spare. */
function textWidth(text) {
  if (typeof document === "undefined") return text.length * 7;
  ruler ||= document.createElement("canvas").getContext("2d");
  ruler.font = "12px system-ui, sans-serif";
  return ruler.measureText(text).width;
}

/** The document as an SVG graph: inputs | activities and agents | outputs, each node as wide as its words. */
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
  const attrsOf = (id) => ({ entity: entities, activity: activities, agent: agents })[kind.get(id)][id] || {};
  const parts = new Map([...kind.keys()].map((id) => [id, provParts(id, attrsOf(id), doc)]));
  const pad = { entity: 34, activity: 20, agent: 40 };  // an ellipse's words keep clear of its curve, a hexagon's of its points
  const wide = new Map([...parts].map(([id, words]) => [id, Math.ceil(Math.max(LEAST, ...words.map(textWidth)) + pad[kind.get(id)])]));
  const columnWidth = columns.map((col) => Math.max(0, ...col.map((id) => wide.get(id))));
  const many = new Map();
  for (const [, , w] of edges) many.set(w, (many.get(w) || 0) + 1);
  const pos = new Map();  // id → [x, y, width]
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  let left = 10;
  columns.forEach((col, c) => {
    const offset = ((tallest - col.length) * (H + GY)) / 2;  // centred: the run sits in the middle
    col.forEach((id, r) => pos.set(id, [left + (columnWidth[c] - wide.get(id)) / 2, 10 + offset + r * (H + GY), wide.get(id)]));
    if (col.length) left += columnWidth[c] + GX;
  });
  const width = Math.ceil(left - GX + 10 + (edges.some(([a, b]) => pos.get(a)?.[0] === pos.get(b)?.[0]) ? 50 : 0));
  const height = 20 + tallest * (H + GY) - GY;
  const root = svg("svg", { class: "prov", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Provenance: ${columns[0].length} inputs, ${Object.keys(activities).length} activities, ${Object.keys(agents).length} agents, ${columns.at(-1).length} outputs, ${edges.length} relations` });
  for (const [a, b, words] of edges) {
    if (!pos.has(a) || !pos.has(b)) continue;
    const [x1, y1, w1] = pos.get(a); const [x2, y2, w2] = pos.get(b);
    const [sx, ex] = x1 <= x2 ? [x1 + w1, x2] : [x1, x2 + w2];
    const sy = y1 + H / 2; const ey = y2 + H / 2;
    const same = x1 === x2;
    const d = same ? `M${x1 + w1} ${sy} C${x1 + w1 + 50} ${sy} ${x2 + w2 + 50} ${ey} ${x2 + w2} ${ey}`
      : `M${sx} ${sy} C${(sx + ex) / 2} ${sy} ${(sx + ex) / 2} ${ey} ${ex} ${ey}`;
    root.append(svg("path", { class: "edge", d, "marker-end": "url(#prov-arrow)", "data-relation": words }));
    if (words === "used by" || many.get(words) > 3) continue;  // their columns say it: many labels would only crowd
    const lx = same ? x1 + w1 + 40 : (sx + ex) / 2; const ly = (sy + ey) / 2 - 3;
    root.append(svg("text", { class: "edge-label", x: lx, y: ly, "text-anchor": "middle" }, words));
  }
  root.prepend(svg("defs", {}, svg("marker", { id: "prov-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0 0 L10 5 L0 10 z", fill: "#8a96a8" }))));
  for (const [id, [x, y, w]] of pos) {
    const k = kind.get(id);
    const attrs = attrsOf(id);
    const [type, name] = parts.get(id);
    const shape = k === "entity" ? svg("ellipse", { cx: x + w / 2, cy: y + H / 2, rx: w / 2, ry: H / 2 })
      : k === "activity" ? svg("rect", { x, y, width: w, height: H, rx: 3 })
        : svg("polygon", { points: `${x},${y + H / 2} ${x + 14},${y} ${x + w - 14},${y} ${x + w},${y + H / 2} ${x + w - 14},${y + H} ${x + 14},${y + H}` });
    const words = type ? svg("text", { x: x + w / 2, y: y + H / 2 - 3, "text-anchor": "middle" },
      svg("tspan", { class: "node-type", x: x + w / 2 }, type), svg("tspan", { x: x + w / 2, dy: 13 }, name))
      : svg("text", { x: x + w / 2, y: y + H / 2 + 4, "text-anchor": "middle" }, name);
    root.append(svg("g", { class: `node ${k}`, "data-id": id },
      svg("title", {}, `${k} ${id}\n${Object.entries(attrs).map(([a, v]) => `${a}: ${String(typeof v === "object" ? JSON.stringify(v) : v).slice(0, 120)}`).join("\n")}`),
      shape, words));
  }
  return root;
}

/** The graph fitted to its box (a button shows it at its own size, in a box that scrolls), with a line in
 * words and a legend. */
export function provFigure(doc) {
  const count = (k) => Object.keys(doc[k] || {}).length;
  const box = h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Provenance graph" }, provGraph(doc));
  const el = h("div", { class: "prov-figure fit" });
  const zoom = h("button", { type: "button", class: "secondary small prov-zoom no-print", "aria-pressed": "false", on: { click: () => {
    const fit = el.classList.toggle("fit");
    zoom.textContent = fit ? "Show at full size" : "Fit to the box";
    zoom.setAttribute("aria-pressed", String(!fit));
  } } }, "Show at full size");
  const graph = box.firstChild;
  let first = true;
  new ResizeObserver(() => {
    const natural = graph.width.baseVal.value;
    if (first && box.clientWidth) {  // fitted only while its words stay readable (a phone scrolls it instead)
      first = false;
      if (box.clientWidth < natural * 0.6) zoom.click();
    }
    zoom.hidden = el.classList.contains("fit") && natural <= box.clientWidth;  // at its own size already
  }).observe(box);
  el.append(h("p", { class: "prov-summary" }, `${count("entity")} entities, ${count("activity")} activities, ${count("agent")} agents, ${count("used")} used, ${count("wasGeneratedBy")} generated `, zoom),
    h("p", { class: "muted prov-legend" }, "Ellipses are data (what the run used on the left, what it generated on the right), boxes are runs, hexagons are the people and software that ran them (left, under the inputs); hover a node for its details."),
    box);
  return el;
}
