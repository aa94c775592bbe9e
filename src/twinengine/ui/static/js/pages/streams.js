// A twin's streams: a live tail of each (Server-Sent Events), functions on arrival with lag, calls and dead
// letters (a paused one said at the top, with why and how to resume it), and retraining buffers.
import { api, enc, events } from "../api.js";
import { h, replace, section, show, table, when } from "../dom.js";
import { pausedWords } from "../paused.js";
import { loadTwin, twinHeader } from "../twinnav.js";

const TAIL = 50;

// An array field (thousands of samples per record) shows as its length and range, never in full.
function samples(values) {
  if (!Array.isArray(values)) return show(values);
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  const range = finite.length ? ` (${show(Math.min(...finite))} … ${show(Math.max(...finite))})` : "";
  return `${values.length} samples${range}`;
}

function tail(twin, stream, closers) {
  const fields = ["_offset", ...Object.keys(stream.fields)];
  const arrays = new Set(Object.keys(stream.fields).filter((f) => stream.fields[f].type === "array"));
  const body = h("tbody", {});
  const count = h("span", { class: "tail-count", "aria-live": "polite" });
  const flagged = h("p", { class: "muted tail-flags" });
  const tally = { suspect: 0, bad: 0 };
  let shown = 0;
  const add = (record, fresh) => {
    const flag = record._quality && record._quality !== "good" ? record._quality : null;
    const tr = h("tr", { class: `${fresh ? "flash" : ""}${flag ? ` flag-${flag}` : ""}`, "data-offset": String(record._offset), "data-quality": record._quality || "" },
      fields.map((f) => h("td", {}, f === stream.time_field ? when(record[f]) : arrays.has(f) ? samples(record[f]) : show(record[f]))),
      h("td", { class: `quality${flag ? ` flag-${flag}` : ""}` }, record._quality ? `${record._quality}${record._checks ? ` (${[record._checks].flat().join(", ")})` : ""}` : "–"));
    body.prepend(tr);
    tally.bad = body.querySelectorAll("tr.flag-bad").length;
    tally.suspect = body.querySelectorAll("tr.flag-suspect").length;
    flagged.textContent = tally.bad || tally.suspect ? `Flagged in the records shown: ${tally.bad} bad, ${tally.suspect} suspect (rows marked; the quality column names the checks).` : "";
    while (body.children.length > TAIL) body.lastChild.remove();
    shown += fresh ? 1 : 0;
    count.textContent = `${stream.end_offset + shown} records; newest first${shown ? `, ${shown} arrived while watching` : ""}`;
  };
  api(`/api/v1/twins/${enc(twin.id)}/streams/${enc(stream.name)}/records`, { params: { last: arrays.size ? 5 : TAIL } }).then((page) => {
    for (const r of page.items) add(r, false);
    count.textContent = `${page.end_offset} records; newest first`;
    closers.push(events(`/api/v1/twins/${enc(twin.id)}/streams/${enc(stream.name)}/events?start=${page.end_offset}`, { record: (r) => add(r, true) }));
  });
  // Wide: a record's every field in sight beside its quality on a laptop; a narrower screen scrolls the table in its box.
  return h("section", { class: "card wide", "aria-label": `Live tail of ${stream.name}` }, h("h2", { class: "panel-title" }, `Live tail of ${stream.name}`),
    h("p", { class: "muted" }, stream.description || "", stream.mqtt_topic ? ` · MQTT topic ${stream.mqtt_topic}` : ""), count,
    h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": `Records of ${stream.name}` },
      h("table", { class: "tail", "data-stream": stream.name }, h("thead", {}, h("tr", {}, fields.map((f) => h("th", { scope: "col" }, f === "_offset" ? "offset" : f)),
        h("th", { scope: "col" }, "quality"))), body)), flagged);
}

// Who may resume a function: its owner, an admin, or someone granted operate (the API says so too).
const RESUMERS = new Set(["owner", "operate", "admin"]);

