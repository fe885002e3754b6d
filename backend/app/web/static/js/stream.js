// Following a reply's stream to its end, resuming a dropped connection with Last-Event-ID.

import { ApiError, send } from "./api.js";
import { readEvents } from "./sse.js";

const FINAL = new Set(["done", "error"]);
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function worthRetrying(error) {
  return !(error instanceof ApiError) || [429, 502, 503, 504].includes(error.status);
}

// `open()` starts a reply (POST .../replies, regenerate) and answers its Response; without it the
// stream of `messageId` is joined after `lastEventId` ("" = from the start). Each event goes to
// `onEvent(name, data)`; a dropped connection is resumed from the last event seen, after a
// growing pause announced through `onReconnecting(ms)`. Resolves after `done` or `error`.
export async function followReply({ open, messageId = null, lastEventId = "", onEvent, onReconnecting }) {
  let attempt = 0;
  let response = open ? await open() : null; // refusals (409, 429, 503) throw from here
  for (;;) {
    try {
      if (response === null) {
        const headers = lastEventId ? { "Last-Event-ID": lastEventId } : {};
        response = await send("GET", `/api/messages/${messageId}/stream`, { headers });
      }
      for await (const event of readEvents(response)) {
        if (event.id !== null) lastEventId = event.id;
        const data = JSON.parse(event.data);
        if (event.event === "message") messageId = data.id;
        attempt = 0;
        onEvent(event.event, data);
        if (FINAL.has(event.event)) return;
      }
    } catch (error) {
      if (messageId === null || !worthRetrying(error)) throw error;
    }
    if (messageId === null) throw new Error("The reply's stream ended before it began.");
    if (attempt >= BACKOFF_MS.length) throw new Error("Lost the connection to the reply.");
    const delay = BACKOFF_MS[attempt++];
    onReconnecting?.(delay);
    await sleep(delay);
    response = null;
  }
}

// Last-Event-ID for text already shown: a delta's id is the offset, in characters (code points),
// where its text ends.
export function offsetOf(text) {
  return String([...text].length);
}
