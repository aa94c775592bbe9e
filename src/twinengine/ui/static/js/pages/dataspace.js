// Data space: the offers you made with their terms in words, the agreements under them and the ones you hold
// with other participants (revoke what you provide), the transfers with their checksums, and another
// participant's catalog, where you negotiate for an offer and follow the negotiation and the transfer until done;
// and, for an offer of yours, a proposal to a participant: the provider starts the negotiation and follows it
// (the participants one dealt with suggested, and for admins the register's); terminating asks first;
// for admins, the participants this engine knows (./dataspace_participants.js).
// Everything comes from the management API (/api/v1/dataspace), which lists only what the caller may see.
import { api, ApiError, enc } from "../api.js";
import { askFirst, field, h, replace, section, statusBadge, table, when } from "../dom.js";
import { clearErrors, formErrors, showErrors } from "../form.js";
import { mayManageParticipants, participantsSection } from "./dataspace_participants.js";

const P = "/api/v1/dataspace";
const PREFIXES = ["http://www.w3.org/ns/odrl/2/", "odrl:", "urn:twinengine:odrl:"];
const POLL_MS = 1000;
const POLL_LIMIT_MS = 180_000;

// -- policies in words ---------------------------------------------------------------------------------------------

// a stream offer's window in words: " of station RR-01 flagged good", " from 2026-03-01T06:00:00Z until ...", " of the last 6 hours",
// " (fields time, level)"
// "RR-01, RR-02 and RR-03"; past twelve, the first ones and how many more (as the catalog's words).
function listed(values, most = 12) {
  if (values.length > most) return `${values.slice(0, most).join(", ")} and ${values.length - most} more`;
  return values.length === 1 ? values[0] : `${values.slice(0, -1).join(", ")} and ${values[values.length - 1]}`;
}

export function windowWords(window) {
  if (!window) return "";
  const which = (window.key != null ? ` of ${window.key_field || "source"} ${window.key}`
    : window.keys && window.keys.length ? ` of ${window.key_field || "source"} ${listed(window.keys)}` : "")
    + (window.quality && window.quality.length ? ` flagged ${window.quality.join(" or ")}` : "");
  const chosen = window.fields && window.fields.length ? ` (fields ${window.fields.join(", ")})` : "";
  if (window.last != null) {
    const s = Number(window.last);
    return which + (s % 86400 === 0 ? ` of the last ${s / 86400} days` : s % 3600 === 0 ? ` of the last ${s / 3600} hours` : ` of the last ${s} seconds`) + chosen;
  }
  return which + (window.since ? ` from ${window.since}` : "") + (window.until ? ` until ${window.until}` : "") + chosen;
}

function name(value) {
  const text = String(value && typeof value === "object" ? value["@id"] : value ?? "");
  const prefix = PREFIXES.find((p) => text.startsWith(p));
  return prefix ? text.slice(prefix.length) : text;
}

function right(value) {
  if (Array.isArray(value)) return value.map(right);
  if (value && typeof value === "object") return value["@value"] ?? value["@id"];
  return value;
}

function anyOf(value, joiner = "or") {
  const items = [].concat(right(value)).map(String);
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} ${joiner} ${items.at(-1)}`;
}

/** A policy's moment: the day alone at midnight UTC (``2026-12-31``), else the day and time in UTC. */
export function moment(value) {
  const text = String(right(value));
  const t = Date.parse(text);
  if (Number.isNaN(t)) return text;
  const iso = new Date(t).toISOString();
  return iso.endsWith("T00:00:00.000Z") ? iso.slice(0, 10) : `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

/** An ISO 8601 duration in words: ``P7D`` → ``7 days``, ``PT12H`` → ``12 h``. */
export function duration(value) {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(String(right(value)));
  if (!m) return String(right(value));
  const [d, hrs, min, s] = m.slice(1).map((x) => Number(x || 0));
  const parts = [d ? `${d} day${d === 1 ? "" : "s"}` : "", hrs ? `${hrs} h` : "", min ? `${min} min` : "", s ? `${s} s` : ""];
  return parts.filter(Boolean).join(" ") || "0 s";
}

const LABELS = { purpose: "purpose", spatial: "region", recipient: "participant", organisation: "organisation", group: "group" };

/** A WKT polygon by its extent: ``longitude 7 to 8, latitude 46 to 47 (a polygon of 5 corners)``. */
export function areaWords(wkt) {
  const numbers = String(wkt).match(/-?\d+(?:\.\d+)?/g) || [];
  const lon = numbers.filter((_, i) => i % 2 === 0).map(Number);
  const lat = numbers.filter((_, i) => i % 2 === 1).map(Number);
  if (!lon.length || lon.length !== lat.length) return String(wkt);
  return `longitude ${Math.min(...lon)} to ${Math.max(...lon)}, latitude ${Math.min(...lat)} to ${Math.max(...lat)} (a polygon of ${lon.length} corners)`;
}

