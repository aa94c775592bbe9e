// Sign in with an institution (one button per OpenID provider the engine trusts) or with a token: either way
// the browser ends with a session cookie the page cannot read; a token is exchanged for it and dropped.
import { api, enc } from "../api.js";
import { field, h } from "../dom.js";

export async function render(root, ctx) {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", spellcheck: "false" });
  const error = h("p", { class: "alert", role: "alert" });
  const form = h("form", { class: "stack card", novalidate: true },
    field("token", "Token", input, "A token from `twin token create` (or an OIDC access token as oidc/<provider>/<token>). "
      + "It is exchanged for a session and not kept in this browser."),
    error, h("div", {}, h("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const session = await api("/api/v1/session", { method: "POST", body: { token: input.value.trim() } });
      input.value = "";
      ctx.signedIn(session);
      const next = ctx.query.get("next");
      ctx.navigate(next && next.startsWith("/ui/") && !next.startsWith("/ui/signin") ? next : "/ui/", { replace: true });
    } catch (e) {
      error.textContent = e.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  });
  root.append(h("h1", {}, "Sign in to twinengine"));
  const failed = ctx.query.get("error");  // a sign-in at a provider that went wrong comes back with the reason
  if (failed) root.append(h("p", { class: "alert signin-failed", role: "alert" }, failed));
  let providers = [];
  try { providers = await api("/api/v1/auth/providers"); } catch { /* token sign-in still works */ }
  if (providers.length) {
    const next = ctx.query.get("next") || "/ui/";
    root.append(h("section", { class: "signin-providers card", "aria-label": "Sign in with your institution" },
      h("h2", {}, "With your institution"),
      ...providers.map((p) => h("a", { class: "button", href: `${p.login_url}?next=${enc(next)}` },
        `Sign in with ${p.title}`))),
      h("h2", {}, "With a token"));
  }
  root.append(form);
}
