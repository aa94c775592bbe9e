// How far to trust a twin's forecasts, on the page: the verified skill per lead time in words and as a plot
// (``/verification``: the same scores the engine's skill sentence reads), its models' gate decisions, and for a
// twin that assimilates, forecasts from its analyses against the model alone and its filter's innovations.
import { api, enc } from "./api.js";
import { h, num, section, table, when } from "./dom.js";
import { figure, timeSeries } from "./plot.js";

const DAY = 86_400_000;

function leadWords(seconds) {
  const hours = seconds / 3600;
  return Number.isInteger(hours) ? `${hours}-h` : `${Math.round(seconds / 60)}-min`;
}

const pct = (v) => `${Math.round(v * 100)} %`;

/** Per lead time, the group the words speak of: the most pairs, an ensemble's (with an interval) first. */
export function byLead(leads) {
  const best = new Map();
  for (const g of leads) {
    if (!g.n) continue;
    const held = best.get(g.lead_seconds);
    const rank = (x) => (x.coverage !== null && x.coverage !== undefined ? 1e9 : 0) + x.n;
    if (!held || rank(g) > rank(held)) best.set(g.lead_seconds, g);
  }
  return [...best.values()].sort((a, b) => a.lead_seconds - b.lead_seconds);
}

/** One lead's skill as a sentence: "6-h forecasts were within the 90 % band 88 % of the time (28 checked)". */
export function leadSentence(g, unit = "") {
  const scores = [["NSE", g.nse], ["KGE", g.kge]].filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k} ${v.toFixed(2)}`);
  if (g.crps !== null && g.crps !== undefined) scores.push(`CRPS ${num(g.crps, 3)}${unit ? ` ${unit}` : ""}`);
  if (g.rmse !== null && g.rmse !== undefined && !scores.length) scores.push(`RMSE ${num(g.rmse, 3)}${unit ? ` ${unit}` : ""}`);
  scores.push(`${g.n} checked`);
  const who = [g.workflow ? `workflow ${g.workflow}` : null, g.model_version ? `model version ${g.model_version}` : null,
    g.members ? `${g.members} members` : null].filter(Boolean).join(", ");
  const head = g.coverage !== null && g.coverage !== undefined && g.interval_level
    ? `${leadWords(g.lead_seconds)} forecasts were within the ${pct(g.interval_level)} band ${pct(g.coverage)} of the time`
    : `${leadWords(g.lead_seconds)} forecasts were checked against what was observed`;
  return `${head} (${scores.join(", ")}${who ? `; ${who}` : ""})`;
}

/** The window the skill is judged over: the last ``days`` days, or the ``days`` up to the last observation
 * when the twin reported nothing in them (as the engine's skill sentence does). */
export function skillWindow(lastObserved, days = 30, now = Date.now()) {
  const last = lastObserved ? Date.parse(lastObserved) : null;
  const end = last !== null && last < now - days * DAY ? last + 60_000 : now;
  const recent = end === now;
  const words = recent ? `the last ${days} days` : `the ${days} days up to ${new Date(end).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return { since: new Date(end - days * DAY).toISOString(), until: new Date(end).toISOString(), words };
}

/** The leads worth a sentence: the one the view states first, then about one per doubling (1, 3, 6, 12, 24,
 * 48 h, ...), at most ``most``. */
export function keyLeads(groups, stated = null, most = 6) {
  const wanted = [stated, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 96 * 3600].filter((x) => x !== null);
  const picked = [];
  for (const lead of wanted) {
    const g = groups.find((x) => x.lead_seconds === lead);
    if (g && !picked.includes(g)) picked.push(g);
  }
  for (const g of groups) if (picked.length < Math.min(most, 3) && !picked.includes(g)) picked.push(g);
  return picked.slice(0, most).sort((a, b) => a.lead_seconds - b.lead_seconds);
}

/** A card with the skill of the forecasts of ``prop`` per lead time: sentences for the key leads, a plot over
 * every lead (coverage of the band, else NSE, else RMSE) and the full table. */
