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

const PAGE = 25;  // identifiers per page: each file's row asks for its replicas

/** A copy of another participant's data, as its holder reads its terms: the agreement and provider, the uses
 * counted on this engine (every copy landed under the agreement), and whether one more is permitted now, with
 * the agreement's reason when not (the whole refusal in the tooltip). */
function copyTerms(terms) {
  if (!terms) return "–";
  const uses = `${terms.uses} ${terms.uses === 1 ? "use" : "uses"} here`;
  const reason = terms.refusal ? terms.refusal.slice(terms.refusal.lastIndexOf(": ") + 2) : "";
  return h("div", { class: "copy-terms", title: terms.refusal || terms.agreement },
    h("div", {}, `copy of ${terms.provider || "another participant"}'s data, agreement ${terms.agreement}`),
    h("div", {}, `${uses} · `, terms.usable ? statusBadge("usable") : [statusBadge("refused"), ` ${reason}`]));
}

/** Identifiers (files, datasets, containers) a page at a time, found by words in their scope or name, each
 * with its replicas per endpoint; the engine pages and searches (``q``, ``limit``, ``offset``). */
function didBrowser() {
  const search = h("input", { type: "search", placeholder: "words in the scope or name", "aria-describedby": "lake-found" });
  const kind = h("select", {}, h("option", { value: "" }, "all"), ["dataset", "file", "container"].map((t) => h("option", { value: t }, t)));
  const prev = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const next = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  const found = h("p", { class: "muted", id: "lake-found", role: "status" });
  const slot = h("div", { class: "did-page" });
  let offset = 0;
  let asked = 0;
  async function load() {
    const id = ++asked;
    const page = await api("/api/v1/lake/dids", { params: { q: search.value.trim(), type: kind.value, limit: PAGE, offset } });
    // files hold the replicas, asked for one by one; a copy's terms come with the list
    const details = await Promise.all(page.items.map((d) => (d.type === "file"
      ? api(`/api/v1/lake/dids/${enc(d.did)}`).catch(() => null) : Promise.resolve(null))));
    if (id !== asked) return;  // a newer search or page replaced this one
    const held = page.items.some((d) => d.terms);
    const columns = ["identifier", "type", "size", "created by", "replicas per endpoint"].concat(held ? ["copy's terms"] : []);
    replace(slot, table(null, columns, page.items.map((d, i) => {
      const full = details[i];
      const replicas = d.type !== "file" ? "–" : full && full.replicas && full.replicas.length
        ? full.replicas.map((r) => h("div", {}, `${r.endpoint}: `, statusBadge(r.state), r.verified_at ? ` verified ${when(r.verified_at)}` : "")) : "none";
      return [d.did, d.type, bytes(d.bytes), d.created_by, replicas].concat(held ? [copyTerms(d.terms)] : []);
    }), { empty: search.value.trim() ? "Nothing matches these words." : "No identifiers." }));
    const last = Math.min(offset + page.items.length, page.total);
    found.textContent = page.total ? `${offset + 1}–${last} of ${page.total} identifiers${search.value.trim() ? ` matching “${search.value.trim()}”` : ""}` : "0 identifiers";
    slot.dataset.total = String(page.total);
    slot.dataset.offset = String(offset);
    prev.disabled = offset === 0;
    next.disabled = last >= page.total;
  }
  let typing = null;
  const restart = () => { offset = 0; load().catch((e) => { found.textContent = e.message; }); };
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(restart, 250); });
  search.addEventListener("keydown", (event) => { if (event.key === "Enter") { clearTimeout(typing); restart(); } });
  kind.addEventListener("change", restart);
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load().catch((e) => { found.textContent = e.message; }); });
  next.addEventListener("click", () => { offset += PAGE; load().catch((e) => { found.textContent = e.message; }); });
  const el = section("Files, datasets and their replicas", [h("div", { class: "row" }, field("lake-search", "Search", search), field("lake-type", "Type", kind)),
    found, slot, h("p", {}, prev, " ", next)]);
  return { el, load };
}

export async function render(root) {
  const browser = didBrowser();
  const [endpoints, rules] = await Promise.all([api("/api/v1/lake/endpoints"), api("/api/v1/lake/rules", { params: { limit: 200 } }), browser.load()]);
  root.append(h("h1", {}, "Data lake"),
    section("Endpoints", table(null, ["endpoint", "protocol", "attributes", "used", "quota", "replicas", "read/write/delete"], endpoints.items.map((e) => [e.name, e.protocol,
      Object.entries(e.attributes).map(([k, v]) => `${k}=${v}`).join(", "), bytes(e.used_bytes), e.quota_bytes === null ? "none" : bytes(e.quota_bytes), String(e.replicas),
      [e.read, e.write, e.delete].map((b) => (b ? "yes" : "no")).join(" / ")]), { empty: "No endpoints." })),
    browser.el,
    section("Rules", table(null, ["rule", "dataset", "copies", "endpoints", "state", "locks ok / replicating / stuck", "owner", "evaluated (UTC)"], rules.items.map((r) => [r.id.slice(0, 8), r.did, String(r.copies), r.endpoints,
      [statusBadge(r.state), ` ${show(r.percent)} %`], `${r.locks_ok} / ${r.locks_replicating} / ${r.locks_stuck}`, r.owner, when(r.evaluated_at)]), { empty: "No rules." })),
    await stacBrowser());
}
