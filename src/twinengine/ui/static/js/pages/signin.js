// Sign in with a token: it is exchanged for a session cookie the page cannot read, and dropped.
import { api } from "../api.js";
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
  root.append(h("h1", {}, "Sign in to twinengine"), form);
}
