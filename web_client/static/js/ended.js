// The page an invite opens once its lesson has ended: the recordings this
// invite may still see (the teacher can delete them and see who watched).

import { showAfter } from "./after.js";
import { readPage } from "./conn.js";
import { $, exposeHooks } from "./ui.js";

/** @import { JoinPage } from "../../types/wire" */

/** @type {JoinPage} */
const page = readPage();
const ready = showAfter($("#after"), {
  token: page.token,
  role: page.role,
  retentionDays: page.retentionDays ?? 30,
});
let loaded = false;
ready.then(() => (loaded = true));
exposeHooks({ role: () => page.role, state: () => "ended", loaded: () => loaded });
