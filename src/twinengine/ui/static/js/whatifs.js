// A view's what-ifs, kept: each what-if run forks the twin, and the fork is kept for the engine's ``what_if_ttl``
// (7 days by default) and then deleted by the engine. The form panel lists the reader's what-ifs of the twin
// (what each changed, its run, when it goes) with Show and Delete; the newest finished one is shown again
// beside the official forecast when the view is opened, so a reload never loses it.
import { api, enc } from "./api.js";
import { askFirst, h, num, replace, statusBadge, when } from "./dom.js";

/** ``owner``'s what-ifs of ``twin``, newest first: forks of the twin that a what-if run made (they carry
 * ``expires_at``; a fork made by hand does not), each with the run of ``workflow`` that made it. */
export async function whatIfsOf(twin, workflow, owner) {
  const page = await api("/api/v1/twins", { params: { limit: 500 } });
  const forks = page.items.filter((t) => t.origin?.twin_id === twin.id && t.expires_at && t.owner === owner);
  const found = await Promise.all(forks.map(async (fork) => {
    const runs = await api("/api/v1/runs", { params: { twin: fork.id, limit: 20 } }).catch(() => ({ items: [] }));
    const run = runs.items.filter((r) => r.workflow === workflow).at(-1);  // the run that made the fork (listed newest first)
    return run ? { fork, run } : null;
  }));
  return found.filter(Boolean).sort((a, b) => Date.parse(b.run.created_at) - Date.parse(a.run.created_at));
}

/** What a what-if changed, in words: the form's parameters as the run took them (``given``, or the twin's own). */
export function changedWords(run, names) {
  const start = run.start?.parameters || {};
  return names.filter((p) => p in (run.parameters || {})).map((p) => {
    const v = run.parameters[p];
    const own = start[p]?.source === "state" ? " (the twin's)" : start[p]?.source === "default" ? " (default)" : "";
    return `${p} ${typeof v === "number" ? num(v) : String(v)}${own}`;
  }).join(", ") || "as the twin is";
}

/** The reader's what-ifs of the twin under its form: ``show(run, fork)`` draws one beside the official forecast;
 * ``showNewest`` shows the newest finished one (once the other panels are drawn); ``refresh`` lists them again. */
export function whatIfShelf(twin, panel, ctx, show) {
  const slot = h("div", { class: "what-ifs", "data-count": "0" });
  let shown = null;
  let listed = [];
  async function refresh() {
    listed = await whatIfsOf(twin, panel.workflow, ctx.user.name);
    const full = await Promise.all(listed.map(({ run }) => api(`/api/v1/runs/${enc(run.id)}`).catch(() => run)));
    const names = panel.parameters || [];
    slot.dataset.count = String(listed.length);
    replace(slot, h("h3", {}, "Your what-ifs"),
      h("p", { class: "muted" }, "Each what-if is kept for a while (the engine deletes it on the date shown), so it is here again when you come back; delete one you no longer need."),
      listed.length ? h("ul", { class: "what-if-list" }, listed.map(({ fork, run }, i) => h("li", { "data-fork": fork.name, "data-run": run.id },
        h("a", { href: `/ui/twins/${enc(fork.name)}` }, fork.name), shown === run.id ? [" ", h("span", { class: "badge what-if" }, "shown")] : null,
        `: ${changedWords(full[i], names)} · `, h("a", { href: `/ui/runs/${enc(run.id)}` }, `run ${run.id}`), " ", statusBadge(run.status),
        ` · made ${when(run.created_at)} · deleted by the engine on ${when(fork.expires_at)} `,
        h("span", { class: "actions" },
          run.status === "finished" && shown !== run.id ? [h("button", { type: "button", class: "secondary small", "aria-label": `Show ${fork.name}`, on: { click: () => pick(run, fork) } }, "Show"), " "] : null,
          h("a", { href: `/ui/twins/${enc(twin.name)}/compare/${enc(fork.name)}` }, "Compare"), " ",
          askFirst("Delete", { class: "danger small", "aria-label": `Delete ${fork.name}` }, "Delete this what-if and its run?", () => remove(run, fork))))))
        : h("p", { class: "muted" }, "None yet: run the form above as a what-if."));
  }
  async function pick(run, fork) {
    const now = await api(`/api/v1/runs/${enc(run.id)}`);
    shown = run.id;
    await show(now, fork.name);
    await refresh();
  }
  async function remove(run, fork) {
    try {
      await api(`/api/v1/twins/${enc(fork.id)}`, { method: "DELETE" });
      ctx.toast(`Deleted the what-if ${fork.name}`);
    } catch (error) { ctx.toast(error.message); return; }
    if (shown === run.id) { ctx.navigate(location.pathname + location.search, { replace: true }); return; }  // its line goes with it
    await refresh();
  }
  async function showNewest() {
    await refresh();
    const newest = listed.find(({ run }) => run.status === "finished");
    if (newest) await pick(newest.run, newest.fork);
  }
  return { el: slot, refresh, showNewest, shownAs: (id) => { shown = id; return refresh(); } };
}
