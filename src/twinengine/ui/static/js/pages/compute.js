// Compute (providers and admins): the sites with their status, what the runs used by identity and by site
// (tables and a bar chart of core-seconds), and the quotas with their use.
import { api } from "../api.js";
import { h, num, section, statusBadge, table, when } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";

/** Horizontal bars of ``value`` per ``key``: a handful of rows, so plain SVG is enough. */
function bars(groups, label) {
  const width = 480, row = 22, left = 120, most = Math.max(1e-9, ...groups.map((g) => g.core_seconds));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${row * groups.length + 4}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  groups.forEach((g, i) => {
    const y = i * row + 2;
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", "0"); text.setAttribute("y", String(y + 15));
    text.textContent = g.key;
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(left)); bar.setAttribute("y", String(y + 3)); bar.setAttribute("height", "14");
    bar.setAttribute("width", String(Math.max(1, (width - left - 90) * g.core_seconds / most)));
    bar.setAttribute("fill", "currentColor");
    const value = document.createElementNS(SVG, "text");
    value.setAttribute("x", String(width - 85)); value.setAttribute("y", String(y + 15));
    value.textContent = `${num(g.core_seconds, 3)} core-s`;
    svg.append(text, bar, value);
  });
  return h("figure", {}, svg, h("figcaption", { class: "muted" }, label));
}

/** Bytes as megabytes, as the usage tables show them (the API and ``twin usage`` keep bytes). */
const mb = (bytes) => num((bytes || 0) / 1e6, 4);

function usageTable(title, usage) {
  return table(title, [usage.by, "runs", "core-hours", "core-seconds", "GPU-hours", "wall seconds", "peak memory (MB)",
    "read (MB)", "written (MB)", "transferred (MB)", "stored (MB)"],
  usage.groups.map((g) => [g.key, String(g.runs), num(g.core_hours, 4), num(g.core_seconds, 4), num(g.gpu_hours || 0, 4),
    num(g.wall_seconds, 4),
    mb(g.peak_memory_bytes), mb(g.bytes_read), mb(g.bytes_written), mb(g.bytes_transferred), mb(g.bytes_stored)]),
  { empty: "No usage recorded yet." });
}

export async function render(root, ctx) {
  const [sites, byIdentity, bySite, quotas] = await Promise.all([
    api("/api/v1/compute/sites"), api("/api/v1/usage", { params: { by: "identity" } }),
    api("/api/v1/usage", { params: { by: "site" } }), api("/api/v1/compute/quotas")]);
  const admin = ctx.user && ctx.user.role === "admin";
  root.append(h("h1", {}, "Compute"),
    section("Sites", table(null, ["site", "kind", "status", "cores", "memory (GB)", "last heartbeat (UTC)", "problem"],
      sites.items.map((s) => [s.name, s.kind, statusBadge(s.status), String(s.cores), num(s.memory_bytes / 1e9, 3),
        when(s.heartbeat_at), s.health_error || ""]), { empty: "No sites." })),
    section(admin ? "Usage by identity" : "Your usage", usageTable(null, byIdentity)),
    section("Usage by site", usageTable(null, bySite),
      bySite.groups.length ? bars(bySite.groups, "core-seconds by site") : null),
    section("Quotas", table(null, ["subject", "site", "core-hours", "used (this period)", "period", "since (UTC)"],
      quotas.items.map((q) => [q.subject, q.site, num(q.core_hours, 4), num(q.used_core_hours, 4), q.period,
        when(q.period_start)]), { empty: "No quotas." })));
}
