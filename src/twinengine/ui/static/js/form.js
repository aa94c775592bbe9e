// Forms generated from a JSON Schema (an app's parameters, a workflow's openEO parameters). The browser's
// own checks are off (novalidate): the engine validates, and its errors ({loc, msg}) land beside the field
// they name.

import { field, h } from "./dom.js";

function inputFor(name, schema, value) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  const initial = value !== undefined ? value : schema.default;
  if (Array.isArray(schema.enum)) {
    const select = h("select", { name, "data-type": "enum" },
      h("option", { value: "" }, "–"),
      schema.enum.map((option) => h("option", { value: JSON.stringify(option), selected: initial !== undefined && JSON.stringify(initial) === JSON.stringify(option) }, String(option))));
    return select;
  }
  if (type === "boolean") {
    return h("select", { name, "data-type": "boolean" }, h("option", { value: "" }, "–"),
      h("option", { value: "true", selected: initial === true }, "true"),
      h("option", { value: "false", selected: initial === false }, "false"));
  }
  if (type === "number" || type === "integer") {
    return h("input", { type: "text", inputmode: "decimal", name, "data-type": type, value: initial ?? "", autocomplete: "off" });
  }
  if (type === "string" || (!type && typeof initial === "string")) {
    return h("input", { type: "text", name, "data-type": "string", value: initial ?? "", autocomplete: "off" });
  }
  return h("textarea", { name, "data-type": "json", rows: "3" }, initial === undefined ? "" : JSON.stringify(initial));
}

function describe(schema) {
  const parts = [];
  if (schema.description) parts.push(schema.description);
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) bounds.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) bounds.push(`< ${schema.exclusiveMaximum}`);
  if (bounds.length) parts.push(bounds.join(", "));
  if (schema.pattern) parts.push(`pattern ${schema.pattern}`);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  return parts.join(" · ");
}

/** Fields for an object schema; each input knows the ``loc`` the engine will name (prefix.name). */
export function schemaFields(schema, { prefix, values = {}, only = null, idPrefix = "f" } = {}) {
  const required = new Set(schema.required || []);
  const entries = Object.entries(schema.properties || {}).filter(([name]) => !only || only.includes(name));
  return entries.map(([name, sub]) => {
    const input = inputFor(name, sub || {}, values[name]);
    input.dataset.loc = prefix ? `${prefix}.${name}` : name;
    const label = required.has(name) ? `${name} (required)` : name;
    return field(`${idPrefix}-${name}`, label, input, describe(sub || {}));
  });
}

/** The values typed in, by name; empty fields are left out so the schema's defaults apply. A value that
 * does not parse is sent as typed, for the engine to name. */
export function collect(container) {
  const out = {};
  for (const input of container.querySelectorAll("[data-type]")) {
    const raw = input.value.trim();
    if (raw === "") continue;
    const type = input.dataset.type;
    if (type === "number" || type === "integer") {
      const n = Number(raw);
      out[input.name] = Number.isFinite(n) ? n : raw;
    } else if (type === "boolean") {
      out[input.name] = raw === "true";
    } else if (type === "enum" || type === "json") {
      try { out[input.name] = JSON.parse(raw); } catch { out[input.name] = raw; }
    } else {
      out[input.name] = raw;
    }
  }
  return out;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-errors");
  if (summary) summary.textContent = "";
}

/** Put the engine's error beside the fields its details name; the rest in the form's summary. */
export function showErrors(form, error) {
  clearErrors(form);
  const summary = form.querySelector(".form-errors");
  const left = [];
  let first = null;
  for (const detail of error.details || []) {
    const loc = String(detail.loc || "");
    const input = [...form.querySelectorAll("[data-loc]")].find((el) => el.dataset.loc === loc || loc.startsWith(`${el.dataset.loc}.`) || loc.startsWith(`${el.dataset.loc}[`));
    if (input) {
      input.setAttribute("aria-invalid", "true");
      const slot = form.querySelector(`#${CSS.escape(input.id)}-error`);
      if (slot) slot.textContent = slot.textContent ? `${slot.textContent}; ${detail.msg}` : String(detail.msg);
      first = first || input;
    } else {
      left.push(loc ? `${loc}: ${detail.msg}` : String(detail.msg));
    }
  }
  if (summary) summary.textContent = left.length || !first ? [error.message, ...left].join(" — ") : "";
  (first || summary)?.focus?.();
}

/** openEO parameter objects → an object JSON Schema. */
export function openeoSchema(parameters) {
  const properties = {};
  const required = [];
  for (const p of parameters || []) {
    const schema = Array.isArray(p.schema) ? p.schema[0] : (p.schema || {});
    properties[p.name] = { ...schema, description: p.description, default: p.default };
    if (p.default === undefined && !p.optional) required.push(p.name);
  }
  return { type: "object", properties, required };
}

export function formErrors() {
  return h("p", { class: "alert form-errors", role: "alert", tabindex: "-1" });
}
