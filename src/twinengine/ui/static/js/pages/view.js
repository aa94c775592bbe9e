// A view the twin's app declares (manifest ``views``): its panels in order, each drawn from the public API.
import { api, enc } from "../api.js";
import { append, h, num, replace, section, show, statusBadge, table, when, words } from "../dom.js";
import { figure, flaggedPoints, flagWords, seconds, timeSeries } from "../plot.js";
import { provFigure } from "../prov.js";
import { modelWords, skillSection } from "../trust.js";
import { loadTwin, twinHeader, valueCell } from "../twinnav.js";
import { listCollections } from "../geo.js";
import { mapWithTools } from "./map.js";
import { curves, decision } from "./models.js";
import { startForm } from "./workflows.js";
import { whatIfShelf } from "../whatifs.js";

/** ISO 8601 duration (P3D, PT1H, PT3600S, P1DT6H) → seconds. */
export function durationSeconds(text) {
  const m = String(text).match(/^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/);
  if (!m) return 3600;
  const [w, d, hh, mm, ss] = m.slice(1).map((v) => Number(v || 0));
  return (((w * 7 + d) * 24 + hh) * 60 + mm) * 60 + ss;
}

function latestTime(values) {
  const stamps = values.filter(Boolean).map((v) => Date.parse(v.timestamp));
  return stamps.length ? Math.max(...stamps) : Date.now();
}

/** The outermost pair of a recorded forecast's values: its quantiles (an ensemble's), else lower and upper. */
export function forecastBand(values) {
  const levels = Object.keys(values[0]?.quantiles || {}).map(Number).sort((p, q) => p - q);
  const pick = levels.length >= 2 ? [levels[0], levels.at(-1)] : null;
  const lower = values.map((v) => (pick ? v.quantiles?.[String(pick[0])] : v.lower) ?? null);
  const upper = values.map((v) => (pick ? v.quantiles?.[String(pick[1])] : v.upper) ?? null);
  if (!lower.some(Number.isFinite) || !upper.some(Number.isFinite)) return null;
  const label = pick ? `ensemble ${Math.round(pick[0] * 100)}–${Math.round(pick[1] * 100)} %` : "forecast interval";
  return { label, lower, upper };
}

/** The forecast a run recorded of ``prop`` (an ensemble records its members' mean, quantiles and members),
 * and the forecast whose band goes with it: its own, else an ensemble's issued at the same time. */
async function recordedForecast(twin, prop, run) {
  const found = await api(`/api/v1/twins/${enc(twin.id)}/forecasts`, { params: { property: prop, values: true, limit: 20 } });
  const own = found.find((f) => f.run_id === run.id && (f.values || []).length) || null;
  const banded = own && (forecastBand(own.values) ? own : found.find((f) => f.issued_at === own.issued_at
    && f.values?.length === own.values.length && forecastBand(f.values)));
  return own && { ...own, band: banded ? { ...forecastBand(banded.values), members: banded.values[0]?.members?.length || null,
    memberValues: banded.values.map((v) => v.members || null) } : null };
}

/** A run's forecast as a series after ``lastX``: the run of the forecast the view's summary speaks of (``named``:
 * the newest issued, so a hindcast run later never stands in for it), else the twin's latest finished run of the
 * workflow (its own runs only: a what-if runs on a fork, so it never stands in for the official forecast), or
 * ``run``. A JSON list
 * of numbers is drawn as it is; otherwise (an ensemble keeps a netCDF file) the forecast the run recorded,
 * at its valid times, with its band. */