function constraintWords(c) {
  for (const [key, say] of [["and", (xs) => xs.join(" and ")], ["or", (xs) => `either ${xs.join(" or ")}`],
    ["xone", (xs) => `exactly one of: ${xs.join("; ")}`], ["andSequence", (xs) => xs.join(", then ")]]) {
    if (c && Array.isArray(c[key])) return `(${say(c[key].map(constraintWords))})`;
  }
  const left = name(c && c.leftOperand);
  const op = name(c && c.operator);
  const value = c && c.rightOperand;
  if (left === "dateTime") {
    return { lt: `before ${moment(value)}`, lteq: `until ${moment(value)}`, gt: `after ${moment(value)}`,
      gteq: `from ${moment(value)}` }[op] || `dateTime ${op} ${moment(value)}`;
  }
  if (left === "elapsedTime") {
    return `${op === "lt" ? "for less than" : "for"} ${duration(value)} after the agreement`;
  }
  if (left === "spatialCoordinates") return `queries within ${areaWords(right(value))}`;
  if (left === "count") {
    const n = Number(right(value)) - (op === "lt" ? 1 : 0);
    if (!Number.isFinite(n)) return `count ${op} ${right(value)}`;
    return n <= 0 ? "no transfer" : `${n} transfer${n === 1 ? "" : "s"} and ${n} use${n === 1 ? "" : "s"} of the copy`;
  }
  const label = LABELS[left] || left;
  return {
    eq: `${label}: ${anyOf(value)}`, isAnyOf: `${label}: ${anyOf(value)}`, neq: `${label} not ${anyOf(value)}`,
    isNoneOf: `${label} none of ${anyOf(value)}`, isAllOf: `${label}s: ${anyOf(value, "and")}`,
    isPartOf: `${label} within ${anyOf(value)}`,
  }[op] || `${label} ${op} ${anyOf(value)}`;
}

function ruleWords(rule) {
  const constraints = [].concat((rule && rule.constraint) || []);
  const action = name(rule && rule.action) || "use";
  const words = constraints.map(constraintWords);
  if (action !== "use") words.unshift(action);
  return words.join(", ");
}

/** An ODRL policy as people read it: ``until 2026-12-31, 3 transfers, purpose: flood-research, with attribution``. */
export function policyWords(policy) {
  if (!policy || typeof policy !== "object") return "no terms";
  const permissions = [].concat(policy.permission || []).map(ruleWords);
  const parts = [];
  if (!permissions.length) parts.push("no use permitted");
  else if (permissions.length === 1) parts.push(permissions[0] || "no limits");
  else parts.push(`either ${permissions.map((p) => `(${p || "no limits"})`).join(" or ")}`);
  for (const rule of [].concat(policy.prohibition || [])) parts.push(`prohibited when ${ruleWords(rule) || "used"}`);
  for (const duty of [].concat(policy.obligation || [])) {
    const action = name(duty && duty.action);
    const when = [].concat((duty && duty.constraint) || []).map((c) => {
      const left = name(c && c.leftOperand);
      return left === "elapsedTime" ? `${duration(c.rightOperand)} after the agreement` : left === "dateTime" ? moment(c.rightOperand) : constraintWords(c);
    }).join(", ");
    parts.push(action === "attribute" ? "with attribution" : action === "delete" ? `the copy deleted${when ? ` by ${when}` : ""}` : `duty: ${action}`);
  }
  return parts.join(", ");
}

/** The purposes an offer names (``purpose eq`` or ``isAnyOf``), to suggest when negotiating. */
export function purposesOf(policy) {
  const found = [];
  const walk = (c) => {
    if (!c || typeof c !== "object") return;
    for (const key of ["and", "or", "xone", "andSequence"]) if (Array.isArray(c[key])) c[key].forEach(walk);
    if (name(c.leftOperand) === "purpose" && ["eq", "isAnyOf"].includes(name(c.operator))) found.push(...[].concat(right(c.rightOperand)).map(String));
  };
  for (const rule of [].concat((policy && policy.permission) || [])) [].concat(rule.constraint || []).forEach(walk);
  return [...new Set(found)];
}

/** The address a did:web names: https, or http for a loopback host (as the engine resolves it). */
export function urlOfDid(did) {
  if (!String(did).startsWith("did:web:")) return null;
  const [host, ...path] = String(did).slice(8).split(":").map(decodeURIComponent);
  const bare = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const loopback = bare === "localhost" || bare === "::1" || /^127\./.test(bare);
  return `${loopback ? "http" : "https"}://${host}${path.map((s) => `/${s}`).join("")}`;
}

// -- what the tables say -----------------------------------------------------------------------------------------

const bytesWords = (n) => `${Number(n || 0).toLocaleString("en")} bytes`;
const short = (sha) => `${String(sha).slice(0, 12)}…`;

