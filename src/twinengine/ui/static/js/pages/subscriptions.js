// Subscriptions: your subscriptions to twins' conditions with their last deliveries, a form that builds the
// condition from the twin's declared properties, and delete. A webhook's signing secret is shown once.
import { api, enc } from "../api.js";
import { askFirst, field, h, replace, section, statusBadge, table, when } from "../dom.js";
import { clearErrors, formErrors, showErrors } from "../form.js";
import { loadTwin, stateNames } from "../twinnav.js";

/** The properties a condition can fire on (the engine refuses the others): those the twin reports, never a
 * ``desired_only`` setting such as an alert threshold nor the app's ``internal`` bookkeeping; numbers and integers for a threshold; keyed ones through
 * the CLI or the API (``name[key]``). */
export function watchable(manifest, numeric = false) {
  return stateNames(manifest, { numeric, reported: true });
}

const KINDS = [["changes", "changes value"], [">", "rises above"], ["<", "falls below"], ["stale", "gets no new value for"]];

function condition(kind, prop, threshold, duration) {
  if (kind === "changes") return `${prop} changes`;
  if (kind === "stale") return `${prop} stale ${duration}`;
  return `${prop} ${kind} ${threshold}`;
}

async function deliveries(id, slot) {
  const sub = await api(`/api/v1/subscriptions/${enc(id)}`);
  replace(slot, table(`Latest deliveries of ${sub.twin_name}: ${sub.when}`, ["event", "status", "tries", "queued (UTC)", "sent (UTC)", "what", "last error"],
    sub.deliveries.map((d) => [d.event, statusBadge(d.status), String(d.attempts), when(d.created_at), d.sent_at ? when(d.sent_at) : "–", d.summary, d.last_error || "–"]),
    { empty: "No messages yet.", download: false }));
}

async function listing(ctx, slot, detail) {
  const page = await api("/api/v1/subscriptions");
  replace(slot, table(null, ["twin", "condition", "channel", "to", "last delivery", ""], page.items.map((s) => {
    const last = s.deliveries[0];
    return [h("a", { href: `/ui/twins/${enc(s.twin_name)}` }, s.twin_name), s.when, s.channel, s.target,
      last ? [statusBadge(last.status), ` ${last.event} ${when(last.created_at)}`] : "none yet",
      h("span", {}, h("button", { type: "button", on: { click: () => deliveries(s.id, detail).catch((error) => ctx.toast(error.message)) } }, "Deliveries"), " ",
        askFirst("Delete", { "aria-label": `Delete the subscription to ${s.twin_name}: ${s.when}` },
          "Delete it? No more notices are sent for it.", async () => {
            try {
              await api(`/api/v1/subscriptions/${enc(s.id)}`, { method: "DELETE" });
              ctx.toast(`Deleted the subscription to ${s.twin_name}`);
              replace(detail);
              await listing(ctx, slot, detail);
            } catch (error) { ctx.toast(error.message); }
          }))];
  }), { empty: "No subscriptions yet: subscribe below.", download: false }));
}

async function subscribeForm(ctx, refresh) {
  const twins = (await api("/api/v1/twins", { params: { limit: 500 } })).items;
  const twin = h("select", { dataset: { loc: "twin" } }, twins.map((t) => h("option", { value: t.name, selected: t.name === ctx.query.get("twin") }, t.name)));
  const kind = h("select", {}, KINDS.map(([v, text]) => h("option", { value: v }, text)));
  const prop = h("select", { dataset: { loc: "when" } });
  const threshold = h("input", { type: "number", step: "any", value: "0.5" });
  const duration = h("input", { type: "text", value: "30m" });
  const channel = h("select", {}, h("option", { value: "email" }, "e-mail"), h("option", { value: "webhook" }, "webhook (signed POST)"));
  const target = h("input", { type: "text", required: true, autocomplete: "email", dataset: { loc: "email" } });
  const secret = h("div", { role: "status" });
  let manifest = { state: {} };

  function fit() {
    const numeric = kind.value === ">" || kind.value === "<";
    const names = watchable(manifest, numeric);
    const was = prop.value;
    replace(prop, names.map((n) => h("option", { value: n, selected: n === was }, n)));
    threshold.closest(".field").hidden = !numeric;
    duration.closest(".field").hidden = kind.value !== "stale";
    target.dataset.loc = channel.value;
  }
  async function pick() {
    if (twin.value) ({ manifest } = await loadTwin(twin.value));
    fit();
  }
  const form = h("form", { novalidate: true }, formErrors(),
    field("sub-twin", "Twin", twin), field("sub-kind", "Tell me when", kind), field("sub-prop", "Property", prop, "Those the twin reports (settings users give, such as an alert threshold, never change by themselves); a keyed one (name[key]) through the CLI or the API."),
    field("sub-threshold", "Threshold", threshold), field("sub-duration", "For", duration, "e.g. 15m, 2h, 1d"),
    field("sub-channel", "By", channel), field("sub-target", "Address or URL", target),
    h("button", { type: "submit" }, "Subscribe"), secret);
  twin.addEventListener("change", pick);
  kind.addEventListener("change", fit);
  channel.addEventListener("change", fit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(secret);
    const body = { twin: twin.value, when: condition(kind.value, prop.value, threshold.value, duration.value), [channel.value]: target.value.trim() };
    try {
      const made = await api("/api/v1/subscriptions", { method: "POST", body });
      ctx.toast(`Subscribed: ${made.twin_name} ${made.when}`);
      if (made.secret) replace(secret, h("p", { class: "alert" }, "Signing secret, shown this once (keep it to check each message's Twin-Signature): ", h("code", {}, made.secret)));
      await refresh();
    } catch (error) {
      showErrors(form, error);
    }
  });
  await pick();
  return section("Subscribe", twins.length ? form : h("p", { class: "muted" }, "No twins to subscribe to."));
}

export async function render(root, ctx) {
  const slot = h("div");
  const detail = h("div");
  await listing(ctx, slot, detail);
  root.append(h("h1", {}, "Subscriptions"),
    h("p", { class: "muted" }, "Be told by e-mail or a signed webhook when a twin's condition changes (docs/subscriptions.md)."),
    section("Your subscriptions", slot, detail), await subscribeForm(ctx, () => listing(ctx, slot, detail)));
}
