// The twins the signed-in person owns or was granted (all of them for admins).
import { api } from "../api.js";
import { h, table, when } from "../dom.js";

export async function render(root, ctx) {
  const page = await api("/api/v1/twins", { params: { limit: 500 } });
  const rows = page.items.map((t) => [
    h("a", { href: `/ui/twins/${encodeURIComponent(t.name)}` }, t.name), h("a", { href: `/ui/apps/${encodeURIComponent(t.app_name)}?version=${encodeURIComponent(t.app_version)}` }, t.app),
    t.owner, t.access, t.origin ? `fork of ${t.origin.twin_name} @ ${t.origin.revision}` : "", String(t.head_revision), when(t.updated_at)]);
  root.append(h("h1", {}, "Twins"),
    h("p", { class: "muted" }, `${page.total} twin${page.total === 1 ? "" : "s"} you can see as ${ctx.user.name}. `,
      ctx.user.role === "user" || ctx.user.role === "admin" ? h("a", { href: "/ui/catalog" }, "Create one from the catalogue.") : ""),
    table("Your twins", ["twin", "app", "owner", "access", "origin", "revision", "updated (UTC)"], rows,
      { empty: "No twins yet." }));
}