function agreementState(a) {
  if (a.revoked_at) return `revoked ${when(a.revoked_at)}${a.revoked_by ? ` by ${a.revoked_by}` : ""}`;
  return a.finalized ? "in force" : "agreed, not yet final";
}

/** What a transfer's checksums say: the consumer checks each file's SHA-256 against the provider's as it lands. */
function checksumCell(t) {
  const files = t.files || [];
  if (t.role === "provider") return h("td", { "data-csv": "checked by the consumer" }, "checked by the consumer");
  if (t.state === "COMPLETED" && files.length && files.every((f) => f.sha256)) {
    return h("td", { "data-csv": `verified ${files.map((f) => `${f.name} ${f.sha256}`).join("; ")}` },
      "SHA-256 verified: ", files.map((f, i) => [i ? ", " : "", `${f.name} `, h("code", { title: f.sha256 }, short(f.sha256))]));
  }
  if (t.state === "COMPLETED") return h("td", { "data-csv": "nothing pulled" }, "nothing pulled");
  if (t.state === "TERMINATED") return h("td", { "data-csv": "not verified" }, "not verified");
  return h("td", { "data-csv": "not yet" }, "not yet");
}

function stateCell(state, error) {
  return h("td", { "data-csv": error ? `${state}: ${error}` : state }, statusBadge(state), error ? h("span", { class: "ds-why" }, ` ${error}`) : null);
}

const side = (role) => (role === "provider" ? "you provide" : "you receive");

// -- the sections ------------------------------------------------------------------------------------------------

/** A listing, or what the caller's role may not see said in words instead of failing the page. */
async function maybe(path, params) {
  try {
    return await api(path, { params });
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return null;
    throw error;
  }
}

