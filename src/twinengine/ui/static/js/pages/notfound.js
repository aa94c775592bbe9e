import { h } from "../dom.js";

export async function render(root) {
  root.append(h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "/ui/" }, "Back to your twins")));
}