async function forecastSeries(twin, spec, lastX, run = null, prop = null, named = null) {
  if (!run && named) run = await api(`/api/v1/runs/${enc(named)}`).catch(() => null);  // the one the summary speaks of
  if (run && run.workflow !== spec.workflow) run = null;
  if (!run) {
    const runs = await api("/api/v1/runs", { params: { twin: twin.id, status: "finished", limit: 50 } });
    run = runs.items.find((r) => r.workflow === spec.workflow && r.assets.length);
  }
  if (!run || !run.assets.length) return null;
  const asset = run.assets.find((a) => a.name === spec.output) || run.assets.find((a) => (a.type || "").includes("json"));
  let values = null;
  if (asset) {
    const response = await api(`/api/v1/runs/${enc(run.id)}/results/${enc(asset.name)}`, { raw: true });
    values = await response.json().catch(() => null);
  }
  const step = durationSeconds(spec.step);
  const recorded = prop ? await recordedForecast(twin, prop, run).catch(() => null) : null;
  const drawn = (x, y) => {
    const band = recorded?.band && recorded.values.length === y.length ? recorded.band : null;
    const rows = recorded?.values[0]?.members?.length ? recorded.values.map((v) => v.members) : band?.memberValues;  // its own, else the band's ensemble
    const width = rows?.[0]?.length || 0;
    const lines = width && rows.length === y.length ? { x, ys: Array.from({ length: width }, (_, m) => rows.map((v) => v?.[m] ?? null)) } : null;
    return { run, x, y, members: recorded?.values[0]?.members?.length || null, lines,
      band: band && { label: band.label, members: band.members, lower: { x, y: band.lower }, upper: { x, y: band.upper } } };
  };
  if (Array.isArray(values) && values.length && values.every((v) => typeof v === "number" || v === null)) {
    return drawn(Float64Array.from(values, (_, i) => lastX + (i + 1) * step), values);
  }
  if (!recorded) return null;
  return drawn(seconds(recorded.values, "valid_time"), recorded.values.map((v) => v.value));
}

/** The band a property's own values carry (an assimilation's analyses carry quantiles and a std): the
 * outermost pair of their quantiles, else one std either side; null when none of them carries either. Only
 * the values that carry it are banded, so a band of analyses spans their times and no other. */
export function ownBand(items) {
  const carried = items.filter((v) => Number.isFinite(v.value) && v.uncertainty
    && (Object.keys(v.uncertainty.quantiles || {}).length >= 2 || Number.isFinite(v.uncertainty.std)));
  if (!carried.length) return null;
  const levels = [...new Set(carried.flatMap((v) => Object.keys(v.uncertainty.quantiles || {})))].map(Number).sort((p, q) => p - q);
  const quantiled = levels.length >= 2 && carried.every((v) => v.uncertainty.quantiles?.[String(levels[0])] !== undefined
    && v.uncertainty.quantiles?.[String(levels.at(-1))] !== undefined);
  const lower = carried.map((v) => (quantiled ? v.uncertainty.quantiles[String(levels[0])] : v.value - (v.uncertainty.std ?? NaN)));
  const upper = carried.map((v) => (quantiled ? v.uncertainty.quantiles[String(levels.at(-1))] : v.value + (v.uncertainty.std ?? NaN)));
  const label = quantiled ? `${Math.round(levels[0] * 100)}\u2013${Math.round(levels.at(-1) * 100)} %` : "\u00b1 1 std";
  const x = seconds(carried);
  return { label, count: carried.length, last: carried.at(-1), lowerLast: lower.at(-1), upperLast: upper.at(-1),
    lower: { x, y: lower }, upper: { x, y: upper } };
}

/** Where a run started, in words, as the engine says it (its ``start``: the twin's state its app maps to the
 * graph's parameters): "started from revision 99 (storage 13.83 mm at 2026-03-04 00:00 UTC)". */
export function startWords(start) {
  return start?.text || "";
}

/** A state property in the words of the people reading it: ``forecast_peak_level`` → ``forecast peak level``. */
export function propWords(name) {
  return String(name).replace(/_/g, " ");
}

/** A value in a table for people: yes or no, else the value with what it carries (``valueCell``). */
function readable(v, unit) {
  if (v && typeof v.value === "boolean") return v.value ? "yes" : "no";
  return valueCell(v, unit);
}