async function tables(ctx, slots, state) {
  const [offers, agreements, transfers, negotiations, register] = await Promise.all([
    maybe(`${P}/offers`, { withdrawn: true }), maybe(`${P}/agreements`), maybe(`${P}/transfers`), maybe(`${P}/negotiations`),
    // the participant register, suggested when proposing: asked for only by whoever may read it (a 403 is an
    // audited denial at every visit)
    mayManageParticipants(ctx.user) ? maybe(`${P}/participants`) : null]);
  const titles = new Map((offers || []).map((o) => [o.id, o.title]));
  // the transfers that serve an EDR collection's queries (as its provider knows from its offer): no files move
  const queried = new Set((offers || []).filter((o) => o.collection).map((o) => o.id));
  // what a consumer's agreement is about, by where its data landed (the provider's title stays with the provider)
  const landed = new Map((transfers || []).filter((t) => t.role === "consumer" && t.landed).reverse().map((t) => [t.agreement_id, t.landed]));
  const dataOf = (role, offerId, datasetId, agreementId) => (role === "provider" ? titles.get(offerId) || datasetId || "–"
    : landed.has(agreementId) ? `${datasetId}, landed as ${landed.get(agreementId)}` : datasetId || "–");
  // the participants this person dealt with, either way: the catalogs they are likely to look at
  state.peers = new Set([...(agreements || []).map((a) => (a.role === "provider" ? a.consumer : a.provider)),
    ...(negotiations || []).map((n) => n.peer)]);

  replace(slots.offers, offers === null ? h("p", { class: "muted" }, "Your role may not offer data.") : table(null,
    ["offer", "what", "terms", "offered (UTC)", "state"],
    offers.map((o) => [h("td", { "data-csv": o.title }, o.title, o.manual ? h("span", { class: "muted" }, " (you agree by hand)") : null),
      o.stream ? h("span", {}, o.live ? "stream " : "history of stream ", h("code", {}, o.stream), " of twin ", h("code", {}, o.did.slice(7, o.did.lastIndexOf("/"))),
        windowWords(o.window),
        h("span", { class: "muted" }, o.live ? " live (pushed as it grows, until the transfer ends)" : " (as it stands when each transfer starts)"))
        : o.collection ? h("span", {}, "queries of EDR collection ", h("code", {}, o.collection),
          h("span", { class: "muted" }, " (answers, not files; each query counted)"))
        : h("code", {}, o.did), policyWords(o.policy), when(o.created_at),
      o.withdrawn_at ? `withdrawn ${when(o.withdrawn_at)}` : "offered"]),
    { empty: "You offer nothing yet: twin offer create (or the API) offers a lake file or dataset of yours, with --stream a twin's stream history, or with --collection an EDR collection's queries." }));

  replace(slots.agreements, agreements === null ? h("p", { class: "muted" }, "Your role may not hold agreements.") : table(null,
    ["data", "you", "with", "signed (UTC)", "purpose", "terms", "transfers", "state", ""],
    agreements.map((a) => {
      const peer = a.role === "provider" ? a.consumer : a.provider;
      const what = dataOf(a.role, a.offer_id, a.dataset_id, a.id);
      const revoke = a.role === "provider" && !a.revoked_at ? askFirst("Revoke",
        { class: "danger small", "aria-label": `Revoke the agreement with ${peer} on ${what}` },
        "Revoke it? Its data addresses stop working at once.", async () => {
          try {
            const done = await api(`${P}/agreements/${enc(a.id)}/revoke`, { method: "POST" });
            ctx.toast(`The agreement with ${peer} on ${what}: ${agreementState(done)}`);
          } catch (error) { ctx.toast(error.message); }
          await tables(ctx, slots, state).catch((error) => ctx.toast(error.message));
        }) : null;
      return [h("td", { "data-csv": what, title: a.id }, what), side(a.role), h("code", {}, peer), when(a.signed_at),
        a.purpose || "–", policyWords(a.policy), a.role === "provider" ? String(a.transfers) : "–",
        h("td", { "data-csv": agreementState(a), "data-agreement": a.id }, agreementState(a)), h("td", {}, revoke)];
    }), { empty: "No agreements yet." }));

  const reread = () => tables(ctx, slots, state).catch((error) => ctx.toast(error.message));
  replace(slots.transfers, transfers === null ? h("p", { class: "muted" }, "Your role may not transfer data.") : table(null,
    ["#", "you", "with", "agreement", "how", "state", "files", "bytes", "SHA-256", "landed as", "started (UTC)", "last change (UTC)", "your step"],
    transfers.map((t) => [String(t.id), side(t.role), h("code", {}, t.peer), h("td", { title: t.agreement_id, "data-csv": t.agreement_id }, titles.get(agreementOffer(agreements, t.agreement_id)) || short(t.agreement_id)),
      h("td", { title: t.format, "data-csv": t.format }, queried.has(agreementOffer(agreements, t.agreement_id)) ? "queried by the consumer (EDR)" : t.format === "HttpData-PUSH" ? "pushed by the provider" : t.format === "AmazonS3-PUSH" ? "written into the consumer's S3 bucket" : "pulled by the consumer"),
      stateCell(t.state, t.error), (t.files || []).map((f) => f.name).join(", ") || "–", bytesWords(t.bytes),
      queried.has(agreementOffer(agreements, t.agreement_id)) ? h("td", { "data-csv": "–" }, "– (answers, in the usage record)") : checksumCell(t),
      t.landed ? h("code", {}, t.landed) : "–", when(t.created_at), when(t.updated_at),
      h("td", { "data-csv": "" }, transferButtons(ctx, t, reread))]),
    { empty: "No transfers yet." }));

  replace(slots.negotiations, negotiations === null ? h("p", { class: "muted" }, "Your role may not negotiate.") : table(null,
    ["#", "you", "with", "data", "purpose", "latest offer", "state", "agreement", "started (UTC)", "your step"],
    negotiations.map((n) => [String(n.id), side(n.role), h("code", {}, n.peer), dataOf(n.role, n.offer_id, n.dataset_id, n.agreement_id),
      n.purpose || "–", n.offer ? h("td", { "data-csv": policyWords(n.offer) }, policyWords(n.offer),
        h("span", { class: "muted" }, ` (${n.offered_by === "provider" ? "offered" : "asked"} by ${n.offered_by === n.role ? "you" : "them"})`)) : "–",
      stateCell(n.state, n.error), n.agreement_id ? h("code", { title: n.agreement_id }, short(n.agreement_id)) : "–",
      when(n.created_at), h("td", { "data-csv": "" }, stepButtons(ctx, n, reread))]),
    { empty: "No negotiations yet." }));
  slots.peers.replaceChildren(...[...state.peers].map(urlOfDid).filter(Boolean).map((u) => h("option", { value: u })));
  slots.propose.offers((offers || []).filter((o) => !o.withdrawn_at));
  slots.propose.participants(state.peers, (register || []).filter((p) => p.registered));
}

/** The steps a person may take on a negotiation now (the engine refuses others, naming the state): a manual
 * offer's steward agrees, counters and finalizes; the consumer accepts, counters and verifies; either ends it. */
export function negotiationSteps(n) {
  if (n.pending || ["INITIAL", "FINALIZED", "TERMINATED"].includes(n.state)) return [];
  const steps = n.role === "provider"
    ? { REQUESTED: ["agree", "counter"], ACCEPTED: ["agree"], VERIFIED: ["finalize"] }[n.state]
    : { OFFERED: ["accept", "counter"], AGREED: ["verify"] }[n.state];
  return [...(steps || []), "terminate"];
}

/** The steps a person may take on a transfer now: a manual offer's steward starts a requested one; either side
 * suspends, resumes, completes or ends one under way (a step being sent leaves only ending it). */
