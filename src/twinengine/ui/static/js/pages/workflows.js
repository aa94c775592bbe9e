// A twin's workflows: start one with a form of its parameters, its triggers (and their last firing), its runs.
import { api, enc } from "../api.js";
import { h, section, statusBadge, table, when } from "../dom.js";
import { clearErrors, collect, formErrors, openeoSchema, schemaFields, showErrors } from "../form.js";
import { loadTwin, twinHeader } from "../twinnav.js";

/** A form of the workflow's parameters that starts a run of the twin, or with ``whatIf`` a what-if: the engine
 * forks the twin and runs there, so the twin's own state is out of the run's reach. */
export function startForm(twin, definition, ctx, { only = null, onStarted = null, whatIf = false } = {}) {
  const schema = openeoSchema(definition.parameters);
  for (const [param, props] of Object.entries(definition.initial_state || {})) {  // empty: from the twin's state
    const field = schema.properties[param];
    const said = (p) => (definition.state_titles || {})[p] || p;  // a property's title, where the app gives one
    const [first, ...others] = (Array.isArray(props) ? props : [props]).map(said);  // an analysis first, then its estimates
    const which = others.length ? `its state: the newest of ${[first, ...others].join("; ")}` : "its state";
    if (field) schema.properties[param] = { ...field, default: undefined, description: `${field.description ? `${field.description}. ` : ""}Leave empty to start from the twin's ${first} now (${which}); a value given here is used instead` };
  }
  const params = h("div", { class: "stack" }, schemaFields(schema, { prefix: "parameters", only, idPrefix: `wf-${definition.name}` }));
  const form = h("form", { class: "stack", novalidate: true, "aria-label": `Run ${definition.name}${whatIf ? " as a what-if" : ""}` }, params, formErrors(),
    h("div", {}, h("button", { type: "submit" }, whatIf ? `Run ${definition.name} as a what-if` : `Run ${definition.name}`)));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const body = { workflow: definition.name, parameters: collect(params), ...(whatIf ? { what_if: {} } : {}) };
      const run = await api(`/api/v1/twins/${enc(twin.id)}/runs`, { method: "POST", body });
      ctx.toast(run.what_if_of ? `What-if run ${run.id} queued on ${run.twin_name}` : `Run ${run.id} queued`);
      if (onStarted) onStarted(run); else ctx.navigate(`/ui/runs/${enc(run.id)}`);
    } catch (err) { showErrors(form, err); }
  });
  return form;
}

/** The label of a run on a fork: a what-if of the fork's origin, never its official outcome. */
export function whatIfBadge(run) {
  return h("span", { class: "badge what-if", title: `a what-if of ${run.what_if_of}, run on its fork ${run.twin_name}` }, `what-if of ${run.what_if_of}`);
}

export function runsTable(runs) {
  return table(null, ["run", "workflow", "status", "progress", "started by", "created (UTC)", "finished (UTC)"], runs.map((r) => [
    h("a", { href: `/ui/runs/${enc(r.id)}` }, r.id), [r.workflow || r.title || "(ad hoc)", r.what_if_of ? [" ", whatIfBadge(r)] : null], statusBadge(r.status), `${Math.round(r.progress)} %`,
    r.trigger_id ? `trigger` : r.owner, when(r.created_at), when(r.finished_at)]), { empty: "No runs yet." });
}

export async function render(root, ctx) {
  const { twin, manifest } = await loadTwin(ctx.params[0]);
  const [definitions, triggers, runs] = await Promise.all([
    api(`/api/v1/apps/${enc(twin.app_name)}/versions/${enc(twin.app_version)}/workflows`),
    api(`/api/v1/twins/${enc(twin.id)}/triggers`),
    api("/api/v1/runs", { params: { twin: twin.id, limit: 100 } })]);
  const lastFiring = (trigger) => runs.items.find((r) => r.trigger_id === trigger.id);
  const canRun = ["owner", "operate", "admin"].includes(twin.access);
  root.append(...twinHeader(twin, manifest, "workflows"),
    h("div", { class: "grid" }, definitions.map((d) => section(`Workflow ${d.name}`, h("p", {}, d.description || d.summary || ""),
      canRun ? startForm(twin, d, ctx) : h("p", { class: "muted" }, "Your access lets you read runs, not start them.")))),
    section("Triggers", table(null, ["trigger", "kind", "workflow", "source", "enabled", "next firing", "last firing"], triggers.map((t) => {
      const last = lastFiring(t);
      return [t.name, t.kind, t.workflow, t.source, t.enabled ? "yes" : "no", when(t.next_fire_at),
        last ? [h("a", { href: `/ui/runs/${enc(last.id)}` }, when(last.created_at)), " ", statusBadge(last.status)] : "never"];
    }), { empty: "No triggers." })),
    section("Runs", runsTable(runs.items)));
}