async function timeseriesPanel(panel, twin, state, manifest, whatIfs, answered = {}) {
  const fig = figure(panel.title);
  const until = latestTime(panel.properties.map((p) => state[panel.state][p]));
  const since = new Date(until - durationSeconds(panel.window) * 1000).toISOString();
  const base = `/api/v1/twins/${enc(twin.id)}/properties`;
  const history = (prop, kind) => api(`${base}/${enc(prop)}/history`, { params: { kind, since, limit: 100000 } });
  const histories = await Promise.all(panel.properties.map((p) => history(p, panel.state)));
  const series = histories.map((hist) => ({ label: `${hist.property}${hist.unit ? ` (${hist.unit})` : ""}`, x: seconds(hist.items), y: hist.items.map((v) => v.value) }));
  const flags = histories.flatMap((hist) => flaggedPoints(hist.items));
  let members = null;
  const thresholds = panel.thresholds.map((t) => {
    const v = t.value ?? state[t.state]?.[t.property]?.value;
    return typeof v === "number" ? { label: t.label || t.property, value: v } : null;
  }).filter(Boolean);
  let band = null;
  if (panel.band) {
    const [lo, hi] = await Promise.all([history(panel.band.lower, panel.state), history(panel.band.upper, panel.state)]);
    band = { label: panel.band.label, lower: { x: seconds(lo.items), y: lo.items.map((v) => v.value) }, upper: { x: seconds(hi.items), y: hi.items.map((v) => v.value) } };
  }
  let note = "";
  if (panel.forecast && series[0] && series[0].x.length) {
    const named = answered.forecast?.property === panel.properties[0] ? answered.forecast.run_id : null;
    const f = await forecastSeries(twin, panel.forecast, series[0].x[series[0].x.length - 1], null, panel.properties[0], named).catch(() => null);
    if (f) {
      const label = panel.forecast.label || `forecast (${f.run.id})`;
      series.push({ label: f.members ? `${label}, mean of ${f.members} members` : label, x: f.x, y: f.y, dash: [6, 3] });
      if (f.band && !band) band = f.band;
      members = f.lines;
      const started = f.run.id === answered.forecast?.run_id ? answered.forecast?.start?.text : startWords(f.run.start);
      note = `; forecast of run ${f.run.id}: ${f.y.length} steps${f.members ? `, ensemble of ${f.members} members` : ""}, peak ${show(Math.max(...f.y.filter(Number.isFinite)))}`
        + (f.band && band === f.band ? `, band ${f.band.label}${f.band.members && !f.members ? ` of ${f.band.members} members` : ""}` : "")
        + (started ? `; it ${started}` : "");
    } else {
      note = "; no finished forecast run yet";
    }
  }
  if (!band) {  // else the values' own uncertainty (an analysis's spread): the first property's that carries one
    const k = histories.findIndex((hist) => ownBand(hist.items));
    const own = k >= 0 ? ownBand(histories[k].items) : null;
    if (own) {
      const prop = histories[k].property;
      const analysed = (manifest?.assimilation?.state || []).includes(prop);
      const unitText = histories[k].unit ? ` ${histories[k].unit}` : "";
      band = { ...own, label: `${analysed ? "analysis" : prop} ${own.label}` };
      note += `; ${own.count} ${analysed ? "analyses" : "values"} of ${prop} with their ${own.label}, the latest `
        + `${show(own.last.value)}${unitText} (${show(own.lowerLast)} to ${show(own.upperLast)}) at ${when(own.last.timestamp)}`;
    }
  }
  const unit = histories[0]?.unit || "";
  const cell = h("div");
  cell.append(fig.el);
  const drawn = { destroy: () => {} };
  if (panel.forecast && series[0] && series[0].x.length) {
    const official = { count: series.length, note };
    whatIfs.push(async (run, fork) => {  // a what-if's forecast beside the official one, never in its place
      if (run.workflow !== panel.forecast.workflow) return;
      const f = await forecastSeries(twin, panel.forecast, series[0].x[series[0].x.length - 1], run, panel.properties[0]);
      if (!f) return;
      series.splice(official.count, Infinity, { label: `what-if forecast (${fork})`, x: f.x, y: f.y, dash: [2, 3] });
      note = `${official.note}; what-if forecast of run ${run.id} on ${fork}: ${f.y.length} steps, peak ${show(Math.max(...f.y.filter(Number.isFinite)))}`;
      drawn.destroy();
      await after();
    });
  }
  const after = async () => {
    const plot = await timeSeries(fig.slot, { series, thresholds, band, yLabel: unit, title: panel.title, flags, members, caption: twin.name });
    drawn.destroy = plot.destroy;
    const last = histories[0]?.items.at(-1);
    fig.info.textContent = `${series.slice(0, histories.length).map((s) => `${s.x.length} points of ${s.label}`).join(", ")}`
      + (last ? `; latest ${show(last.value)} ${unit} at ${when(last.timestamp)}` : "")
      + thresholds.map((t) => `; ${t.label} ${show(t.value)} ${unit}`).join("") + note
      + (members ? `; ${members.ys.length} members drawn as thin lines` : "") + (flags.length ? `; ${flagWords(flags)}` : "");
  };
  return { el: cell, after, destroy: () => drawn.destroy() };
}

