// Two twins side by side (a twin and its what-if fork): state values, what differs, and one property of
// both on one plot.
import { api, enc } from "../api.js";
import { field, h, replace, show, table } from "../dom.js";
import { figure, seconds, timeSeries } from "../plot.js";
import { loadTwin } from "../twinnav.js";

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
  const numeric = Object.entries(a.manifest.state || {}).filter(([, p]) => p.type === "number" || p.type === "integer").map(([n]) => n);
  const select = h("select", {}, numeric.map((n) => h("option", { value: n }, n)));
  const fig = figure("Both twins");
  let plot = null;
  async function draw() {
    const [ha, hb] = await Promise.all([a, b].map(({ twin }) => api(`/api/v1/twins/${enc(twin.id)}/properties/${enc(select.value)}/history`, { params: { limit: 100000 } })));
    if (plot) plot.destroy();
    replace(fig.slot);
    plot = await timeSeries(fig.slot, { title: select.value, yLabel: ha.unit || "", series: [
      { label: a.twin.name, x: seconds(ha.items), y: ha.items.map((v) => v.value) },
      { label: b.twin.name, x: seconds(hb.items), y: hb.items.map((v) => v.value), dash: [5, 3] }] });
    fig.info.textContent = `${select.value}: ${ha.items.length} points of ${a.twin.name}, ${hb.items.length} of ${b.twin.name}`;
  }
  select.addEventListener("change", draw);
  root.append(h("h1", {}, `${a.twin.name} and ${b.twin.name}`),
    h("p", { class: "muted" }, h("a", { href: `/ui/twins/${enc(a.twin.name)}` }, a.twin.name), " and ", h("a", { href: `/ui/twins/${enc(b.twin.name)}` }, b.twin.name),
      b.twin.origin ? ` (forked from ${b.twin.origin.twin_name} at revision ${b.twin.origin.revision})` : ""),
    h("div", { class: "side" },
      h("section", { class: "card", "aria-label": "Reported state" }, h("h2", { class: "panel-title" }, "Reported state"),
        h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "State side by side" }, h("table", { class: "compare" },
          h("thead", {}, h("tr", {}, ["property", a.twin.name, b.twin.name, "difference"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)))),
      h("section", { class: "card", "aria-label": "Parameters that differ" }, h("h2", { class: "panel-title" }, "Parameters that differ"),
        table(null, ["parameter", a.twin.name, b.twin.name], params, { empty: "Same parameters." }))),
    h("section", { class: "card", "aria-label": "History of both" }, h("h2", { class: "panel-title" }, "History of both"), field("cmp-prop", "Property", select), fig.el));
  if (numeric.length) await draw();
  return () => plot && plot.destroy();
}