export function transferSteps(t) {
  if (["INITIAL", "COMPLETED", "TERMINATED"].includes(t.state)) return [];
  if (t.pending && t.pending !== "push") return ["terminate"];
  const steps = { REQUESTED: t.role === "provider" ? ["start"] : [], STARTED: ["suspend", "complete"], SUSPENDED: ["start"] }[t.state];
  return [...(steps || []), "terminate"];
}

// Terminating cannot be undone, so it asks first (``askFirst``), saying what it ends; the other steps act at once.
const TERMINATE_WORDS = {
  negotiation: "Terminate it? This cannot be undone: the negotiation ends without an agreement, and the other side is told.",
  transfer: "Terminate it? This cannot be undone: the other side is told, and the transfer's data address stops working.",
};

/** A step's button: ``send`` takes the step, an error is said. With a ``question`` it asks first; its "Yes"
 * disables itself, so after an error the tables are read again to give the step back. */
function stepButton(ctx, label, ariaLabel, send, again, question = null) {
  if (question) {
    return askFirst(label, { class: "danger small", "aria-label": ariaLabel }, question,
      () => send().catch((error) => { ctx.toast(error.message); return again(); }));
  }
  return h("button", { type: "button", class: "small", "aria-label": ariaLabel, on: { click: async (event) => {
    const button = event.currentTarget;  // null once the handler awaits
    button.disabled = true;
    try { await send(); } catch (error) { ctx.toast(error.message); button.disabled = false; }
  } } }, label);
}

function transferButtons(ctx, t, again) {
  const words = { start: t.state === "SUSPENDED" ? "Resume" : "Start", suspend: "Suspend", complete: "Complete", terminate: "Terminate" };
  const send = async (step) => {
    const done = await api(`${P}/transfers/${enc(String(t.id))}/${step}`, { method: "POST" });
    ctx.toast(`Transfer ${t.id}: ${step} sent (${done.state})`);
    await again();
  };
  return h("div", { class: "ds-steps" }, transferSteps(t).map((step) =>
    stepButton(ctx, words[step], `${words[step]} transfer ${t.id}`, () => send(step), again,
      step === "terminate" ? TERMINATE_WORDS.transfer : null)));
}

const STEP_WORDS = { agree: "Agree", counter: "Counter-offer", finalize: "Finalize", accept: "Accept",
  verify: "Verify", terminate: "Terminate" };

function stepButtons(ctx, n, again) {
  const box = h("div", { class: "ds-steps" });
  const take = async (step, body) => {
    const done = await api(`${P}/negotiations/${enc(String(n.id))}/${step}`, { method: "POST", body });
    ctx.toast(`Negotiation ${n.id}: ${step === "offer" || step === "request" ? "counter-offer sent" : `${step} sent`} (${done.state})`);
    await again();
  };
  const label = (step) => `${STEP_WORDS[step]} on negotiation ${n.id}`;
  box.append(...negotiationSteps(n).map((step) => (step === "counter"
    ? h("button", { type: "button", class: "small", "aria-label": label(step),
      on: { click: () => replace(box, counterForm(ctx, n, take, again)) } }, STEP_WORDS[step])
    : stepButton(ctx, STEP_WORDS[step], label(step), () => take(step), again,
      step === "terminate" ? TERMINATE_WORDS.negotiation : null))));
  return box;
}

/** Other terms for the latest offer: transfers, days after the agreement, a last day, a purpose, a deletion of
 * the copy (the engine names a term it refuses beside its field). The provider's steward sends it as an offer,
 * the consumer as a request. */
function counterForm(ctx, n, take, again) {
  const id = `ds-counter-${n.id}`;
  const count = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", dataset: { loc: "terms.count" } });
  const days = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", dataset: { loc: "terms.days" } });
  const until = h("input", { type: "date", dataset: { loc: "terms.until" } });
  const purpose = h("input", { type: "text", autocomplete: "off", dataset: { loc: "terms.purposes" } });
  const deleteAfter = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", dataset: { loc: "terms.delete_after" } });
  const form = h("form", { novalidate: true, "aria-label": `Counter-offer on negotiation ${n.id}` }, formErrors(),
    field(`${id}-count`, "Transfers", count, "at most this many"),
    field(`${id}-days`, "Days", days, "after the agreement"),
    field(`${id}-until`, "Until", until, "the last day of use (its end, UTC)"),
    field(`${id}-purpose`, "Purpose", purpose, "the one it is for"),
    field(`${id}-delete`, "Delete the copy", deleteAfter, "this many days after the agreement"),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Send counter-offer"),
      h("button", { type: "button", class: "small", on: { click: () => again() } }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const terms = {};
    if (count.value.trim()) terms.count = count.value.trim();
    if (days.value.trim()) terms.days = days.value.trim();
    if (until.value) terms.until = `${until.value}T23:59:59Z`;
    if (purpose.value.trim()) terms.purposes = [purpose.value.trim()];
    if (deleteAfter.value.trim()) terms.delete_after = deleteAfter.value.trim();
    if (!Object.keys(terms).length) {
      form.querySelector(".form-errors").textContent = "Give the terms you offer instead: transfers, days, a last day, a purpose or a deletion.";
      count.focus();
      return;
    }
    try {
      await take(n.role === "provider" ? "offer" : "request", { terms });
    } catch (error) {
      showErrors(form, error);
    }
  });
  return form;
}