/** A cell showing a value in words whose CSV holds the value alone (one cell per value; the unit has its column). */
function valueTd(v, unit, attrs = {}) {
  const raw = v === null || v === undefined ? "" : typeof v.value === "object" ? JSON.stringify(v.value) : String(v.value);
  return h("td", { ...attrs, "data-csv": raw }, readable(v, unit));
}

/** The twin's own values; after a what-if, a column of the fork's values beside them, headed as a what-if. */
function tablePanel(panel, state, manifest, whatIfs) {
  const build = (fork = null, other = null) => table(null, ["what", "reported", ...(fork ? [`what-if (${fork})`] : []), "desired", "unit", "time (UTC)"], panel.properties.map((p) => {
    const r = state.reported[p]; const d = state.desired[p];
    const declared = (manifest.state || {})[p] || {};
    const unit = declared.unit;
    const alert = r && r.value === true;
    return [h("td", { "data-csv": p }, h("span", { class: alert ? "bad" : "", title: declared.description || p }, propWords(p))),
      valueTd(r, unit, { class: alert ? "bad big" : "" }),
      ...(fork ? [valueTd(other.reported[p], unit, { class: "what-if" })] : []), valueTd(d, unit), unit || "", when((r || d)?.timestamp)];
  }));
  const el = h("div", {}, build());
  whatIfs.push(async (run, fork) => replace(el, build(fork, await api(`/api/v1/twins/${enc(fork)}/state`))));
  return { el };
}

