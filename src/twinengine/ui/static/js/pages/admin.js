// Admin: identities, tokens (create, shown once; revoke), the audit log with filters.
import { api, enc } from "../api.js";
import { askFirst, field, h, replace, section, table, when } from "../dom.js";
import { clearErrors, formErrors, showErrors } from "../form.js";

export async function render(root, ctx) {
  const identitiesSlot = h("div");
  const tokensSlot = h("div");
  const auditSlot = h("div");
  const issued = h("div", { "aria-live": "polite" });

  async function refresh() {
    const [identities, tokens] = await Promise.all([api("/api/v1/identities"), api("/api/v1/tokens")]);
    replace(identitiesSlot, table(null, ["identity", "roles", "valid tokens", "created (UTC)", "by", "disabled"], identities.map((i) => [i.name, i.roles.join(", ") || "–", String(i.valid_tokens),
      when(i.created_at), i.created_by || "–", i.disabled ? "yes" : "no"])));
    replace(tokensSlot, table(null, ["token id", "identity", "role", "issued (UTC)", "expires (UTC)", "note", "state"], tokens.slice().reverse().map((t) => [t.jti.slice(0, 12), t.identity, t.role,
      when(t.issued_at), when(t.expires_at), t.note || "", t.revoked_at ? `revoked ${when(t.revoked_at)}` : askFirst("Revoke", { "aria-label": `Revoke token ${t.jti.slice(0, 12)} of ${t.identity}` },
        "Revoke it? Whoever holds it is refused from now on.", async () => {
          try {
            await api(`/api/v1/tokens/${enc(t.jti)}`, { method: "DELETE" });
            ctx.toast(`Token ${t.jti.slice(0, 12)} revoked`);
          } catch (error) { ctx.toast(`Token ${t.jti.slice(0, 12)} not revoked: ${error.message}`); }
          refresh();
        })])));
  }

  const name = h("input", { type: "text", autocomplete: "off" });
  name.dataset.loc = "name";
  const role = h("select", {}, ["user", "developer", "provider", "admin"].map((r) => h("option", { value: r }, r)));
  role.dataset.loc = "role";
  const expires = h("input", { type: "text", placeholder: "30d, 12h, never" });
  expires.dataset.loc = "expires_in";
  const create = h("form", { class: "row", novalidate: true, "aria-label": "Create a token" }, field("tok-name", "Identity", name), field("tok-role", "Role", role),
    field("tok-expires", "Expires in", expires), h("div", {}, h("button", { type: "submit" }, "Create a token")), formErrors());
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(create);
    try {
      const token = await api("/api/v1/tokens", { method: "POST", body: { name: name.value.trim(), role: role.value, expires_in: expires.value.trim() || null } });
      replace(issued, h("p", {}, `Token for ${token.name} (${token.role}), shown once: copy it now.`), h("output", { class: "token-once" }, token.token));
      name.value = "";
      await refresh();
    } catch (err) { showErrors(create, err); }
  });

  const actor = h("input", { type: "text" });
  const action = h("input", { type: "text", placeholder: "e.g. twins-state" });
  const outcome = h("select", {}, ["", "success", "denied", "rejected", "failed"].map((o) => h("option", { value: o }, o || "any")));
  const since = h("input", { type: "datetime-local", step: "1" });
  const until = h("input", { type: "datetime-local", step: "1" });
  const auditForm = h("form", { class: "row", "aria-label": "Filter the audit log" }, field("au-actor", "Actor", actor), field("au-action", "Action starts with", action),
    field("au-outcome", "Outcome", outcome), field("au-since", "Since (UTC)", since), field("au-until", "Until (UTC)", until), h("div", {}, h("button", { type: "submit" }, "Filter")));
  async function audit() {
    const iso = (el) => (el.value ? `${el.value.length === 16 ? `${el.value}:00` : el.value}Z` : null);
    const page = await api("/api/v1/audit", { params: { actor: actor.value.trim(), action: action.value.trim(), outcome: outcome.value, since: iso(since), until: iso(until), limit: 200 } });
    const filters = [actor.value.trim() && `by ${actor.value.trim()}`, action.value.trim() && `action ${action.value.trim()}…`,
      outcome.value, iso(since) && `since ${iso(since)}`, iso(until) && `until ${iso(until)}`].filter(Boolean);
    replace(auditSlot, h("p", { class: "muted", role: "status" }, `${page.total} event(s)${filters.length ? ` (${filters.join(", ")})` : ""}; newest first, at most 200 shown`),
      table(null, ["at (UTC)", "actor", "role", "action", "target", "outcome", "status"], page.items.map((ev) => [when(ev.at), ev.actor, ev.role || "", ev.action, ev.target, ev.outcome, String(ev.status ?? "")])));
  }
  auditForm.addEventListener("submit", (e) => { e.preventDefault(); audit(); });

  root.append(h("h1", {}, "Admin"), section("Identities", identitiesSlot), section("Tokens", create, issued, tokensSlot), section("Audit log", auditForm, auditSlot));
  await Promise.all([refresh(), audit()]);
}