function agreementOffer(agreements, id) {
  const found = (agreements || []).find((a) => a.id === id);
  return found ? found.offer_id : null;
}

// -- proposing an offer of yours to a participant (the provider starts the negotiation) ------------------------

const CALLBACK_WORDS = {
  configured: "the callback address this engine's participant register records for it",
  given: "the callback address it gave in its own requests",
  assumed: "its protocol address + /callback, assumed: this engine knows no callback address of it",
};

/** Follow a proposal until the consumer's engine answers it (OFFERED) and until it ends (an agreement, or none);
 * the tables are read again at each change, so the negotiation is listed there with its state. */
function followProposal(box, started, state, refresh) {
  const begun = Date.now();
  const line = (n) => h("li", { dataset: { step: "Negotiation" } }, `Negotiation ${n.id} with `, h("code", {}, n.peer), ": ",
    statusBadge(n.state), n.pending ? h("span", { class: "muted" }, ` (sending ${n.pending})`) : null, n.error ? ` ${n.error}` : null);
  let shown = line(started);
  const list = h("ul", { class: "ds-progress" }, shown,
    started.callback ? h("li", {}, "Sent to ", h("code", {}, started.callback), `: ${CALLBACK_WORDS[started.callback_source] || started.callback_source}.`) : null,
    h("li", { class: "muted" }, started.addressee ? `For ${started.addressee} on their engine.` : "For the admins of their engine."));
  replace(box, list);
  let seen = `${started.state}/${started.pending}`;
  const step = async () => {
    if (state.gone) return;
    if (Date.now() - begun > POLL_LIMIT_MS) {
      list.append(h("li", {}, "Still under way after 3 minutes: the negotiations below keep its state."));
      return;
    }
    try {
      const n = await api(`${P}/negotiations/${enc(String(started.id))}`);
      const next = line(n);
      shown.replaceWith(next);
      shown = next;
      if (`${n.state}/${n.pending}` !== seen) { seen = `${n.state}/${n.pending}`; await refresh(); }
      if (!n.pending && n.state === "TERMINATED") { list.append(h("li", {}, "No agreement.")); return; }
      if (!n.pending && n.state === "FINALIZED") { list.append(h("li", { class: "ds-done" }, `Agreement ${n.agreement_id} is final.`)); return; }
    } catch (error) {
      list.append(h("li", { class: "alert" }, error.message));
      return;
    }
    const timer = setTimeout(() => { state.timers.delete(timer); step(); }, POLL_MS);
    state.timers.add(timer);
  };
  step();
}

/** "Propose to a participant": one of your offers, the participant's engine (its URL) and/or its participant id,
 * and whom there it is for, as the API takes them; the engine's errors land beside the field they name. Shown
 * only to someone with an offer to propose (the engine refuses anyone else's offer). */
