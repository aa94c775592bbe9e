// One run, live: its graph with per-node status, progress, logs, then its provenance and results.
import { api, enc } from "../api.js";
import { h, replace, section, show, statusBadge, table, when, words } from "../dom.js";
import { provFigure } from "../prov.js";
import { crateLink, rerunDiff } from "../crates.js";
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

let ruler = null;

function textWidth(text) {
  ruler ||= document.createElement("canvas").getContext("2d");
  ruler.font = "12px system-ui, sans-serif";
  return ruler.measureText(text).width;
}

/** Layered drawing of the process graph: a column per depth, each node as wide as its words (never cut), coloured
 * by its status. ``ranBy``: the node rows live on the runs that ran the graph (an ensemble's members), so its
 * own nodes carry no status. */
export function dag(graph, nodes, { ranBy = null } = {}) {
  const status = new Map(nodes.map((n) => [n.node_id, n]));
  const ids = Object.keys(graph).length ? Object.keys(graph) : nodes.map((n) => n.node_id);
  const edges = edgesOf(graph).filter(([a, b]) => ids.includes(a) && ids.includes(b));
  const depth = new Map(ids.map((id) => [id, 0]));
  for (let pass = 0; pass < ids.length; pass += 1) for (const [a, b] of edges) depth.set(b, Math.max(depth.get(b), depth.get(a) + 1));
  const columns = [];
  for (const id of ids) (columns[depth.get(id)] ||= []).push(id);
  const words = new Map(ids.map((id) => {
    const n = status.get(id);
    const st = ranBy || (n ? n.status : "pending");
    const process = graph[id]?.process_id || n?.process_id || "";
    return [id, [id, ranBy ? process : `${process} · ${st}`, st]];  // an ensemble's note says who ran its nodes
  }));
  const widths = columns.map((col) => Math.ceil(Math.max(120, ...col.flatMap((id) => words.get(id).slice(0, 2).map(textWidth))) + 18));
  const H = 46; const GX = 40; const GY = 18;
  const pos = new Map();
  let left = 10;
  columns.forEach((col, c) => { col.forEach((id, r) => pos.set(id, [left, 10 + r * (H + GY), widths[c]])); left += widths[c] + GX; });
  const width = Math.ceil(left - GX + 10);
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const root = svg("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "Process graph with each node's status" });
  for (const [a, b] of edges) {
    const [x1, y1, w1] = pos.get(a); const [x2, y2] = pos.get(b);
    root.append(svg("path", { class: "edge", d: `M${x1 + w1} ${y1 + H / 2} C${x1 + w1 + GX / 2} ${y1 + H / 2} ${x2 - GX / 2} ${y2 + H / 2} ${x2} ${y2 + H / 2}` }));
  }
  for (const id of ids) {
    const [x, y, w] = pos.get(id);
    const n = status.get(id);
    const [name, process, st] = words.get(id);
    const g = svg("g", { class: `node node-${ranBy ? "members" : st.replace(/[^a-z]/g, "")}`, "data-node": id, "data-status": ranBy ? "" : st },
      svg("title", {}, `${id}: ${st}${n && n.error ? ` (${n.error})` : ""}`),
      svg("rect", { x, y, width: w, height: H, rx: 6 }),
      svg("text", { x: x + 8, y: y + 18 }, name),
      svg("text", { x: x + 8, y: y + 36 }, process));
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
    const members = run.kind === "ensemble" && !run.nodes.length ? (run.value?.member_runs || []) : null;
    const ranBy = members ? (FINAL.has(run.status) ? `run by ${members.length || "its"} members` : "in its members") : null;
    replace(graphSlot, h("div", { class: "scroll fit-graph", tabindex: "0", role: "region", "aria-label": "Process graph" }, dag(graph, run.nodes, { ranBy })),
      members ? h("p", { class: "muted members-note" }, `An ensemble: each of its ${members.length || ""} member runs ran this graph; their nodes, logs and statuses are on their own pages`,
        members.length ? [": ", members.map((m, i) => [i ? ", " : "", h("a", { href: `/ui/runs/${enc(m)}` }, m)])] : "", ".") : null);
    replace(nodeSlot, table("Nodes", ["node", "process", "status", "attempts", "seconds", "error"], run.nodes.map((n) => [n.node_id,
      `${n.namespace ? `${n.namespace}:` : ""}${n.process_id}`, statusBadge(n.status), String(n.attempts), n.seconds === null ? "–" : n.seconds.toFixed(3), n.error || ""]),
    { empty: members ? "The member runs ran the nodes: see each on its own page." : "Nothing yet." }));
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
    items.push(crateLink(run));
    items.push(...await rerunDiff(run));
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
