// A twin's models: versions and aliases with the gate's decisions, training curves (live while a run
// trains), the drift checks of the retraining policy, and the trail from trigger to decision.
import { api, enc, events } from "../api.js";
import { h, replace, section, show, statusBadge, table, when } from "../dom.js";
import { figure, timeSeries } from "../plot.js";
import { loadTwin, twinHeader } from "../twinnav.js";

export function decision(d) {
  if (!d) return "–";
  return [h("span", { class: d.accepted ? "ok" : "bad" }, d.accepted ? "accepted" : "refused"), `: ${d.reason}`];
}

export async function curves(slot, run, metrics = []) {
  const all = Object.keys(run.history[0] || {}).filter((k) => k !== "epoch" && k !== "progress");
  const losses = all.filter((k) => k.includes("loss"));
  const keys = metrics.length ? metrics : losses.length ? losses : all;
  const x = Float64Array.from(run.history.map((p) => p.epoch));
  if (slot.plotted) slot.plotted.destroy();
  slot.plotted = null;
  replace(slot);
  if (!run.history.length) { slot.append(h("p", { class: "muted" }, "No epochs yet.")); return null; }
  slot.plotted = await timeSeries(slot, { time: false, title: `training run ${run.id} (${run.status})`, height: 240,
    series: keys.filter((k) => k in run.history[0]).map((k) => ({ label: k, x, y: run.history.map((p) => p[k] ?? null) })) });
  return slot.plotted;
}

// A queued or running run can be stopped: a queued one at once, a running one at the end of its epoch.
function stopButton(base, run) {
  if (run.status !== "queued" && run.status !== "running") return "";
  const button = h("button", { type: "button", class: "stop", "aria-label": `Stop training run ${run.id}` }, "Stop");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const stopped = await api(`${base}/training-runs/${enc(run.id)}/stop`, { method: "POST" });
      button.replaceWith(h("span", { class: "muted" }, stopped.status));
    } catch (error) {
      button.disabled = false;
      button.title = String(error.message || error);
    }
  });
  return button;
}

export async function render(root, ctx) {
  const { twin, manifest } = await loadTwin(ctx.params[0]);
  const base = `/api/v1/twins/${enc(twin.id)}`;
  const models = await api(`${base}/models`);
  const closers = [];
  const plots = [];
  const parts = [];
  for (const model of models) {
    const [runs, trail, policy] = await Promise.all([api(`${base}/training-runs`, { params: { model: model.name, limit: 20 } }),
      api(`${base}/models/${enc(model.name)}/trail`), api(`${base}/models/${enc(model.name)}/policy`).catch(() => null)]);
    const fig = figure(`Training curves of ${model.name}`);
    const latest = runs.items[0];
    if (latest) {
      plots.push(await curves(fig.slot, latest));
      fig.info.textContent = `${latest.history.length} epochs of run ${latest.id}; ${Object.entries(latest.metrics).map(([k, v]) => `${k} ${show(v)}`).join(", ")}`;
      if (latest.status === "queued" || latest.status === "running") {
        const live = { ...latest, history: [...latest.history] };
        closers.push(events(`${base}/training-runs/${enc(latest.id)}/events`, {
          metrics: (point) => { live.history.push(point); live.status = "running"; curves(fig.slot, live); fig.info.textContent = `live: epoch ${point.epoch}, ${Math.round(point.progress)} %`; },
          end: (end) => { fig.info.textContent = `run ${latest.id} ${end.status}${end.model_version ? ` → version ${end.model_version}` : ""}`; },
        }));
      }
    }
    const check = policy && policy.last_check;
    parts.push(h("section", { class: "card wide", "aria-label": `Model ${model.name}` }, h("h2", { class: "panel-title" }, `Model ${model.name}`),
      h("p", {}, model.description || "", ` Registered as ${model.registered_name}; champion: `, h("strong", { class: "champion" }, model.champion ? `version ${model.champion}` : "none")),
      table("Versions", ["version", "aliases", "training run", "gate decision", "metrics"], model.versions.map((v) => [v.version, v.aliases.join(", ") || "–", v.run_id || "–",
        decision(v.decision), v.decision ? Object.entries(v.decision.metrics).map(([k, m]) => `${k} ${show(m)}`).join(", ") : "–"])),
      h("h3", {}, "Training curves"), fig.el,
      table("Training runs", ["run", "status", "progress", "trigger", "version", "created (UTC)", ""], runs.items.map((r) => [r.id, statusBadge(r.status), `${Math.round(r.progress)} %`,
        r.trigger.kind || "", r.model_version || "–", when(r.created_at), stopButton(base, r)])),
      h("h3", {}, "Drift"),
      policy ? h("p", { class: "drift" }, policy.drift ? `Policy: ${policy.drift.method} test on ${policy.stream || "the first stream"}, threshold ${policy.drift.threshold}, window ${policy.window} records. ` : "No drift test in the policy. ",
        check ? (check.error ? `Last check failed: ${check.error}` : [`Last check: `, h("strong", {}, check.drifted ? "drifted" : "no drift"),
          ` (${check.method}; scores ${Object.entries(check.scores || {}).map(([k, s]) => `${k} ${show(s)}`).join(", ")}; records ${check.start}–${check.end})`]) : "Not checked yet.",
        policy.last_triggered_at ? ` Last retraining triggered ${when(policy.last_triggered_at)}.` : "") : h("p", { class: "muted" }, "No retraining policy."),
      table("Retraining trail (trigger → data → run → version → decision)", ["when (UTC)", "trigger", "data", "run", "version", "decision"], trail.map((t) => [when(t.created_at),
        Object.entries(t.trigger).map(([k, v]) => `${k}: ${show(v)}`).join(", "), Object.entries(t.inputs).map(([k, v]) => `${k} ${show(v)}`).join(", "),
        [t.run, " ", statusBadge(t.status)], t.version || "–", decision(t.decision)]), { empty: "No training yet." })));
  }
  root.append(...twinHeader(twin, manifest, "models"), ...(models.length ? parts : [h("p", { class: "muted" }, "This twin's app declares no models.")]));
  return () => { closers.forEach((c) => c()); plots.forEach((p) => p && p.destroy()); };
}
