// Search and browse the catalogue of DT applications.
import { api } from "../api.js";
import { field, h } from "../dom.js";

export async function render(root, ctx) {
  const q = ctx.query.get("q") || "";
  const domain = ctx.query.get("domain") || "";
  const page = await api("/api/v1/apps", { params: { q, domain, limit: 200 } });
  const qInput = h("input", { type: "search", name: "q", value: q });
  const dInput = h("input", { type: "text", name: "domain", value: domain });
  const form = h("form", { class: "row card", role: "search" }, field("q", "Search", qInput), field("domain", "Domain", dInput),
    h("div", {}, h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (qInput.value.trim()) params.set("q", qInput.value.trim());
    if (dInput.value.trim()) params.set("domain", dInput.value.trim());
    ctx.navigate(`/ui/catalog${params.toString() ? `?${params}` : ""}`);
  });
  const cards = page.items.map((app) => h("article", { class: "card app-card" },
    h("h2", { class: "panel-title" }, h("a", { href: `/ui/apps/${encodeURIComponent(app.name)}` }, app.title)),
    h("p", { class: "muted" }, `${app.name} · ${app.domain} · latest ${app.latest_version} · ${app.versions.length} version${app.versions.length === 1 ? "" : "s"}`),
    h("p", { class: "description" }, app.description.length > 400 ? `${app.description.slice(0, 400)}…` : app.description)));
  root.append(h("h1", {}, "Catalogue"), form,
    h("p", { class: "muted", role: "status" }, `${page.total} app${page.total === 1 ? "" : "s"}${q ? ` matching “${q}”` : ""}`),
    h("div", { class: "grid" }, cards));
}
