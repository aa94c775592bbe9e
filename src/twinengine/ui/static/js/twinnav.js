// What every page of one twin shares: the twin, its app's manifest (cached: versions are immutable), the
// heading and the tabs (state, workflows, streams, models, and the views the app declares).
import { api, enc } from "./api.js";
import { h, num, when, words } from "./dom.js";

const manifests = new Map();

export async function loadTwin(ref) {
  const twin = await api(`/api/v1/twins/${enc(ref)}`);
  const key = `${twin.app_name}@${twin.app_version}`;
  if (!manifests.has(key)) {
    manifests.set(key, api(`/api/v1/apps/${enc(twin.app_name)}/versions/${enc(twin.app_version)}`).then((v) => v.manifest));
  }
  return { twin, manifest: await manifests.get(key) };
}

/** The names of the state properties a page plots or watches: never a keyed one (``name[key]``) nor the app's
 * ``internal`` bookkeeping; ``numeric``: numbers and integers only; ``reported``: not a ``desired_only`` setting
 * (an alert threshold the twin never reports). */
export function stateNames(manifest, { numeric = false, reported = false } = {}) {
  return Object.entries(manifest.state || {}).filter(([, p]) => !p.key && !p.internal && !(reported && p.desired_only)
    && (!numeric || p.type === "number" || p.type === "integer")).map(([n]) => n);
}

export function twinHeader(twin, manifest, active) {
  const base = `/ui/twins/${enc(twin.name)}`;
  const tabs = [["state", base, "State"], ["workflows", `${base}/workflows`, "Workflows"], ["streams", `${base}/streams`, "Streams"],
    ["models", `${base}/models`, "Models"]];
  for (const [name, view] of Object.entries(manifest.views || {})) tabs.push([`view:${name}`, `${base}/views/${enc(name)}`, view.title]);
  return [
    h("h1", {}, twin.name, active.startsWith("view:") ? ` · ${(manifest.views || {})[active.slice(5)]?.title || ""}` : ""),
    h("p", { class: "muted" }, h("a", { href: `/ui/apps/${enc(twin.app_name)}?version=${enc(twin.app_version)}` }, twin.app),
      ` · owner ${twin.owner} · your access: ${twin.access} · head revision `, h("span", { class: "head-revision" }, String(twin.head_revision)),
      twin.origin ? [" · fork of ", h("a", { href: `/ui/twins/${enc(twin.origin.twin_name)}` }, twin.origin.twin_name), ` at revision ${twin.origin.revision}`] : "",
      (twin.tags || []).includes("official") ? [" · ", h("span", { class: "badge official", title: "of the twins at its place, the one people are sent to" }, "official twin")] : "",
      twin.description ? ` · ${twin.description}` : ""),
    h("nav", { "aria-label": "Twin" }, h("ul", { class: "tabs" }, tabs.map(([key, href, text]) =>
      h("li", {}, h("a", { href, "aria-current": key === active ? "page" : null }, text))))),
  ];
}

/** What a value carries beside it, in words: its uncertainty, its quality flag and why, its staleness. */
export function extraWords(key, x, unit = "") {
  const u = unit ? ` ${unit}` : "";
  if (key === "uncertainty" && x && typeof x === "object") {
    const parts = [];
    if (typeof x.std === "number") parts.push(`± ${num(x.std)}${u} (1 std)`);
    if (x.quantiles) parts.push(`quantiles ${Object.entries(x.quantiles).map(([q, v]) => `${Math.round(Number(q) * 100)} %: ${num(v)}`).join(", ")}`);
    if (Array.isArray(x.members)) {
      const finite = x.members.filter(Number.isFinite);
      parts.push(`${x.members.length} members${finite.length ? ` (${num(Math.min(...finite))} … ${num(Math.max(...finite))})` : ""}`);
    }
    return parts.join("; ") || words(x);
  }
  if (key === "quality" && x && typeof x === "object") {
    const why = [...(x.checks || []), ...(x.inputs || [])];
    return `flagged ${x.flag}${why.length ? ` (${why.slice(0, 4).join(", ")})` : ""}${x.run ? `, run ${x.run}` : x.function ? `, function ${x.function}` : ""}`;
  }
  if (key === "stale") return x ? "stale" : "";
  if (key === "stale_since") return `stale since ${when(x)}`;
  return `${key}: ${typeof x === "object" ? words(x) : String(x)}`;
}

/** A state value and whatever else it carries (uncertainty, quality flags, staleness), all in words. */
export function valueCell(v, declaredUnit) {
  if (!v) return "–";
  const extra = Object.entries(v).filter(([k, x]) => !["value", "unit", "timestamp", "revision"].includes(k) && x !== false && x !== null);
  const unit = v.unit || declaredUnit || "";
  const text = typeof v.value === "number" ? `${Number(v.value.toPrecision(6))}` : typeof v.value === "object" ? words(v.value) : String(v.value);
  const flag = v.quality?.flag;
  return [h("span", { class: `value${flag ? ` flag-${flag}` : ""}` }, text), unit ? ` ${unit}` : "",
    extra.map(([k, x]) => h("span", { class: `extra${k === "quality" ? ` flag-${x?.flag}` : k.startsWith("stale") ? " stale" : ""}` }, extraWords(k, x, unit))).filter((el) => el.textContent)];
}

export function twinLocation(twin) {
  const p = twin.parameters || {};
  const pairs = [[p.longitude, p.latitude], [p.lon, p.lat], [p.location?.longitude, p.location?.latitude],
    [p.location?.lon, p.location?.lat], p.location?.coordinates || []];
  for (const [x, y] of pairs) if (typeof x === "number" && typeof y === "number" && Math.abs(x) <= 180 && Math.abs(y) <= 90) return [x, y];
  return null;
}