// A paused function, said where it is seen first: why, since when, the command that resumes it, and a
// button for whoever may resume it.
function pausedNotice(twin, f, refresh, ctx) {
  const said = pausedWords(twin.name, f);
  const button = RESUMERS.has(twin.access) ? h("button", { type: "button", class: "secondary", "aria-label": `Resume function ${f.name}` }, "Resume") : "";
  if (button) button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const done = await api(`/api/v1/twins/${enc(twin.id)}/functions/${enc(f.name)}/resume`, { method: "POST" });
      ctx.toast(`${f.name} resumed at offset ${done.offset}; ${done.replayed} dead letters handled again`);
      await refresh();
    } catch (error) {
      button.disabled = false;
      ctx.toast(String(error.message || error));
    }
  });
  return h("div", { class: "alert fn-paused", "data-function": f.name },
    h("p", {}, h("strong", {}, said.title), ` ${said.since}: `, h("span", { class: "fn-paused-reason" }, said.reason)),
    h("p", {}, "Fix the cause (the app, or what the function lacks), then resume it: the records of the run that paused it are handled again. ",
      h("code", { class: "fn-resume-command" }, said.command), button ? [" ", button] : ""));
}

export async function render(root, ctx) {
  const { twin, manifest } = await loadTwin(ctx.params[0]);
  const base = `/api/v1/twins/${enc(twin.id)}`;
  const streams = await api(`${base}/streams`);
  const closers = [];
  const fnSlot = h("div");
  const deadSlot = h("div");
  const bufSlot = h("div");
  async function refresh() {
    const [fns, dead, buffers, fresh] = await Promise.all([api(`${base}/functions`), api(`${base}/functions/dead-letters`, { params: { limit: 50 } }),
      api(`${base}/buffers`), api(`${base}/streams`)]);
    const held = fns.find((f) => f.held && !f.paused);  // one quota holds all of the owner's functions: said once
    replace(fnSlot, fns.filter((f) => f.paused).map((f) => pausedNotice(twin, f, refresh, ctx)),
      held ? h("div", { class: "alert fn-held", role: "alert" }, h("p", {}, h("strong", {}, "Functions waiting: "), held.held)) : null,
      table("Functions on arrival", ["function", "stream", "trigger", "status", "handled up to", "lag", "calls", "dead letters"], fns.map((f) => [
        f.name, f.stream, f.trigger.kind, h("span", { class: `fn-status${f.paused || f.held ? " status-alert" : ""}` }, f.paused ? "paused" : f.held ? "waiting (quota)" : "running"), String(f.offset),
        h("span", { class: "fn-lag" }, String(f.lag)), h("span", { class: "fn-calls" }, String(f.calls)), String(f.dead_letters)]), { empty: "No functions." }),
      table("Streams", ["stream", "records", "lag", "MQTT topic"], fresh.map((s) => [s.name, String(s.end_offset), String(s.lag), s.mqtt_topic || "–"])));
    replace(deadSlot, table("Dead letters", ["function", "offsets", "attempts", "error", "at (UTC)"], dead.map((d) => [d.function, `${d.first_offset}–${d.last_offset}`, String(d.attempts), d.error, when(d.created_at)]), { empty: "No dead letters." }));
    replace(bufSlot, table("Retraining buffers", ["buffer", "stream", "policy", "filling", "sealed fills"], buffers.map((b) => [b.name, b.stream,
      b.policy === "count" ? `every ${b.records} records` : b.policy === "time" ? `every ${b.seconds} s` : b.policy, `${b.filled} records`,
      b.fills.map((f) => `#${f.id} ${f.start_offset}–${f.end_offset} ${f.status}`).join("; ") || "none"]), { empty: "No buffers." }));
  }
  root.append(...twinHeader(twin, manifest, "streams"), h("div", { class: "grid" },
    h("section", { class: "card wide", "aria-label": "Functions" }, h("h2", { class: "panel-title" }, "Functions and streams"), fnSlot, deadSlot),
    streams.map((s) => tail(twin, s, closers)), section("Buffers", bufSlot)));
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  return () => { clearInterval(timer); closers.forEach((c) => c()); };
}
