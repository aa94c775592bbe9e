// One app: its versions, description and manifest, and a form (from its parameter schema) that creates a
// twin; the engine's validation errors land beside the field they name.
import { api, enc } from "../api.js";
import { append, field, h, section, show, table, when } from "../dom.js";
import { clearErrors, collect, formErrors, schemaFields, showErrors } from "../form.js";

function details(manifest) {
  const state = Object.entries(manifest.state || {}).map(([name, p]) => [name, p.internal ? `${p.type} (internal)` : p.type, p.unit || "", p.description || ""]);
  const streams = Object.entries(manifest.streams || {}).map(([name, s]) => [name,
    Object.entries(s.fields || {}).map(([f, d]) => `${f}: ${d.type}${d.unit ? ` [${d.unit}]` : ""}`).join(", "), s.description || ""]);
  const workflows = Object.entries(manifest.workflows || {}).map(([name, w]) => [name, w.description || ""]);
  const views = Object.entries(manifest.views || {}).map(([name, v]) => [name, v.title, Object.keys(v.panels || {}).join(", ")]);
  return [
    table("State", ["property", "type", "unit", "description"], state),
    table("Streams", ["stream", "fields", "description"], streams),
    table("Workflows", ["workflow", "description"], workflows),
    table("Views", ["view", "title", "panels"], views, { empty: "No views declared." }),
  ];
}

function createForm(app, ctx) {
  const manifest = app.manifest;
  const name = h("input", { type: "text", name: "name", autocomplete: "off" });
  name.dataset.loc = "name";
  const description = h("input", { type: "text", name: "description", autocomplete: "off" });
  description.dataset.loc = "description";
  const params = h("fieldset", { class: "stack" }, h("legend", {}, "Parameters"),
    schemaFields(manifest.parameters || {}, { prefix: "parameters", idPrefix: "param" }));
  const form = h("form", { class: "stack", novalidate: true, "aria-label": "Create a twin" },
    field("twin-name", "Twin name (required)", name, "lower-case letters, digits and '-'"),
    field("twin-description", "Description", description), params, formErrors(),
    h("div", {}, h("button", { type: "submit" }, `Create a twin of ${app.name}@${app.version}`)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { app: `${app.name}@${app.version}`, name: name.value.trim(), parameters: collect(params) };
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const twin = await api("/api/v1/twins", { method: "POST", body });
      ctx.toast(`Twin ${twin.name} created`);
      ctx.navigate(`/ui/twins/${enc(twin.name)}`);
    } catch (error) {
      showErrors(form, error);
    }
  });
  return form;
}

export async function render(root, ctx) {
  const [name] = ctx.params;
  const all = await api(`/api/v1/apps/${enc(name)}`);
  const version = ctx.query.get("version") || all.versions[0].version;
  const app = all.versions.find((v) => v.version === version) || all.versions[0];
  const m = app.manifest;
  const versions = h("select", { name: "version" }, all.versions.map((v) => h("option", { value: v.version, selected: v.version === app.version }, v.version)));
  versions.addEventListener("change", () => ctx.navigate(`/ui/apps/${enc(name)}?version=${enc(versions.value)}`));
  const canCreate = ["user", "admin"].includes(ctx.user.role);
  append(root, [
    h("h1", {}, m.title),
    h("div", { class: "row" }, field("app-version", "Version", versions),
      h("p", { class: "muted" }, `${app.name}@${app.version} · ${m.domain} · licence ${m.license} · published by ${app.published_by} on ${when(app.published_at)} · sha256 ${app.archive_sha256.slice(0, 12)}…`)),
    section("Description", h("p", { class: "description" }, m.description || "(none)"),
      h("p", { class: "muted" }, "Keywords: ", (m.keywords || []).join(", ") || "–", " · Authors: ",
        (m.authors || []).map((a) => a.name).join(", "))),
    section("What it declares", details(m)),
    canCreate ? section("Create a twin", createForm(app, ctx)) : null,
    section("Manifest", h("details", {}, h("summary", {}, "twinapp.yaml as published (JSON)"), h("pre", {}, JSON.stringify(m, null, 2)))),
    section("Versions", table(null, ["version", "published", "by", "size"], all.versions.map((v) => [
      h("a", { href: `/ui/apps/${enc(name)}?version=${enc(v.version)}` }, v.version), when(v.published_at), v.published_by, `${show(v.archive_size)} bytes`])))]);
}
