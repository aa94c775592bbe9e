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

/** A table from column titles and rows of cells (strings or nodes), in a box that scrolls sideways inside its
 * card, with a CSV download of what it shows (``download: false`` leaves it out). */
export function table(caption, columns, rows, { empty = "Nothing yet.", download = true } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c))));
  const body = h("tbody", {}, rows.length ? rows.map((row) => {
    const tr = h("tr", {}, row.map((cell) => (cell instanceof Node && cell.tagName === "TD") ? cell : h("td", {}, cell)));
    return tr;
  }) : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
  const el = h("table", {}, caption ? h("caption", {}, caption) : null, head, body);
  const box = h("div", caption ? { class: "scroll", tabindex: "0", role: "region", "aria-label": caption } : { class: "scroll", tabindex: "0" }, el);
  if (!download || !rows.length) return box;
  return h("div", { class: "table-box" }, box, h("p", { class: "downloads" }, tableCsvButton(el, caption || columns.join(" "))));
}

/** A file name from a title: letters, digits, - and _ only. */
export function fileName(title, ext) {
  const stem = String(title || "data").normalize("NFKD").replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80);
  return `${stem || "data"}.${ext}`;
}

/** Offer ``blob`` as a file named ``name`` (an <a download> clicked: no server round trip, allowed by the CSP). */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { download: name });
  link.href = url;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const FORMULA = /^[=+\-@\t\r]/;  // what a spreadsheet reads as the start of a formula (OWASP, CSV injection)
const NUMBER = /^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?$/;  // -1.5, -1,234, +2e-3

/** A cell's text as a spreadsheet should read it: text that would start a formula (``=``, ``+``, ``-``, ``@``, a
 * tab or a carriage return first) gets a leading ``'`` so it stays text; a number (-1.5, -1,234) stays a number.
 * What a cell holds was written by someone else (a state value by whoever may operate the twin, a station's name
 * by whoever wrote the data file), so the download never trusts it. */
export function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  const text = String(value);
  return FORMULA.test(text) && !NUMBER.test(text) ? `'${text}` : text;
}

/** RFC 4180 CSV: every field quoted when it holds a comma, a quote or a line break; lines end in CRLF. Cells
 * are neutralised first (``csvCell``), so a downloaded table never runs a formula in a spreadsheet. */
export function csvText(columns, rows) {
  const cell = (v) => {
    const text = csvCell(v);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

export function downloadButton(label, title, make) {
  return h("button", { type: "button", class: "secondary small download", "aria-label": `${label}: ${title}`,
    on: { click: async () => saveBlob(await make(), fileName(title, label.split(" ").at(-1).toLowerCase())) } }, label);
}

/** A button that downloads a table as CSV, its cells as the page shows them (buttons in cells left out; a
 * cell's ``data-csv`` stands for it). */
export function tableCsvButton(tableEl, title) {
  const text = (cell) => {
    if (cell.dataset.csv !== undefined) return cell.dataset.csv;  // a cell that shows more than its value
    const copy = cell.cloneNode(true);
    for (const b of copy.querySelectorAll("button")) b.remove();
    return copy.textContent.replace(/\s+/g, " ").trim();
  };
  return downloadButton("Download CSV", title, () => {
    const columns = [...tableEl.querySelectorAll("thead th")].map(text);
    const rows = [...tableEl.querySelectorAll("tbody tr")].filter((tr) => !tr.hidden && !tr.querySelector("td[colspan]")).map((tr) => [...tr.children].map(text));
    return new Blob([csvText(columns, rows)], { type: "text/csv" });
  });
}

export function num(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return value === null || value === undefined ? "–" : String(value);
  return Number.isInteger(value) ? value.toLocaleString("en") : Number(value.toPrecision(digits)).toString();
}

/** How long ago ``iso`` was, as people say it: ``just now``, ``14 min ago``, ``3 h 5 min ago``, ``4 days ago``. */
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return "–";
  const s = Math.round((now - t) / 1000);
  if (s < -60) return `at ${when(iso)}`;  // a time still to come (a forecast's, a clock ahead)
  if (s < 60) return "just now";
  const m = Math.floor(s / 60); const hrs = Math.floor(s / 3600); const days = Math.floor(s / 86400);
  if (m < 60) return `${m} min ago`;
  if (hrs < 48) return `${hrs} h${m % 60 && hrs < 24 ? ` ${m % 60} min` : ""} ago`;
  return `${days} day${days === 1 ? "" : "s"}${hrs % 24 ? ` ${hrs % 24} h` : ""} ago`;
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace(/\.\d{3}Z$/, "Z").replace("T", " ");
}

export function show(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return num(value);
  if (typeof value === "object") return words(value);
  return String(value);
}

/** An object or list as words (``mean: 1.2, max: 3``; nested ones in parentheses), never raw JSON. */
export function words(value, depth = 0) {
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value)) {
    const shown = value.slice(0, 12).map((v) => (typeof v === "object" && v !== null ? `(${words(v, depth + 1)})` : show(v)));
    return shown.join(", ") + (value.length > 12 ? `, … (${value.length} in all)` : "");
  }
  if (typeof value === "object") {
    if (depth > 2) return "…";
    return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? `(${words(v, depth + 1)})` : show(v)}`).join(", ") || "–";
  }
  return show(value);
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

/** A button that revokes, deletes or ends something, asking first: its click puts the question and two answers in
 * its place; "Yes" (labelled "Yes: " + the button's label) does it, "Keep it" puts the button back. One slip of
 * the mouse must not cut a partner off or delete someone's work. ``act`` runs once; the answer is then disabled. */
export function askFirst(label, props, question, act) {
  const box = h("span", { class: "ask-first" });
  const name = props["aria-label"] || label;
  const first = () => replace(box, h("button", { type: "button", class: "danger", ...props, on: { click: ask } }, label));
  function ask() {
    replace(box, h("span", { role: "status" }, `${question} `),
      h("button", { type: "button", class: props.class || "danger", "aria-label": `Yes: ${name}`, on: { click: async (event) => {
        event.currentTarget.disabled = true;
        await act();
      } } }, `Yes, ${label.toLowerCase()}`), " ",
      h("button", { type: "button", class: "small", "aria-label": `Keep it: ${name}`, on: { click: () => { first(); box.querySelector("button").focus(); } } }, "Keep it"));
    box.querySelector("button").focus();
  }
  first();
  return box;
}