function proposeForm(ctx, state, refreshTables) {
  const choice = h("select", { dataset: { loc: "offer_id" } });
  const url = h("input", { type: "url", list: "ds-peers", autocomplete: "url", dataset: { loc: "url" } });
  const participant = h("input", { type: "text", list: "ds-propose-participants", autocomplete: "off", spellcheck: "false", dataset: { loc: "participant" } });
  const suggested = h("datalist", { id: "ds-propose-participants" });
  const addressee = h("input", { type: "text", autocomplete: "off", spellcheck: "false", dataset: { loc: "addressee" } });
  const purpose = h("input", { type: "text", autocomplete: "off", dataset: { loc: "purpose" } });
  const progress = h("div", { role: "status", "aria-live": "polite", class: "ds-status" });
  const form = h("form", { novalidate: true, class: "ds-propose", "aria-label": "Propose an offer" },
    h("p", { class: "muted" }, "Offer one of your offers to a participant on another engine yourself: your engine starts the negotiation, and the person (or group) you name there accepts, counters or refuses it."),
    formErrors(),
    h("div", { class: "row" },
      field("ds-propose-offer", "Offer", choice, "one of yours"),
      field("ds-propose-url", "Participant's engine (URL)", url, "its address, e.g. https://twins.hydro.example"),
      field("ds-propose-participant", "Participant id", participant, "did:web:…, checked against that engine; alone, it names the participant; "
        + `suggested: those you dealt with${mayManageParticipants(ctx.user) ? " and the register's" : ""}`)),
    h("div", { class: "row" },
      field("ds-propose-addressee", "For", addressee, "a user or group:NAME on their engine; empty: its admins"),
      field("ds-propose-purpose", "Purpose", purpose, "optional, judged by the offer's terms"),
      h("button", { type: "submit" }, "Propose")),
    suggested, progress);
  const box = section("Propose to a participant", form);
  box.hidden = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { url: url.value.trim() || null, participant: participant.value.trim() || null,
      addressee: addressee.value.trim() || null, purpose: purpose.value.trim() || null };
    if (!body.url && !body.participant) {
      showErrors(form, { message: "Say whom to propose it to.", details: [{ loc: "url", msg: "give the participant's engine URL or its participant id" }] });
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const started = await api(`${P}/offers/${enc(choice.value)}/propose`, { method: "POST", body });
      ctx.toast(`Proposed to ${started.peer}`);
      await refreshTables();
      followProposal(progress, started, state, refreshTables);
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
  /** The offers one may propose now (none: the form is not shown). */
  box.offers = (offers) => {
    const kept = choice.value;
    choice.replaceChildren(...offers.map((o) => h("option", { value: o.id, selected: o.id === kept }, o.title)));
    box.hidden = offers.length === 0;
  };
  /** The participant ids suggested: those one dealt with and the register's, each option labelled which. */
  box.participants = (dealt, registered) => {
    const said = new Map([...dealt].filter(Boolean).map((did) => [did, ["dealt with"]]));
    for (const p of registered) {
      said.set(p.did, [...(said.get(p.did) || []), p.title ? `in the register: ${p.title}` : "in the register"]);
    }
    suggested.replaceChildren(...[...said].map(([did, words]) => h("option", { value: did, label: words.join("; ") })));
  };
  return box;
}

// -- another participant's catalog, and negotiating from it -------------------------------------------------------

function slug(text) {
  return String(text || "data").normalize("NFKD").toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "data";
}

/** Follow a negotiation, then the transfer it starts, until each is done; lines in ``box``. */
function follow(ctx, box, negotiation, landing, state, refresh) {
  const started = Date.now();
  const line = (label, row) => h("li", { dataset: { step: label } }, `${label} ${row.id}: `, statusBadge(row.state),
    row.error ? ` ${row.error}` : null);
  let negLine = h("li", {}, `Negotiation ${negotiation.id}: `, statusBadge(negotiation.state));
  const list = h("ul", { class: "ds-progress" }, negLine);
  replace(box, list);
  let transferLine = null;
  const step = async () => {
    if (state.gone) return;
    if (Date.now() - started > POLL_LIMIT_MS) {
      list.append(h("li", {}, "Still under way after 3 minutes: the tables below keep its state."));
      return;
    }
    try {
      const n = await api(`${P}/negotiations/${enc(String(negotiation.id))}`);
      const next = line("Negotiation", n);
      negLine.replaceWith(next);
      negLine = next;
      if (n.state === "TERMINATED" && !n.pending) {
        list.append(h("li", {}, "No agreement: nothing was transferred."));
        await refresh();
        return;
      }
      if (n.state === "FINALIZED" && n.agreement_id && !n.pending) {
        if (!landing) { list.append(h("li", {}, `Agreement ${n.agreement_id} is final.`)); await refresh(); return; }
        const found = await api(`${P}/transfers`, { params: { role: "consumer", agreement: n.agreement_id } });
        if (found.length) {
          const t = found[0];
          const shown = line("Transfer", t);
          if (transferLine) transferLine.replaceWith(shown); else list.append(shown);
          transferLine = shown;
          if ((t.state === "COMPLETED" || t.state === "TERMINATED") && !t.pending) {
            if (t.state === "COMPLETED") {
              const files = t.files || [];
              list.append(h("li", { class: "ds-done" }, `Landed as ${t.landed}: ${files.length} file${files.length === 1 ? "" : "s"}, ${bytesWords(t.bytes)}; SHA-256 verified: `,
                files.map((f, i) => [i ? "; " : "", `${f.name} `, h("code", {}, f.sha256)])));
            }
            await refresh();
            return;
          }
        }
      }
    } catch (error) {
      list.append(h("li", { class: "alert" }, error.message));
      return;
    }
    wait();
  };
  const wait = () => { const timer = setTimeout(() => { state.timers.delete(timer); step(); }, POLL_MS); state.timers.add(timer); };
  wait();
}

function offerForm(ctx, url, dataset, offer, index, state, refresh) {
  const title = dataset["dct:title"] || dataset.title || dataset["@id"];
  const suggested = purposesOf(offer);
  const listId = `ds-purposes-${index}`;
  const purpose = h("input", { type: "text", value: suggested[0] || "", list: suggested.length ? listId : null, autocomplete: "off", dataset: { loc: "purpose" } });
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, "").replace("T", "-");
  const land = h("input", { type: "text", value: `remote:${slug(title)}-${stamp}`, autocomplete: "off", dataset: { loc: "land.did" } });
  const progress = h("div", { role: "status", "aria-live": "polite", class: "ds-status" });
  const form = h("form", { novalidate: true, class: "ds-negotiate", "aria-label": `Negotiate for ${title}` }, formErrors(),
    h("div", { class: "row" },
      field(`ds-purpose-${index}`, "Purpose", purpose, suggested.length ? `the offer names: ${suggested.join(", ")}` : "why you want it (the provider may ask)"),
      field(`ds-land-${index}`, "Land it in your lake as", land, "scope:name, a dataset of yours"),
      h("button", { type: "submit", "aria-label": `Negotiate for ${title}` }, "Negotiate")),
    suggested.length ? h("datalist", { id: listId }, suggested.map((p) => h("option", { value: p }))) : null,
    progress);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { url, dataset: dataset["@id"], offer: offer["@id"] || null, purpose: purpose.value.trim() || null,
      land: { did: land.value.trim() } };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const started = await api(`${P}/negotiations`, { method: "POST", body });
      ctx.toast(`Negotiating for ${title}`);
      follow(ctx, progress, started, body.land, state, refresh);
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function catalogView(ctx, url, catalog, state, refresh) {
  const datasets = [].concat(catalog.dataset || []);
  const who = catalog.participantId || "";
  return h("div", { class: "ds-catalog" },
    h("p", {}, `${datasets.length} dataset${datasets.length === 1 ? "" : "s"} offered to this engine by `, h("code", {}, who), "."),
    datasets.length ? null : h("p", { class: "muted" }, "This participant offers this engine nothing (its offers may be for other participants)."),
    datasets.map((d, i) => {
      const title = d["dct:title"] || d.title || d["@id"];
      const offers = [].concat(d.hasPolicy || []);
      const keywords = [].concat(d["dcat:keyword"] || []);
      return h("article", { class: "ds-offer", "aria-label": title }, h("h3", {}, title),
        d["dct:description"] ? h("p", {}, d["dct:description"]) : null,
        keywords.length ? h("p", { class: "muted" }, `Keywords: ${keywords.join(", ")}`) : null,
        h("p", { class: "muted" }, "Dataset ", h("code", {}, d["@id"])),
        offers.map((o, j) => [h("p", { class: "ds-terms" }, "Terms: ", policyWords(o)), offerForm(ctx, url, d, o, `${i}-${j}`, state, refresh)]));
    }));
}

function catalogForm(ctx, state, slots, refresh) {
  const url = h("input", { type: "url", value: ctx.query.get("url") || "", list: "ds-peers", autocomplete: "url", dataset: { loc: "url" } });
  const out = h("div");
  const form = h("form", { novalidate: true, "aria-label": "Look at a catalog" }, formErrors(),
    h("div", { class: "row" }, field("ds-url", "Participant's engine (URL)", url, "e.g. https://twins.hydro.example; those you dealt with are suggested"),
      h("button", { type: "submit" }, "Show its catalog")), slots.peers);
  async function look() {
    clearErrors(form);
    replace(out, h("p", { class: "muted" }, "Asking…"));
    try {
      const found = await api(`${P}/catalog`, { method: "POST", body: { url: url.value.trim() } });
      const params = new URLSearchParams(location.search);
      params.set("url", url.value.trim());
      history.replaceState(null, "", `${location.pathname}?${params}`);
      replace(out, catalogView(ctx, url.value.trim(), found, state, refresh));
    } catch (error) {
      replace(out);
      showErrors(form, error);
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); look(); });
  return { form, out, look: url.value ? look : null };
}

