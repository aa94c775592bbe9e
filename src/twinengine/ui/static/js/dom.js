// Building the page from data without ever parsing it as HTML: every string becomes a text node or an
// attribute value, so app-provided text (names, descriptions, state values) cannot inject markup or script.

const SAFE_URL = /^(\/(?!\/)|https?:\/\/|#|\?|mailto:)/i;

/** h("a", {href: "/ui/", class: "x", on: {click: fn}}, "text", child, [more]) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked" || key === "selected" || key === "disabled" || key === "required") {
      el[key] = Boolean(value);
    } else if (key.startsWith("on")) {
      throw new Error(`inline handler ${key} refused; use on: {...}`);
    } else if ((key === "href" || key === "src") && !SAFE_URL.test(String(value))) {
      el.setAttribute(key, "#");  // javascript: and data: URLs from data are never followed
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}

/** A table from column titles and rows of cells (strings or nodes). */
export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c))));
  const body = h("tbody", {}, rows.length ? rows.map((row) => {
    const tr = h("tr", {}, row.map((cell) => (cell instanceof Node && cell.tagName === "TD") ? cell : h("td", {}, cell)));
    return tr;
  }) : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
  return h("div", caption ? { class: "scroll", tabindex: "0", role: "region", "aria-label": caption } : { class: "scroll", tabindex: "0" },
    h("table", {}, caption ? h("caption", {}, caption) : null, head, body));
}

export function num(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return value === null || value === undefined ? "–" : String(value);
  return Number.isInteger(value) ? value.toLocaleString("en") : Number(value.toPrecision(digits)).toString();
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace(".000Z", "Z").replace("T", " ");
}

export function show(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return num(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${String(status).replace(/[^A-Za-z_-]/g, "")}` }, String(status));
}

export function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", { class: "panel-title" }, title), children);
}

/** An input with its label, hint and error slot. */
export function field(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : null;
  input.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error` });
  input.setAttribute("aria-describedby", [hintId, `${id}-error`].filter(Boolean).join(" "));
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("span", { class: "hint", id: hintId }, hint) : null, error);
}
