export { main } from "../web/bench/ui-bench.js";
