// A function on arrival that is paused, in words: why, since when, and the command that resumes it. Kept
// apart from the page so the words can be checked without a browser.
import { when } from "./dom.js";

/** The CLI command that resumes function `fn` of twin `twin` (names are plain words: no quoting needed). */
export function resumeCommand(twin, fn) {
  return `twin stream resume ${twin} ${fn}`;
}

/** What the streams page says of one function of the API's answer: null while it runs. */
export function pausedWords(twin, f) {
  if (!f.paused) return null;
  return {
    title: `Function ${f.name} is paused`,
    since: f.paused_at ? `since ${when(f.paused_at)}` : "",
    reason: f.paused_reason || "no reason was recorded",
    command: resumeCommand(twin, f.name),
  };
}
