// A run's Provenance Run Crate (a download) and, for a rerun, its diff against the run it repeated.
import { api, enc } from "./api.js";
import { h, table } from "./dom.js";

const VERDICTS = { identical: "identical", within_tolerance: "within tolerance", different: "different" };

export function crateLink(run) {
  return h("p", { class: "run-crate" }, h("a", { href: `/api/v1/runs/${enc(run.id)}/crate`, download: `${run.id}.crate.zip` },
    "Download the run's crate"), " (a Provenance Run Crate: graph, parameters, inputs and outputs with their SHA-256; ",
    h("code", {}, `twin runs rerun ${run.id}.crate.zip`), " runs it again)");
}

// The diff of a rerun against its original (a rerun's title says what it reran); nothing for other runs.
export async function rerunDiff(run) {
  if (!(run.title || "").startsWith("rerun of ")) return [];
  let diff;
  try { diff = await api(`/api/v1/runs/${enc(run.id)}/diff`); } catch { return []; }
  const largest = (o) => Object.entries(o.largest_difference || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(", ");
  return [h("h3", {}, "Rerun"),
    h("p", { class: `rerun-verdict rerun-${diff.verdict}` }, "A rerun of ", h("a", { href: `/ui/runs/${enc(diff.original)}` }, diff.original),
      `: ${VERDICTS[diff.verdict] || diff.verdict}`),
    table("Outputs against the original", ["output", "verdict", "original sha256", "rerun sha256", "largest difference or why"],
      diff.outputs.map((o) => [o.name, VERDICTS[o.verdict] || o.verdict, (o.original_sha256 || "–").slice(0, 16),
        (o.rerun_sha256 || "–").slice(0, 16), largest(o) || o.why || ""])),
    ...diff.why.map((w) => h("p", { class: "muted" }, `Why: ${w}`))];
}
