// One run, live: its graph with per-node status, progress, logs, then its provenance and results.
import { api, enc } from "../api.js";
import { h, replace, section, show, statusBadge, table, when, words } from "../dom.js";
import { provFigure } from "../prov.js";
import { whatIfBadge } from "./workflows.js";

const SVG = "http://www.w3.org/2000/svg";
const FINAL = new Set(["finished", "error", "canceled"]);

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function edgesOf(graph) {
  const edges = [];
  const walk = (value, to) => {
    if (Array.isArray(value)) value.forEach((v) => walk(v, to));
    else if (value && typeof value === "object") {
      if (typeof value.from_node === "string") edges.push([value.from_node, to]);
      else for (const [k, v] of Object.entries(value)) if (k !== "process_graph") walk(v, to);
    }
  };
  for (const [id, node] of Object.entries(graph)) walk(node.arguments || {}, id);
  return edges;
}

/** Layered drawing of the process graph: a column per depth, nodes coloured by their status. */
export function dag(graph, nodes) {
  const status = new Map(nodes.map((n) => [n.node_id, n]));
  const ids = Object.keys(graph).length ? Object.keys(graph) : nodes.map((n) => n.node_id);
  const edges = edgesOf(graph).filter(([a, b]) => ids.includes(a) && ids.includes(b));
  const depth = new Map(ids.map((id) => [id, 0]));
  for (let pass = 0; pass < ids.length; pass += 1) for (const [a, b] of edges) depth.set(b, Math.max(depth.get(b), depth.get(a) + 1));
  const columns = [];
  for (const id of ids) (columns[depth.get(id)] ||= []).push(id);
  const W = 150; const H = 46; const GX = 40; const GY = 18;
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((id, r) => pos.set(id, [10 + c * (W + GX), 10 + r * (H + GY)])));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "Process graph with each node's status" });
  for (const [a, b] of edges) {
    const [x1, y1] = pos.get(a); const [x2, y2] = pos.get(b);
    root.append(svg("path", { class: "edge", d: `M${x1 + W} ${y1 + H / 2} C${x1 + W + GX / 2} ${y1 + H / 2} ${x2 - GX / 2} ${y2 + H / 2} ${x2} ${y2 + H / 2}` }));
  }
  for (const id of ids) {
    const [x, y] = pos.get(id);
    const n = status.get(id);
    const st = n ? n.status : "pending";
    const g = svg("g", { class: `node node-${st.replace(/[^a-z]/g, "")}`, "data-node": id, "data-status": st },
      svg("title", {}, `${id}: ${st}${n && n.error ? ` (${n.error})` : ""}`),
      svg("rect", { x, y, width: W, height: H, rx: 6 }),
      svg("text", { x: x + 8, y: y + 18 }, id.length > 20 ? `${id.slice(0, 19)}…` : id),
      svg("text", { x: x + 8, y: y + 36 }, `${(graph[id]?.process_id || n?.process_id || "").slice(0, 14)} · ${st}`));
    root.append(g);
  }
  return root;
}

export async function render(root, ctx) {
  const id = ctx.params[0];
  let run = await api(`/api/v1/runs/${enc(id)}`);
  let graph = {};
  if (run.app && run.workflow) {
    const [name, version] = run.app.split("@");
    const defs = await api(`/api/v1/apps/${enc(name)}/versions/${enc(version)}/workflows`).catch(() => []);
    graph = defs.find((d) => d.name === run.workflow)?.process_graph || {};
  }
  const head = h("p", {});
  const progress = h("progress", { max: "100", value: "0", "aria-label": "Progress" });
  const graphSlot = h("div");
  const nodeSlot = h("div");
  const logSlot = h("div");
  const resultSlot = h("div");
  let logs = [];
  let timer = null;
  async function refresh() {
    run = await api(`/api/v1/runs/${enc(id)}`);
    replace(head, "Status ", statusBadge(run.status), ` · ${Math.round(run.progress)} % · ${run.workflow ? `workflow ${run.workflow} of ` : ""}`,
      run.twin_name ? h("a", { href: `/ui/twins/${enc(run.twin_name)}/workflows` }, run.twin_name) : "",
      run.what_if_of ? [" ", whatIfBadge(run), " (", h("a", { href: `/ui/twins/${enc(run.what_if_of)}/compare/${enc(run.twin_name)}` }, "compare"), ")"] : "", ` · started by ${run.owner}`,
      run.trigger_id ? ` (trigger ${run.trigger_id})` : "", ` · created ${when(run.created_at)}`, run.finished_at ? ` · finished ${when(run.finished_at)}` : "");
    progress.value = run.progress;
    replace(graphSlot, h("div", { class: "scroll", tabindex: "0" }, dag(graph, run.nodes)));
    replace(nodeSlot, table("Nodes", ["node", "process", "status", "attempts", "seconds", "error"], run.nodes.map((n) => [n.node_id,
      `${n.namespace ? `${n.namespace}:` : ""}${n.process_id}`, statusBadge(n.status), String(n.attempts), n.seconds === null ? "–" : n.seconds.toFixed(3), n.error || ""])));
    const fresh = await api(`/api/v1/runs/${enc(id)}/logs`, { params: { offset: logs.length ? logs[logs.length - 1].id + 1 : null } });
    logs = logs.concat(fresh.filter((l) => !logs.some((o) => o.id === l.id)));
    replace(logSlot, table("Logs", ["time (UTC)", "level", "node", "message"], logs.map((l) => [when(l.at), l.level, l.node_id || "", l.message]), { empty: "No log entries." }));
    if (FINAL.has(run.status)) {
      clearInterval(timer);
      timer = null;
      await results();
    }
  }
  async function results() {
    const items = [];
    if (run.error) items.push(h("p", { class: "alert", role: "alert" }, `${run.error.code || "error"}: ${run.error.message || JSON.stringify(run.error)}`));
    items.push(table("Results", ["output", "type", "size", "sha256"], run.assets.map((a) => [
      h("a", { href: `/api/v1/runs/${enc(run.id)}/results/${enc(a.name)}`, download: a.name }, a.name), a.type || "", show(a.size ?? ""), (a.sha256 || "").slice(0, 16)]), { empty: "No outputs." }));
    if (run.value !== null && run.value !== undefined) items.push(h("p", { class: "run-value" }, "Value: ", words(run.value)));
    try {
      const prov = await api(`/api/v1/runs/${enc(run.id)}/provenance`);
      items.push(h("h3", {}, "Provenance"), provFigure(prov),
        h("details", {}, h("summary", {}, "The W3C PROV-JSON document"), h("pre", {}, JSON.stringify(prov, null, 2))));
    } catch (err) { items.push(h("p", { class: "muted" }, `Provenance: ${err.message}`)); }
    replace(resultSlot, items);
  }
  root.append(h("h1", {}, `Run ${run.id}`), head, progress,
    section("Graph", graphSlot, nodeSlot), section("Results and provenance", resultSlot), section("Logs", logSlot));
  await refresh();
  if (!FINAL.has(run.status)) timer = setInterval(() => refresh().catch(() => {}), 1000);
  return () => timer && clearInterval(timer);
}