export async function render(root, ctx) {
  const state = { gone: false, timers: new Set(), peers: new Set() };
  const slots = { offers: h("div"), agreements: h("div"), transfers: h("div"), negotiations: h("div"), peers: h("datalist", { id: "ds-peers" }) };
  const refresh = () => tables(ctx, slots, state).catch((error) => ctx.toast(error.message));
  slots.propose = proposeForm(ctx, state, refresh);
  const me = await maybe(`${P}/identity`);
  await tables(ctx, slots, state);
  const look = catalogForm(ctx, state, slots, refresh);
  // one recorded or forgotten below is suggested (or no longer) in the propose form at once
  const register = await participantsSection(ctx, (rows) => slots.propose.participants(state.peers, rows.filter((p) => p.registered)));
  root.append(h("h1", {}, "Data space"),
    h("p", { class: "muted" }, "Data you offer to other organisations' engines and data you receive from theirs, under terms each engine enforces (docs/dataspaces.md).",
      me ? [" This engine is ", h("code", {}, me.did), "."] : null),
    section("Your offers", slots.offers),
    slots.propose,
    section("Agreements", slots.agreements),
    section("Transfers", slots.transfers),
    section("Negotiations", slots.negotiations),
    section("Another participant's catalog", look.form, look.out));
  if (register) root.append(register);
  if (look.look) await look.look();
  return () => { state.gone = true; for (const timer of state.timers) clearTimeout(timer); };
}