async function formPanel(panel, twin, ctx, whatIfs) {
  const defs = await api(`/api/v1/apps/${enc(twin.app_name)}/versions/${enc(twin.app_version)}/workflows`);
  const def = defs.find((d) => d.name === panel.workflow);
  const status = h("div", { role: "status" });
  let timer = null;
  let shownRun = null;  // the what-if run the other panels show (once, however many ticks see it finished)
  const watch = (run) => {
    const tick = async () => {
      const now = await api(`/api/v1/runs/${enc(run.id)}`);
      const fork = now.what_if_of ? now.twin_name : null;
      replace(status, h("p", {}, fork ? [h("span", { class: "badge what-if" }, "what-if"), " "] : null,
        h("a", { href: `/ui/runs/${enc(now.id)}` }, `Run ${now.id}`), " ", statusBadge(now.status), ` ${Math.round(now.progress)} %`,
        fork ? [" on ", h("a", { href: `/ui/twins/${enc(fork)}` }, fork), " (", h("a", { href: `/ui/twins/${enc(twin.name)}/compare/${enc(fork)}` }, "compare"), ")"] : null,
        now.value !== null && now.value !== undefined ? ` · value ${words(now.value).slice(0, 160)}` : ""));
      if (["finished", "error", "canceled"].includes(now.status)) {
        clearInterval(timer);
        if (fork && now.status === "finished" && shownRun !== now.id) {
          shownRun = now.id;
          for (const shown of whatIfs) await shown(now, fork);
        }
        if (fork && shelf) await shelf.shownAs(now.status === "finished" ? now.id : null);
      }
    };
    clearInterval(timer);
    timer = setInterval(() => tick().catch(() => clearInterval(timer)), 1000);
    tick();
  };
  const canRun = ["owner", "operate", "admin"].includes(twin.access);
  // the reader's what-ifs, kept (whatifs.js): listed under the form, the newest shown again once the panels are drawn
  const shelf = panel.what_if && canRun ? whatIfShelf(twin, panel, ctx, async (run, fork) => {
    shownRun = run.id;
    for (const shown of whatIfs) await shown(run, fork);
  }) : null;
  const whatIf = panel.what_if ? h("p", { class: "muted" }, `A what-if: each run forks ${twin.name} and runs on the fork; ${twin.name}'s own state and forecast stay as they are.`) : null;
  return { el: h("div", {}, whatIf, def ? (canRun ? startForm(twin, def, ctx, { only: panel.parameters, onStarted: watch, whatIf: Boolean(panel.what_if) }) : h("p", { class: "muted" }, "Your access does not let you start runs."))
    : h("p", { class: "alert" }, `workflow ${panel.workflow} not found`), status, shelf?.el), destroy: () => clearInterval(timer),
    later: shelf?.showNewest };
}

async function modelPanel(panel, twin) {
  const models = await api(`/api/v1/twins/${enc(twin.id)}/models`);
  const model = models.find((m) => m.name === panel.model);
  if (!model) return { el: h("p", { class: "muted" }, "No version has been trained yet.") };
  const runs = await api(`/api/v1/twins/${enc(twin.id)}/training-runs`, { params: { model: panel.model, limit: 5 } });
  const fig = figure(`Metrics of ${panel.model}`);
  const inUse = model.champion
    ? ["In use: ", h("strong", {}, `version ${model.champion}`), ", the version the gate accepted to make the forecasts."]
    : [model.versions.length ? "No version is in use yet: none has passed the gate." : "No version has been trained yet."];
  const el = h("div", {}, h("p", { class: "model-in-use" }, inUse),
    model.versions.length ? table(null, ["version", "aliases", "decision"], model.versions.map((v) => [v.version, v.aliases.join(", ") || "–", decision(v.decision)])) : null,
    runs.items[0] ? fig.el : null);  // no empty plot for a model never trained
  const after = async () => { if (runs.items[0]) await curves(fig.slot, runs.items[0], panel.metrics); };
  return { el, after, destroy: () => fig.slot.plotted && fig.slot.plotted.destroy() };
}

/** Whether this twin is the official one at its place (tagged ``official``), and a way to the one that is. */
function officialLine(official, view) {
  if (!official?.text) return null;
  const others = official.official ? [] : official.twins;
  return h("p", { class: `official-text${official.official ? " official" : " alert"}` },
    official.official ? h("span", { class: "badge official" }, "official") : null, official.official ? " " : null, official.text,
    others.length ? [" ", others.map((name, i) => [i ? ", " : "", h("a", { href: `/ui/twins/${enc(name)}/views/${enc(view)}` }, `Open ${name}`)])] : null);
}

/** What the view answers, first and in words (rendered by the engine: the same sentence the SDK and CLI show),
 * then how far to trust it: stale data, the forecasts' verified skill, the model and its gate decision. */
