// The observer's page: the classroom video and audio, and who is here.

import { exposeHooks } from "./ui.js";
import { startViewer } from "./viewer.js";

const viewer = startViewer({ role: "observer" });
exposeHooks(viewer.baseHooks);
viewer.start();
