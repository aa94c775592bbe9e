// The participant register of the data space page, for admins (dataspace.participant.manage): the participants
// this engine knows, with the organisation and groups its offers' policies are matched against and the callback
// address its proposals go to; recording one (or changing it) and forgetting one, after a second click.
import { api, ApiError, enc } from "../api.js";
import { askFirst, field, h, replace, section, table, when } from "../dom.js";
import { clearErrors, formErrors, showErrors } from "../form.js";

const P = "/api/v1/dataspace/participants";

const EMPTY = "No participants yet: an entry tells this engine another participant's organisation and groups, "
  + "which your offers' policies are matched against, and its callback address, where your proposals to it go.";

/** Who may see and change the register: the engine lets admins only (as the Admin link of the navigation). */
export function mayManageParticipants(user) {
  return Boolean(user && user.role === "admin");
}

/** "a,  b,,c " → ["a", "b", "c"] */
export function splitList(text) {
  return String(text || "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** What the data space's shared identity provider said of a participant, and until when it counts. */
export function vouchedWords(said) {
  if (!said) return "–";
  const what = [said.organisation, (said.groups || []).join(", ")].filter(Boolean).join("; ") || "nothing";
  return `${what} (${said.current ? "until" : "expired"} ${when(said.good_until)}, by ${said.issuer})`;
}

function callbackCell(p) {
  if (!p.registered) return h("td", { "data-csv": "" }, "–");
  if (p.callback) {
    return h("td", { "data-csv": p.callback }, h("code", {}, p.callback), h("span", { class: "muted" }, " (recorded here)"));
  }
  const words = "none recorded: proposals go to the address it gave in its own requests, else its protocol address + /callback";
  return h("td", { "data-csv": "", class: "muted" }, words);
}

function participantCell(p) {
  return h("td", { "data-csv": p.did, "data-did": p.did }, p.title ? [p.title, h("br")] : null, h("code", {}, p.did),
    p.registered ? null : h("span", { class: "muted" }, " (not in the register: only vouched for)"));
}

/** Change (into the form) and Forget, which asks first (``askFirst``); Record for one only vouched for. */
function forgetButtons(ctx, p, refresh, onEdit) {
  if (!p.registered) {
    return h("div", { class: "ds-steps" },
      h("button", { type: "button", class: "secondary small", "aria-label": `Record ${p.did}`, on: { click: () => onEdit(p) } }, "Record"));
  }
  return h("div", { class: "ds-steps" },
    h("button", { type: "button", class: "secondary small", "aria-label": `Change ${p.did}`, on: { click: () => onEdit(p) } }, "Change"), " ",
    askFirst("Forget", { class: "danger small", "aria-label": `Forget ${p.did}` },
      "Forget it? Policies asking for its organisation or groups no longer hold for it.", async () => {
        try {
          await api(`${P}/${enc(p.did)}`, { method: "DELETE" });
          ctx.toast(`Forgot ${p.did}`);
        } catch (error) { ctx.toast(error.message); }
        await refresh();
      }));
}

/** The section "Participants this engine knows" (null for someone who may not manage them); ``changed`` is
 * told the rows each time they are read again (what records or forgets one shows elsewhere on the page at once). */
export async function participantsSection(ctx, changed = null) {
  if (!mayManageParticipants(ctx.user)) return null;
  const list = h("div");
  const known = new Map();
  const did = h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: true, dataset: { loc: "did" } });
  const title = h("input", { type: "text", autocomplete: "off", dataset: { loc: "title" } });
  const organisation = h("input", { type: "text", autocomplete: "off", dataset: { loc: "organisation" } });
  const groups = h("input", { type: "text", autocomplete: "off", spellcheck: "false", dataset: { loc: "groups" } });
  const callback = h("input", { type: "url", autocomplete: "off", dataset: { loc: "callback" } });
  const form = h("form", { novalidate: true, class: "ds-participant", "aria-label": "Record a participant" },
    h("p", { class: "muted" }, "Record a participant, or change one: the same id replaces what was recorded for it."),
    formErrors(),
    h("div", { class: "row" },
      field("ds-participant-did", "Participant id (required)", did, "its did:web, e.g. did:web:twins.hydro.example"),
      field("ds-participant-title", "Name", title, "optional, for people"),
      field("ds-participant-organisation", "Organisation", organisation, "optional, as your offers' policies name it")),
    h("div", { class: "row" },
      field("ds-participant-groups", "Groups", groups, "optional, separated by commas"),
      field("ds-participant-callback", "Callback address", callback, "optional: where your proposals to it go, on its did:web's host"),
      h("button", { type: "submit" }, "Record")));

  async function refresh() {
    let rows;
    try {
      rows = await api(P);
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) { box.hidden = true; return; }
      replace(list, h("p", { class: "alert" }, error.message));
      return;
    }
    known.clear();
    for (const p of rows) known.set(p.did, p);
    if (changed) changed(rows);
    replace(list, table(null, ["participant", "organisation", "groups", "regions", "callback", "vouched for", "recorded", ""],
      rows.map((p) => [participantCell(p), p.organisation || "–", (p.groups || []).join(", ") || "–",
        (p.spatial || []).join(", ") || "–", callbackCell(p), vouchedWords(p.vouched),
        p.registered ? `by ${p.added_by || "–"} ${when(p.created_at)}` : "–",
        h("td", { "data-csv": "" }, forgetButtons(ctx, p, refresh, edit))]),
      { empty: EMPTY }));
  }

  function edit(p) {
    clearErrors(form);
    did.value = p.did;
    title.value = p.title || "";
    organisation.value = p.organisation || "";
    groups.value = (p.groups || []).join(", ");
    callback.value = p.callback || "";
    did.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const id = did.value.trim();
    if (!id) {
      showErrors(form, { message: "Say which participant.", details: [{ loc: "did", msg: "required: its did:web" }] });
      return;
    }
    // regions are recorded with the CLI (--spatial); changing the rest here keeps them
    const body = { did: id, title: title.value.trim() || null, organisation: organisation.value.trim() || null,
      groups: splitList(groups.value), spatial: (known.get(id) && known.get(id).spatial) || [],
      callback: callback.value.trim() || null };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const row = await api(P, { method: "PUT", body });
      ctx.toast(`Recorded ${row.did}`);
      form.reset();
      await refresh();
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });

  const box = section("Participants this engine knows", list, form);
  await refresh();
  return box;
}