export async function skillSection(twin, prop, { lastObserved = null, days = 30, lead = null, title = "Forecast skill" } = {}) {
  const window = skillWindow(lastObserved, days);
  const found = await api(`/api/v1/twins/${enc(twin.id)}/verification`, { params: { property: prop, since: window.since, until: window.until } });
  const groups = byLead(found.leads);
  const unit = found.unit || "";
  const fig = figure(`Skill of ${prop} per lead time`);
  const intro = h("p", { class: "skill-intro" }, groups.length
    ? `Over ${window.words}, forecasts of ${prop} (${found.forecast_values} forecast values, ${found.observations} observations):`
    : `No verification yet: no forecast of ${prop} was matched with an observation over ${window.words}.`);
  const list = h("ul", { class: "skill-words" }, keyLeads(groups, lead).map((g) => h("li", { "data-lead": String(g.lead_seconds) }, leadSentence(g, unit))));
  const all = h("details", { class: "skill-table" }, h("summary", {}, `Every lead time (${groups.length})`),
    table(`Skill of ${prop} per lead time`, ["lead", "checked", "within band", "band", "NSE", "KGE", "CRPS", "RMSE", "bias", "workflow", "model version"],
      groups.map((g) => [leadWords(g.lead_seconds), String(g.n), g.coverage === null || g.coverage === undefined ? "–" : pct(g.coverage),
        g.interval_level ? pct(g.interval_level) : "–", num(g.nse, 3), num(g.kge, 3), num(g.crps, 3), num(g.rmse, 3), num(g.bias, 3), g.workflow || "–", g.model_version || "–"])));
  const el = section(title, intro, groups.length ? [list, fig.el, all] : null);
  el.classList.add("skill", "wide");
  let drawn = null;
  const after = async () => {
    if (!groups.length) return;
    const x = Float64Array.from(groups, (g) => g.lead_seconds / 3600);
    const has = (k) => groups.some((g) => g[k] !== null && g[k] !== undefined);
    const [key, label, scale, yLabel] = has("coverage") ? ["coverage", "within the band (%)", 100, "%"]
      : has("nse") ? ["nse", "NSE", 1, "NSE"] : ["rmse", `RMSE${unit ? ` (${unit})` : ""}`, 1, unit];
    const level = groups.find((g) => g.interval_level)?.interval_level;
    drawn = await timeSeries(fig.slot, { series: [{ label, x, y: groups.map((g) => (g[key] === null || g[key] === undefined ? null : g[key] * scale)) }],
      time: false, height: 220, title: `Skill of ${prop} per lead time (hours)`, yLabel,
      thresholds: key === "coverage" && level ? [{ label: "nominal band", value: level * 100 }] : [] });
    fig.info.textContent = `${label} against the lead time in hours; ${groups.length} lead time${groups.length === 1 ? "" : "s"} verified, ${groups.reduce((n, g) => n + g.n, 0)} forecast values checked`;
  };
  return { el, after, groups, window, destroy: () => drawn && drawn.destroy() };
}

/** The models of a twin: each champion (or newest) version and the gate's decision, in words. */
export async function modelWords(twin) {
  const models = await api(`/api/v1/twins/${enc(twin.id)}/models`).catch(() => []);
  return models.map((m) => {
    const v = m.versions.find((x) => String(x.version) === String(m.champion)) || m.versions.at(-1);
    if (!v) return `Model ${m.name} has no trained version yet.`;
    const d = v.decision;
    return `Model ${m.name} version ${v.version}${String(v.version) === String(m.champion) ? " (champion)" : ""}: `
      + (d ? `${d.accepted ? "accepted" : "refused"} by the gate, ${d.reason}.` : "no gate decision recorded.");
  });
}

/** What assimilation adds (``/verification/assimilation``): the latest analysis, the sentence comparing
 * forecasts from the analysis with those without assimilation and both lines per lead, and the innovations
 * (observation minus background) inside the spread the filter expected, with its warning in words when the
 * filter diverges. Null for a twin without cycles. */
export async function assimilationSection(twin) {
  const found = await api(`/api/v1/twins/${enc(twin.id)}/verification/assimilation`);
  const health = found.filter;
  if (!health.cycles) return null;
  const unit = found.unit ? ` (${found.unit})` : "";
  const skillFig = figure(`Skill of ${found.property} with and without assimilation`);
  const innovationFig = figure("Innovations of the assimilation cycles");
  const latest = h("p", { class: "assimilation-latest" }, `Latest analysis: ${when(health.latest_analysis)} `
    + `(cycle ${health.cycles}, revision ${health.latest_revision}).`);
  const verdict = h("p", health.diverging ? { class: "alert assimilation-health", role: "alert" } : { class: "assimilation-health" }, health.words);
  const compared = h("p", { class: "assimilation-skill" }, found.sentence);
  const leads = found.assimilated.filter((g) => found.open_loop.some((o) => o.lead_seconds === g.lead_seconds));
  const el = h("div", { class: "assimilation" }, h("h3", {}, "Assimilation"), latest, verdict, compared,
    leads.length ? skillFig.el : null, health.innovations.length ? innovationFig.el : null);
  const drawn = [];
  const after = async () => {
    if (leads.length) {
      const key = leads.every((g) => g.nse !== null && found.open_loop.every((o) => o.nse !== null)) ? "nse" : "rmse";
      const x = Float64Array.from(leads, (g) => g.lead_seconds / 3600);
      const alone = new Map(found.open_loop.map((o) => [o.lead_seconds, o]));
      drawn.push(await timeSeries(skillFig.slot, { time: false, height: 220, yLabel: key.toUpperCase(),
        title: `${key.toUpperCase()} of ${found.property} per lead time (hours)`,
        series: [{ label: "from the analysis", x, y: leads.map((g) => g[key]) },
          { label: "without assimilation", x, y: leads.map((g) => alone.get(g.lead_seconds)[key]), dash: [6, 4] }] }));
      skillFig.info.textContent = `${key.toUpperCase()} of forecasts from ${found.starts} analyses and of the model run alone, against the lead time in hours`;
    }
    const points = health.innovations;
    if (points.length) {
      const x = Float64Array.from(points, (p) => Date.parse(p.valid_time) / 1000);
      drawn.push(await timeSeries(innovationFig.slot, { height: 220, yLabel: `innovation${unit}`,
        title: "Innovations: observation minus background",
        series: [{ label: "innovation", x, y: points.map((p) => p.innovation) }],
        band: { label: "expected spread (2 std)", upper: { x, y: points.map((p) => 2 * p.expected) }, lower: { x, y: points.map((p) => -2 * p.expected) } } }));
      innovationFig.info.textContent = `The last ${points.length} cycles' innovations and the band the filter expected them in (2 std)`;
    }
  };
  return { el, after, health, destroy: () => drawn.forEach((d) => d.destroy()) };
}
