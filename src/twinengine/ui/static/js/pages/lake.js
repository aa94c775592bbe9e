// The data lake: storage endpoints with their usage, datasets with their replicas per endpoint, replication
// rules and their state, and a STAC browser over the lake's collections and items.
import { api, enc } from "../api.js";
import { field, h, replace, section, show, statusBadge, table, when } from "../dom.js";
import { collectionTitle } from "../geo.js";

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n; let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${u ? v.toFixed(1) : v} ${units[u]}`;
}

async function stacBrowser() {
  const [collections, twins] = await Promise.all([api("/stac/collections"), api("/api/v1/twins", { params: { limit: 500 } }).catch(() => ({ items: [] }))]);
  const byId = new Map(twins.items.map((t) => [t.id, t]));
  const titles = new Map(collections.collections.map((c) => [c.id, collectionTitle(c, byId)]));
  const select = h("select", {}, collections.collections.map((c) => h("option", { value: c.id, title: c.id }, titles.get(c.id))));
  const slot = h("div");
  async function load() {
    if (!select.value) return;
    const items = await api(`/stac/collections/${enc(select.value)}/items`, { params: { limit: 100 } });
    replace(slot, table(`Items of ${titles.get(select.value)}`, ["item", "datetime", "bbox", "assets"], items.features.map((f) => [f.id,
      f.properties.datetime || `${f.properties.start_datetime || ""} – ${f.properties.end_datetime || ""}`, f.bbox ? f.bbox.map((v) => Number(v).toFixed(3)).join(", ") : "–",
      Object.entries(f.assets || {}).map(([k, a]) => h("div", {}, `${k}: ${a.type || ""} ${a["file:checksum"] ? `checksum ${String(a["file:checksum"]).slice(0, 14)}…` : ""} `,
        (a.alternate ? `(+${Object.keys(a.alternate).length} alternate)` : "")))]), { empty: "No items." }),
    h("p", { class: "muted" }, `${items.numberMatched ?? items.features.length} item(s)`));
  }
  select.addEventListener("change", () => load());
  await load();
  return section("STAC browser", collections.collections.length ? [field("stac-collection", "Collection", select), slot] : h("p", { class: "muted" }, "No collections."));
}

export async function render(root) {
  const [endpoints, dids, rules] = await Promise.all([api("/api/v1/lake/endpoints"), api("/api/v1/lake/dids", { params: { limit: 200 } }),
    api("/api/v1/lake/rules", { params: { limit: 200 } })]);
  const datasets = dids.items.filter((d) => d.type !== "container");
  const replicas = await Promise.all(datasets.slice(0, 50).map((d) => api(`/api/v1/lake/dids/${enc(d.did)}`).then((full) => full.replicas).catch(() => [])));
  root.append(h("h1", {}, "Data lake"),
    section("Endpoints", table(null, ["endpoint", "protocol", "attributes", "used", "quota", "replicas", "read/write/delete"], endpoints.items.map((e) => [e.name, e.protocol,
      Object.entries(e.attributes).map(([k, v]) => `${k}=${v}`).join(", "), bytes(e.used_bytes), e.quota_bytes === null ? "none" : bytes(e.quota_bytes), String(e.replicas),
      [e.read, e.write, e.delete].map((b) => (b ? "yes" : "no")).join(" / ")]), { empty: "No endpoints." })),
    section("Datasets and their replicas", table(null, ["dataset", "type", "size", "created by", "replicas per endpoint"], datasets.slice(0, 50).map((d, i) => [d.did, d.type, bytes(d.bytes), d.created_by,
      replicas[i].length ? replicas[i].map((r) => h("div", {}, `${r.endpoint}: `, statusBadge(r.state), r.verified_at ? ` verified ${when(r.verified_at)}` : "")) : "none"]), { empty: "No datasets." }),
      h("p", { class: "muted" }, `${dids.total} identifiers in all (files, datasets, containers).`)),
    section("Rules", table(null, ["rule", "dataset", "copies", "endpoints", "state", "locks ok / replicating / stuck", "owner", "evaluated (UTC)"], rules.items.map((r) => [r.id.slice(0, 8), r.did, String(r.copies), r.endpoints,
      [statusBadge(r.state), ` ${show(r.percent)} %`], `${r.locks_ok} / ${r.locks_replicating} / ${r.locks_stuck}`, r.owner, when(r.evaluated_at)]), { empty: "No rules." })),
    await stacBrowser());
}