function summaryCard(answered) {
  if (answered.error) return h("section", { class: "card view-summary", "aria-label": "Summary" }, h("p", { class: "alert", role: "alert" }, `No summary: ${answered.error}`));
  const trust = [answered.skill?.text, answered.model?.text].filter(Boolean);
  if (!answered.summary_text && !answered.stale_text && !trust.length) return null;
  return h("section", { class: "card view-summary", "aria-label": "Summary" },
    officialLine(answered.official, answered.name),
    answered.summary_text ? h("p", { class: "summary-text" }, answered.summary_text) : null,
    answered.stale_text ? h("p", { class: "alert stale-text", role: "status" }, answered.stale_text) : null,
    trust.length ? h("p", { class: "trust-text muted" }, trust.join(" ")) : null);
}

const percent = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)} %`);
const percentCsv = (v) => (v === null || v === undefined ? "" : String(Math.round(v * 1000) / 10));

/** The question the view answers, per lead time, as the engine computed it (``outlook``): the chance of crossing
 * the threshold within each lead, the ensemble's band and spread there, and how good past forecasts were at that
 * lead; then which state of the twin the forecast started from. */
function outlookCard(answered) {
  const o = answered.outlook;
  if (!o) return null;
  const u = o.unit ? ` ${o.unit}` : "";
  const unit = o.unit ? ` (${o.unit})` : "";
  const rows = o.leads.map((r) => [
    h("td", { class: "lead", "data-lead": String(r.lead_seconds) }, r.label), when(r.valid_time),
    h("td", { class: "num chance", "data-csv": percentCsv(r.probability) }, r.reached ? percent(r.probability) : "beyond the forecast"),
    h("td", { class: "num", "data-csv": percentCsv(r.probability_at) }, percent(r.probability_at)),
    h("td", { class: "num", "data-csv": r.low ?? "" }, num(r.low)), h("td", { class: "num", "data-csv": r.high ?? "" }, num(r.high)),
    h("td", { class: "num", "data-csv": r.spread ?? "" }, num(r.spread, 3)),
    h("td", { class: "num skill-at", "data-csv": r.skill?.nse ?? "" }, r.skill ? (typeof r.skill.nse === "number" ? r.skill.nse.toFixed(2) : "–") : "not checked yet"),
    h("td", { class: "num", "data-csv": percentCsv(r.skill?.coverage) }, r.skill ? percent(r.skill.coverage) : "–"),
    h("td", { class: "num", "data-csv": r.skill?.n ?? 0 }, r.skill ? `${r.skill.n}${r.skill.members ? ` ensembles` : ""}` : "0")]);
  const band = o.band || "band";
  const f = answered.forecast;
  const made = f ? `The forecast (${f.members ? `an ensemble of ${f.members} members, ` : ""}run ${f.run_id || "–"}, issued ${when(f.issued_at)}) ${f.start ? f.start.text : "recorded no starting state"}.` : "";
  const el = h("section", { class: "card outlook", "aria-label": "Chance by lead time" },
    h("h2", { class: "panel-title" }, `Will the ${propWords(o.property)} exceed ${num(o.threshold)}${u}? Chance by lead time`),
    h("p", { class: "outlook-text" }, o.text),
    table(`Chance of ${propWords(o.property)} above ${num(o.threshold)}${u} by lead time`,
      ["lead time", "valid at (UTC)", "chance within the lead (%)", "chance at that time (%)", `${band}: low${unit}`,
        `${band}: high${unit}`, `spread, 1 std${unit}`, "past forecasts: NSE", "past: within their band (%)",
        "past forecasts checked"], rows),
    h("p", { class: "outlook-skill" }, o.skill_text),
    made ? h("p", { class: "outlook-start muted" }, made) : null);
  return el;
}

/** The report's head: what it is, of which twin at which revision, when, and how to cite it. */
function reportHead(twin, view, name, answered, printing) {
  const url = `${location.origin}/ui/twins/${enc(twin.name)}/views/${enc(name)}?revision=${twin.head_revision}`;
  const asOf = answered.as_of ? when(answered.as_of) : when(new Date().toISOString());
  const made = new Date().toISOString().slice(0, 10);
  const el = h("section", { class: "report-head card", "aria-label": "Report" },
    h("p", { class: "report-meta" }, `Report of ${twin.name} (${twin.app}), ${view.title}, at revision ${twin.head_revision}; state as of ${asOf}; `,
      h("span", { class: "report-date" }, `made ${when(new Date().toISOString())}`), "."),
    h("p", { class: "report-cite" }, `Cite as: ${twin.owner}. ${twin.name}: ${view.title} (digital twin of ${twin.app}, revision ${twin.head_revision}). twinengine, ${made}. ${url}`),
    printing ? h("p", { class: "screen-only" }, h("button", { type: "button", on: { click: () => window.print() } }, "Print or save as PDF"), " ",
      h("a", { href: `/ui/twins/${enc(twin.name)}/views/${enc(name)}` }, "Back to the view")) : null);
  return el;
}

/** The document with an ensemble's member runs folded into the ensemble's own box (``Ensemble of 16 member
 * runs``): the graph keeps three columns (used, the run, generated), so its words stay readable on paper. */
export function foldMembers(doc) {
  const informed = Object.values(doc.wasInformedBy || {}).flat();
  const members = new Set(informed.map((r) => r["prov:informant"]));
  const targets = new Set(informed.map((r) => r["prov:informed"]));
  if (members.size < 2 || targets.size !== 1) return doc;
  const [target] = targets;
  const activity = Object.fromEntries(Object.entries(doc.activity || {}).filter(([id]) => !members.has(id))
    .map(([id, attrs]) => [id, id === target ? { ...attrs, "prov:type": `twin:Ensemble of ${members.size} member runs` } : attrs]));
  const { wasInformedBy, ...rest } = doc;
  void wasInformedBy;
  return { ...rest, activity };
}

async function provenanceCard(runId, printing) {
  const prov = await api(`/api/v1/runs/${enc(runId)}/provenance`);
  const doc = printing ? foldMembers(prov) : prov;
  const folded = doc !== prov ? " Its member runs are drawn in the ensemble's box; each is listed on the run's page." : "";
  return h("section", { class: "card wide provenance", "aria-label": "Provenance of the forecast" },
    h("h2", { class: "panel-title" }, "Provenance of the forecast"),
    h("p", {}, "The forecast above was made by run ", h("a", { href: `/ui/runs/${enc(runId)}` }, runId), `.${folded}`), provFigure(doc));
}

/** The skill card when the verification could not be read: said on the page, not left out. */
function skillUnread(err) {
  const el = section("Forecast skill", h("p", { class: "alert", role: "alert" }, `The forecasts' skill could not be read: ${err.message || err}. Reload the page to try again.`));
  el.classList.add("skill", "wide");
  return { el, after: async () => {}, destroy: () => {} };
}

