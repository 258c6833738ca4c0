// herald chat (/chat): a room is the subject chat.<room>; messages are JSON
// {"username":..., "message":...} published over herald's WebSocket JSON
// protocol (/v1/ws, docs/websocket.md). Anything else published to the room's
// subject, by any protocol, is shown raw. Message data only ever goes through
// textContent, never innerHTML.
"use strict";

(() => {
  // Uncaught errors are kept where the browser test can read them.
  const errors = (window.__heraldErrors = window.__heraldErrors || []);
  window.addEventListener("error", (e) => errors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => errors.push(String(e.reason)));

  const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const MAX_NAME = 32;
  const MAX_SHOWN = 500; // messages kept in the page
  const REQUEST_TIMEOUT_MS = 10000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const STORE_NAME = "herald.chat.name";
  const STORE_ROOM = "herald.chat.room";

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"),
    statusLabel: $("status").querySelector(".label"),
    joinForm: $("join-form"),
    name: $("name"),
    room: $("room"),
    join: $("join"),
    hint: $("join-hint"),
    roomTitle: $("room-title"),
    roomSubject: $("room-subject"),
    who: $("who"),
    messages: $("messages"),
    jump: $("jump"),
    composer: $("composer"),
    message: $("message"),
    send: $("send"),
  };
  const defaultHint = el.hint.cloneNode(true).childNodes;

  const storage = {
    get(key) {
      try {
        return window.localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch {
        // storage disabled: the page still works, it just won't remember
      }
    },
  };

  const state = {
    ws: null,
    ready: false, // hello received
    attempt: 0, // consecutive failed connections
    retryAt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    maxPayload: 1024 * 1024,
    nextId: 1,
    requests: new Map(), // id -> {resolve, reject, timer}
    name: "",
    room: "", // joined (or joining) room, "" before the first join
    sid: null, // current subscription id
    sidSeq: 0,
    subscribed: false,
    rejoin: false, // the next subscription follows a lost connection
    outgoing: new Map(), // payload text -> [li] sent by this page, awaiting their echo
    lastSender: null, // for grouping consecutive messages
  };

  // ---------- connection ----------

  // A page opened as /chat?access_token=… passes the token on (browsers'
  // WebSocket cannot send an Authorization header; Basic credentials the
  // browser already holds are sent by itself).
  function wsUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const token = new URLSearchParams(window.location.search).get("access_token");
    const query = token ? `?access_token=${encodeURIComponent(token)}` : "";
    return `${scheme}//${window.location.host}/v1/ws${query}`;
  }

  function setStatus(kind, label) {
    el.status.dataset.state = kind;
    el.statusLabel.textContent = label;
    updateControls();
  }

  function connect() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    setStatus("connecting", state.attempt ? "Reconnecting…" : "Connecting…");
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (err) {
      errors.push(String(err));
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    ws.addEventListener("message", (ev) => {
      if (ws !== state.ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // the protocol only sends JSON text frames
      }
      onFrame(frame);
    });
    ws.addEventListener("close", (ev) => {
      if (ws !== state.ws) return;
      onClosed(ev);
    });
  }

  function onClosed(ev) {
    const wasReady = state.ready;
    state.ws = null;
    state.ready = false;
    state.subscribed = false;
    el.messages.removeAttribute("data-joined");
    for (const [, req] of state.requests) {
      clearTimeout(req.timer);
      req.reject(new Error("connection closed"));
    }
    state.requests.clear();
    if (wasReady) {
      let why = "Connection lost";
      if (ev.code === 1008) why = "Disconnected: too slow to keep up (slow consumer)";
      else if (ev.code === 1009) why = "Disconnected: message too large";
      else if (ev.reason) why = `Disconnected: ${ev.reason}`;
      notice(`${why}. Reconnecting…`, true);
      state.rejoin = true;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.attempt += 1;
    state.retryAt = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      if (!navigator.onLine) setStatus("offline", "Offline");
      else setStatus("reconnecting", left > 0 ? `Reconnecting in ${left}s` : "Reconnecting…");
    };
    tick();
    state.countdownTimer = setInterval(tick, 500);
    state.retryTimer = setTimeout(connect, delay);
  }

  // Retry at once when the network comes back or the tab is looked at again.
  function reconnectNow() {
    if (!state.ws && state.retryTimer) {
      state.attempt = Math.max(0, state.attempt - 1);
      connect();
    }
  }
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });

  function request(op) {
    return new Promise((resolve, reject) => {
      const ws = state.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected"));
        return;
      }
      const id = state.nextId++;
      const timer = setTimeout(() => {
        state.requests.delete(id);
        reject(new Error("no answer from the server"));
      }, REQUEST_TIMEOUT_MS);
      state.requests.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...op, id }));
    });
  }

  function onFrame(frame) {
    switch (frame.op) {
      case "hello":
        state.ready = true;
        state.attempt = 0;
        if (Number.isFinite(frame.max_payload)) state.maxPayload = frame.max_payload;
        setStatus("connected", "Connected");
        if (state.room) subscribe();
        break;
      case "ok":
      case "pong":
      case "error": {
        const req = state.requests.get(frame.id);
        if (!req) {
          if (frame.op === "error") notice(`Server error: ${frame.error || frame.code}`, true);
          return;
        }
        state.requests.delete(frame.id);
        clearTimeout(req.timer);
        if (frame.op === "error") {
          const err = new Error(frame.error || frame.code || "error");
          err.code = frame.code;
          req.reject(err);
        } else {
          req.resolve(frame);
        }
        break;
      }
      case "message":
        if (frame.sid === state.sid) onMessage(frame);
        break;
      default:
        break;
    }
  }

  // ---------- rooms ----------

  function subject(room) {
    return `chat.${room}`;
  }

  function subscribe() {
    const sid = `room${++state.sidSeq}`;
    const room = state.room;
    state.sid = sid;
    state.subscribed = false;
    updateControls();
    request({ op: "subscribe", sid, subject: subject(room) }).then(
      () => {
        if (state.sid !== sid) return;
        state.subscribed = true;
        el.messages.dataset.joined = subject(room);
        setStatus("connected", "Connected");
        if (state.rejoin) {
          state.rejoin = false;
          notice("Reconnected. Messages sent while you were away are not shown.");
        }
        if (state.ws) el.message.focus({ preventScroll: true });
      },
      (err) => {
        if (state.sid !== sid) return;
        state.sid = null; // Join again retries
        if (state.ready) notice(`Could not join ${subject(room)}: ${err.message}`, true);
      },
    );
  }

  function join(name, room) {
    const sameRoom = room === state.room;
    state.name = name;
    storage.set(STORE_NAME, name);
    storage.set(STORE_ROOM, room);
    el.who.replaceChildren("You are ", strong(name));
    if (sameRoom) {
      if (state.ready && !state.sid) subscribe(); // the last try failed
      updateControls();
      return;
    }
    if (state.sid && state.ready) {
      // Fire and forget: messages for the old sid are ignored from now on.
      request({ op: "unsubscribe", sid: state.sid }).catch(() => {});
    }
    state.sid = null;
    state.subscribed = false;
    state.rejoin = false;
    state.room = room;
    state.lastSender = null;
    el.messages.removeAttribute("data-joined");
    el.roomTitle.textContent = room;
    el.roomSubject.textContent = subject(room);
    document.title = `#${room} · herald chat`;
    el.messages.replaceChildren();
    placeholder();
    notice(`You joined #${room} (subject ${subject(room)})`);
    if (state.ready) subscribe();
    else updateControls();
  }

  function validate() {
    const name = el.name.value.trim();
    const room = el.room.value.trim() || "lobby";
    if (!name) return { error: "Pick a name first.", field: el.name };
    if (name.length > MAX_NAME) return { error: `Names are at most ${MAX_NAME} characters.`, field: el.name };
    if (!ROOM_RE.test(room)) {
      return { error: "Room names use letters, digits, - and _ only (no dots, spaces or wildcards).", field: el.room };
    }
    return { name, room };
  }

  el.joinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = validate();
    if (v.error) {
      el.hint.classList.add("error");
      el.hint.textContent = v.error;
      v.field.focus();
      return;
    }
    el.hint.classList.remove("error");
    el.hint.replaceChildren(...Array.from(defaultHint, (n) => n.cloneNode(true)));
    el.name.value = v.name;
    el.room.value = v.room;
    join(v.name, v.room);
  });

  el.room.addEventListener("input", () => {
    const ok = ROOM_RE.test(el.room.value.trim()) || el.room.value.trim() === "";
    el.room.setCustomValidity(ok ? "" : "letters, digits, - and _ only");
  });

  // ---------- sending ----------

  function updateControls() {
    const canSend = state.ready && state.subscribed && !!state.name;
    el.message.disabled = !canSend;
    el.send.disabled = !canSend || el.message.value.trim() === "";
    if (!state.name || !state.room) el.message.placeholder = "Pick a name and join a room to chat";
    else if (!state.ready) el.message.placeholder = "Waiting for the connection…";
    else if (!state.subscribed) el.message.placeholder = `Joining #${state.room}…`;
    else el.message.placeholder = `Message #${state.room}`;
  }

  el.message.addEventListener("input", updateControls);

  el.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = el.message.value.trim();
    if (!text || el.send.disabled) return;
    const payload = JSON.stringify({ username: state.name, message: text });
    const size = new TextEncoder().encode(payload).length;
    if (size > state.maxPayload) {
      notice(`That message is too large (${size} bytes, the server takes ${state.maxPayload}).`, true);
      return;
    }
    const li = renderMessage({ user: state.name, text, own: true, pending: true });
    append(li, true);
    const waiting = state.outgoing.get(payload) || [];
    waiting.push(li);
    state.outgoing.set(payload, waiting);
    if (state.outgoing.size > 200) state.outgoing.delete(state.outgoing.keys().next().value);
    el.message.value = "";
    updateControls();
    request({ op: "publish", subject: subject(state.room), payload }).then(
      (ok) => {
        li.classList.remove("pending");
        const n = Number(ok.receivers) || 0;
        setDelivery(li, `Delivered to ${n} ${n === 1 ? "subscriber" : "subscribers"}`);
      },
      (err) => {
        li.classList.remove("pending");
        li.classList.add("failed");
        setDelivery(li, `Not sent: ${err.message}`);
        dropOutgoing(payload, li);
      },
    );
  });

  function dropOutgoing(payload, li) {
    const waiting = state.outgoing.get(payload);
    if (!waiting) return;
    const i = waiting.indexOf(li);
    if (i >= 0) waiting.splice(i, 1);
    if (!waiting.length) state.outgoing.delete(payload);
  }

  function setDelivery(li, text) {
    const stick = nearBottom();
    let d = li.querySelector(".delivery");
    if (!d) {
      d = document.createElement("div");
      d.className = "delivery";
      li.querySelector(".bubble").append(d);
    }
    d.textContent = text;
    if (stick) scrollToBottom();
  }

  // ---------- receiving ----------

  function onMessage(frame) {
    // Our own message coming back: it is already on screen.
    if (typeof frame.payload === "string" && state.outgoing.has(frame.payload)) {
      const waiting = state.outgoing.get(frame.payload);
      const li = waiting.shift();
      if (!waiting.length) state.outgoing.delete(frame.payload);
      li.classList.remove("pending");
      return;
    }
    const parsed = parseChat(frame);
    append(renderMessage(parsed), false);
  }

  function parseChat(frame) {
    if (frame.payload === "" || frame.payload_base64 === "") {
      return { raw: true, user: "raw", text: "(empty payload)", tag: "empty" };
    }
    if (typeof frame.payload === "string") {
      try {
        const v = JSON.parse(frame.payload);
        if (v && typeof v === "object" && !Array.isArray(v)) {
          const m = v.message;
          if (typeof m === "string" || typeof m === "number" || typeof m === "boolean") {
            const u = typeof v.username === "string" && v.username.trim() ? v.username.trim() : "anonymous";
            return { user: u, text: String(m) };
          }
        }
      } catch {
        // not JSON: shown raw below
      }
      return { raw: true, user: "raw", text: frame.payload, tag: "raw" };
    }
    if (typeof frame.payload_base64 === "string") {
      const b64 = frame.payload_base64;
      const bytes = Math.floor((b64.length * 3) / 4) - (b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0);
      const preview = b64.length > 64 ? `${b64.slice(0, 64)}…` : b64;
      return { raw: true, user: "raw", text: `${bytes} bytes of binary, base64 ${preview}`, tag: "binary" };
    }
    return { raw: true, user: "raw", text: "(empty payload)", tag: "empty" };
  }

  // ---------- rendering (textContent only) ----------

  function strong(text) {
    const s = document.createElement("strong");
    s.textContent = text;
    return s;
  }

  function avatarColor(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return `hsl(${h % 360} 55% 46%)`;
  }

  function renderMessage({ user, text, own = false, pending = false, raw = false, tag = "" }) {
    const li = document.createElement("li");
    li.className = "msg";
    if (own) li.classList.add("own");
    if (pending) li.classList.add("pending");
    if (raw) li.classList.add("raw");
    li.dataset.user = user;

    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    if (raw) {
      avatar.textContent = "{}";
      avatar.style.background = "var(--faint)";
    } else {
      avatar.textContent = Array.from(user)[0]?.toUpperCase() || "?";
      avatar.style.background = avatarColor(user);
    }

    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const meta = document.createElement("div");
    meta.className = "meta";
    const u = document.createElement("span");
    u.className = "user";
    u.textContent = user;
    meta.append(u);
    if (own || tag) {
      const t = document.createElement("span");
      t.className = "tag";
      t.textContent = own ? "you" : tag;
      meta.append(t);
    }
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = now.toLocaleString();
    meta.append(time);

    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;

    bubble.append(meta, body);
    li.append(avatar, bubble);

    // Group consecutive messages from the same sender.
    const sender = `${own ? "me" : raw ? "raw" : "u"}:${user}`;
    if (sender === state.lastSender && el.messages.lastElementChild?.classList.contains("msg")) {
      li.classList.add("cont");
    }
    state.lastSender = sender;
    return li;
  }

  function notice(text, isError = false) {
    const li = document.createElement("li");
    li.className = isError ? "notice error" : "notice";
    const span = document.createElement("span");
    span.textContent = text;
    li.append(span);
    state.lastSender = null;
    append(li, isError);
  }

  function placeholder() {
    const li = document.createElement("li");
    li.className = "placeholder";
    li.append(strong("No messages yet"));
    li.append("Say hello — or publish JSON to this room's subject from any NATS or Redis client.");
    el.messages.append(li);
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(li, forceScroll) {
    const stick = forceScroll || nearBottom();
    el.messages.querySelector(".placeholder")?.remove();
    el.messages.append(li);
    while (el.messages.childElementCount > MAX_SHOWN) el.messages.firstElementChild.remove();
    if (stick) scrollToBottom();
    else if (li.classList.contains("msg")) el.jump.hidden = false;
  }

  function scrollToBottom() {
    el.messages.scrollTop = el.messages.scrollHeight;
    el.jump.hidden = true;
  }

  el.messages.addEventListener("scroll", () => {
    if (nearBottom()) el.jump.hidden = true;
  });
  el.jump.addEventListener("click", scrollToBottom);

  // Links between the pages keep an access token given in the URL.
  {
    const token = new URLSearchParams(window.location.search).get("access_token");
    if (token) {
      for (const a of document.querySelectorAll('a[href="/"], a[href="/chat"]')) {
        a.href = `${a.getAttribute("href")}?access_token=${encodeURIComponent(token)}`;
      }
    }
  }

  // ---------- start ----------

  const params = new URLSearchParams(window.location.search);
  const savedName = (storage.get(STORE_NAME) || "").slice(0, MAX_NAME);
  const askedRoom = params.get("room");
  const savedRoom = askedRoom && ROOM_RE.test(askedRoom) ? askedRoom : storage.get(STORE_ROOM);
  el.name.value = savedName;
  el.room.value = savedRoom && ROOM_RE.test(savedRoom) ? savedRoom : "lobby";
  el.roomTitle.textContent = el.room.value;
  el.roomSubject.textContent = subject(el.room.value);
  placeholder();
  if (savedName) join(savedName, el.room.value);
  else el.name.focus();
  updateControls();
  connect();
})();