async function buildPanel(panel, card, twin, state, manifest, ctx, whatIfs, answered) {
  if (panel.kind === "timeseries") return timeseriesPanel(panel, twin, state, manifest, whatIfs, answered);
  if (panel.kind === "table") return tablePanel(panel, state, manifest, whatIfs);
  if (panel.kind === "form") return formPanel(panel, twin, ctx, whatIfs);
  if (panel.kind === "model") return modelPanel(panel, twin);
  if (panel.kind === "map") {
    const all = await listCollections();
    const wanted = all.filter((c) => panel.collections.includes(c.id));
    const slot = h("div");
    card.append(slot);
    const tools = await mapWithTools(slot, { collections: wanted, twins: panel.twins ? [twin] : [], initial: wanted[0]?.id || null, parameter: panel.parameter, highlight: twin.name, small: true });
    return { el: null, destroy: tools.destroy };
  }
  return { el: null };
}

export async function render(root, ctx) {
  const [ref, name] = ctx.params;
  const printing = ctx.query.has("print");
  const { twin, manifest } = await loadTwin(ref);
  const view = (manifest.views || {})[name];
  if (!view) throw Object.assign(new Error(`the app of ${twin.name} declares no view ${name}`), { status: 404 });
  const [state, answered] = await Promise.all([api(`/api/v1/twins/${enc(twin.id)}/state`),
    api(`/api/v1/twins/${enc(twin.id)}/views/${enc(name)}`).catch((err) => ({ error: err.message }))]);
  const [title, ...rest] = twinHeader(twin, manifest, `view:${name}`);
  if (printing) document.body.classList.add("print-mode");
  const reportLink = printing ? null : h("p", { class: "no-print report-link" },
    h("a", { href: `/ui/twins/${enc(twin.name)}/views/${enc(name)}?print` }, "Print-ready report"), " (the summary, plots, skill and provenance on paper or as a PDF, dated and citable)");
  // the answer first: the summary, then the chance per lead time with past skill (one screen), then the rest
  append(root, [title, summaryCard(answered), printing ? reportHead(twin, view, name, answered, true) : null,
    answered.error ? null : outlookCard(answered), ...rest,
    view.description ? h("p", {}, view.description) : null, reportLink]);
  const grid = h("div", { class: "grid" });
  root.append(grid);
  const destroyers = [];
  const whatIfs = [];  // what the panels show of a finished what-if run: (run, fork name) => Promise
  const laters = [];  // what a panel shows once all are drawn (the newest what-if beside the official forecast)
  const panels = Object.entries(view.panels).filter(([, panel]) => !printing || (panel.kind !== "form" && panel.kind !== "map"));
  const cards = panels.map(([key, panel], i) => {
    // A table panel is wide on screen (its columns never cut in a third of the grid); the report lays it out itself.
    const wide = panel.kind === "timeseries" || panel.kind === "map" || (panel.kind === "table" && !printing);
    // on paper, time series after the first sit beside it, without their description: the report stays one page
    const compact = printing && panel.kind === "timeseries" && panels.slice(0, i).some(([, p]) => p.kind === "timeseries");
    const card = h("section", { class: `card panel panel-${panel.kind}${wide ? " wide" : ""}${compact ? " compact" : ""}`, "data-panel": key, "aria-label": panel.title },
      h("h2", { class: "panel-title" }, panel.title), panel.description ? h("p", { class: "muted" }, panel.description) : null);
    grid.append(card);
    return card;
  });
  const skill = answered.skill?.property && !answered.error
    ? skillSection(twin, answered.skill.property, { lastObserved: state.reported[answered.skill.property]?.timestamp, days: answered.skill.window_days || 30, lead: answered.skill.lead_seconds ?? null })
      .catch((err) => skillUnread(err))
    : Promise.resolve(null);
  const provenance = printing && answered.forecast?.run_id ? provenanceCard(answered.forecast.run_id, printing).catch(() => null) : Promise.resolve(null);
  await Promise.all(panels.map(async ([, panel], i) => {  // the panels load side by side, each into its card
    const card = cards[i];
    try {
      const built = await buildPanel(panel, card, twin, state, manifest, ctx, whatIfs, answered);
      if (built.el) card.append(built.el);
      if (built.after) await built.after();
      if (built.destroy) destroyers.push(built.destroy);
      if (built.later) laters.push(built.later);
    } catch (err) {
      card.append(h("p", { class: "alert", role: "alert" }, err.message));
    }
  }));
  await Promise.all(laters.splice(0).map((later) => later().catch(() => null)));  // once every panel is drawn
  const trust = await skill;
  if (trust) {
    const models = await modelWords(twin);
    if (models.length) trust.el.append(h("p", { class: "model-words" }, models.join(" ")));
    grid.append(trust.el);
    await trust.after();
    destroyers.push(trust.destroy);
  }
  const drawn = await provenance;
  if (drawn) grid.append(drawn);
  return () => { document.body.classList.remove("print-mode"); destroyers.forEach((d) => d()); };
}
