//! The chat (`/chat`) and dashboard (`/`) pages in a real browser: Debian's
//! headless Chromium, driven over WebDriver (chromedriver) with fantoccini.
//!
//! Two browser sessions (two profiles, like two people) join the same room;
//! what one types shows up in the other, and so does what a NATS client
//! publishes to the room's subject (JSON chat messages, and raw text shown as
//! is). One switches rooms and sees only the new room. Then the dashboard is
//! opened while NATS traffic flows and a stream holds messages, and a reload
//! of the chat joins again from what the page remembered. In between, MQTT.js
//! (its browser bundle, from `tests/js`) publishes from a page over
//! MQTT-over-WebSocket to a NATS subscriber and the other page.
//!
//! Screenshots land in `<target>/screenshots/`: `chat.png`, `chat-bob.png`,
//! `chat-phone.png`, `dashboard.png`, `dashboard-phone.png` (1280×800 pages,
//! phone ones 390×844), and `failed-<who>.png` when a wait gives up.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages, which `scripts/test` installs. Without them
//! the test fails and says so: it never skips silently. `CHROMEDRIVER` and
//! `CHROME_BIN` point it at other binaries.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::{FutureExt, StreamExt};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::common::TestServer;

/// How long any one thing may take to show up in a page.
const DEADLINE: Duration = Duration::from_secs(20);
/// Between two looks at a page.
const POLL: Duration = Duration::from_millis(100);
const ROOM: &str = "e2e";

#[tokio::test]
async fn chat_and_dashboard_in_chromium() {
    let tools = Tools::find();
    let shots = screenshot_dir();
    let server = TestServer::start().await;
    let driver = Driver::start(&tools, &shots);
    let ann = Page::open(&driver, &tools, "ann").await;
    let bob = Page::open(&driver, &tools, "bob").await;

    let outcome = AssertUnwindSafe(scenario(&server, &ann, &bob, &shots))
        .catch_unwind()
        .await;

    // Always end the browsers, even when the scenario failed.
    ann.close().await;
    bob.close().await;
    drop(driver);
    server.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(server: &TestServer, ann: &Page, bob: &Page, shots: &Path) {
    let chat = server.http_url("/chat");
    let subject = format!("chat.{ROOM}");

    // Both join the room; a page says it has joined once the server
    // acknowledged its subscription.
    for page in [ann, bob] {
        page.goto(&chat).await;
        page.wait_js(
            "the WebSocket to connect",
            "return document.getElementById('status').dataset.state === 'connected'",
        )
        .await;
        page.fill("name", &page.name).await;
        page.fill("room", ROOM).await;
        page.click("join").await;
        let joined = page
            .wait_js(
                "the room to be joined",
                "return document.getElementById('messages').dataset.joined || null",
            )
            .await;
        assert_eq!(
            joined,
            json!(subject),
            "{}: joined the wrong subject",
            page.name
        );
    }

    // Ann types and clicks Send; Bob sees it, Ann sees it marked as hers.
    let hello = "Hello Bob, this is Ann";
    ann.fill("message", hello).await;
    ann.click("send").await;
    bob.wait_message("ann", hello, false).await;
    ann.wait_message("ann", hello, true).await;

    // Bob answers with the Enter key.
    let answer = "Hi Ann! <b>not bold</b> & \"quoted\"";
    bob.fill("message", &format!("{answer}{}", Key::Enter))
        .await;
    ann.wait_message("bob", answer, false).await;
    bob.wait_message("bob", answer, true).await;

    // A NATS client publishes chat JSON to the room's subject, then a
    // payload that is not JSON: both pages show both, the second raw.
    let nats = server.client().await;
    let beep = "beep boop, from a NATS client";
    let bot = json!({"username": "nats-bot", "message": beep}).to_string();
    nats.publish(subject.clone(), bot.into())
        .await
        .expect("publish");
    let raw = "plain <i>text</i>, not JSON";
    nats.publish(subject.clone(), raw.into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    for page in [ann, bob] {
        page.wait_message("nats-bot", beep, false).await;
        let shown = page.wait_message("raw", raw, false).await;
        assert_eq!(shown["raw"], json!(true), "{}: {shown}", page.name);
    }
    for page in [ann, bob] {
        page.assert_no_errors().await;
    }
    ann.screenshot(&shots.join("chat.png")).await;
    bob.screenshot(&shots.join("chat-bob.png")).await;

    mqtt_over_websocket(server, &nats, ann, bob).await;

    // Bob switches rooms: he gets the new room's messages, not the old's.
    bob.fill("room", "elsewhere").await;
    bob.click("join").await;
    bob.wait_js(
        "the new room to be joined",
        "return document.getElementById('messages').dataset.joined === 'chat.elsewhere'",
    )
    .await;
    let stale = json!({"username": "nats-bot", "message": "left behind"}).to_string();
    nats.publish(subject.clone(), stale.into())
        .await
        .expect("publish");
    let fresh = json!({"username": "nats-bot", "message": "in the new room"}).to_string();
    nats.publish("chat.elsewhere", fresh.into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    bob.wait_message("nats-bot", "in the new room", false).await;
    ann.wait_message("nats-bot", "left behind", false).await;
    let shown = bob
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#messages .msg .text'), e => e.textContent)",
            vec![],
        )
        .await
        .expect("read bob's messages");
    assert_eq!(
        shown,
        json!(["in the new room"]),
        "bob, after switching rooms"
    );

    // The dashboard, while NATS traffic flows and a stream holds messages.
    let js = jetstream::new(nats.clone());
    js.get_or_create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.*".into()],
        ..Default::default()
    })
    .await
    .expect("stream created");
    for i in 0..25 {
        js.publish(format!("orders.{i}"), format!("order {i}").into())
            .await
            .expect("publish to the stream")
            .await
            .expect("stored");
    }
    let traffic = tokio::spawn(traffic(nats.clone()));

    bob.goto(&server.http_url("/")).await;
    bob.wait_js(
        "a few stats events",
        "return Number(document.body.dataset.samples || 0) >= 5",
    )
    .await;
    bob.wait_js(
        "the rate chart to show traffic",
        "return parseFloat(document.getElementById('rate-in').textContent) > 0",
    )
    .await;
    let orders = bob
        .wait_js(
            "the ORDERS stream in the table",
            "const row = document.querySelector('#streams tr[data-stream=\"ORDERS\"]');
             return row ? row.querySelector('td.c-messages').textContent : null",
        )
        .await;
    assert_eq!(orders, json!("25"));
    // Ann's chat page is still open: one WebSocket at least.
    bob.wait_js(
        "Ann's WebSocket in the connections",
        "const row = document.querySelector('#connections [data-proto=\"websocket\"]');
         return row && Number(row.dataset.count) >= 1",
    )
    .await;
    bob.assert_no_errors().await;
    bob.screenshot(&shots.join("dashboard.png")).await;
    bob.set_viewport(390, 844).await;
    bob.wait_js(
        "a stats event at phone width",
        "const n = Number(document.body.dataset.samples || 0);
         window.__shotFrom = window.__shotFrom || n;
         return n >= window.__shotFrom + 1",
    )
    .await;
    bob.screenshot(&shots.join("dashboard-phone.png")).await;
    traffic.abort();
    ann.assert_no_errors().await;
    ann.set_viewport(390, 844).await;
    ann.wait_js(
        "the chat to fit a phone",
        "return document.documentElement.clientWidth <= 400",
    )
    .await;
    ann.screenshot(&shots.join("chat-phone.png")).await;

    // The name and room are remembered: a reload joins again by itself.
    ann.client.refresh().await.expect("reload");
    let joined = ann
        .wait_js(
            "the room to be joined again after a reload",
            "return document.getElementById('messages').dataset.joined || null",
        )
        .await;
    assert_eq!(joined, json!(subject));
    let name = ann
        .client
        .execute("return document.getElementById('name').value", vec![])
        .await
        .expect("read the name");
    assert_eq!(name, json!("ann"));
    ann.assert_no_errors().await;
}

/// MQTT.js, loaded into Ann's page, connects over MQTT-over-WebSocket
/// (`/mqtt`) and publishes a chat message to `chat/e2e` at QoS 1: a NATS
/// subscriber and Bob's chat page (herald's own WebSocket) receive it. The
/// other way, a NATS publish reaches the page's MQTT subscription.
async fn mqtt_over_websocket(
    server: &TestServer,
    nats: &async_nats::Client,
    ann: &Page,
    bob: &Page,
) {
    let bundle = mqtt_js_bundle();
    let mut from_mqtt = nats
        .subscribe(format!("chat.{ROOM}"))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let text = "sent by MQTT.js over WebSocket";
    let chat = json!({"username": "mqtt-ann", "message": text}).to_string();
    let url = format!("ws://{}/mqtt", server.http);
    ann.client
        .execute(
            "const [bundle, url, room, chat] = arguments;
             const script = document.createElement('script');
             script.textContent = bundle;
             document.head.appendChild(script);
             const state = window.__mqtt = {got: [], error: null, acked: false};
             const client = mqtt.connect(url, {clientId: 'ann-browser', protocolVersion: 5,
                                               reconnectPeriod: 0});
             client.on('error', e => state.error = String(e));
             client.on('close', () => {
               if (!state.acked) state.error = state.error || 'closed before the publish was acknowledged';
             });
             client.on('message', (topic, payload) =>
               state.got.push({topic, text: new TextDecoder().decode(payload)}));
             client.on('connect', () => {
               client.subscribe('chat/' + room + '/replies', {qos: 1}, err => {
                 if (err) { state.error = String(err); return; }
                 state.subscribed = true;
                 client.publish('chat/' + room, chat, {qos: 1}, err => {
                   if (err) state.error = String(err); else state.acked = true;
                 });
               });
             });
             window.__mqttClient = client;
             return true",
            vec![json!(bundle), json!(url), json!(ROOM), json!(chat)],
        )
        .await
        .expect("start MQTT.js in the page");
    let acked = ann
        .wait_js(
            "MQTT.js to connect, subscribe and have its QoS 1 publish acknowledged",
            "const s = window.__mqtt; return s.error ? {error: s.error} : s.acked",
        )
        .await;
    assert_eq!(acked, json!(true), "ann's MQTT.js client");
    let msg = tokio::time::timeout(DEADLINE, from_mqtt.next())
        .await
        .expect("the MQTT.js message reaches NATS in time")
        .expect("a message");
    assert_eq!(msg.payload.as_ref(), chat.as_bytes());
    bob.wait_message("mqtt-ann", text, false).await;

    nats.publish(
        format!("chat.{ROOM}.replies"),
        "from NATS to MQTT.js".into(),
    )
    .await
    .expect("publish");
    let got = ann
        .wait_js(
            "the NATS reply in the page's MQTT subscription",
            "return window.__mqtt.got[0] || null",
        )
        .await;
    assert_eq!(
        got,
        json!({"topic": format!("chat/{ROOM}/replies"), "text": "from NATS to MQTT.js"})
    );
    ann.client
        .execute("window.__mqttClient.end(); return true", vec![])
        .await
        .expect("end the MQTT.js client");
}

/// MQTT.js's browser bundle, from the npm install `scripts/test` makes.
fn mqtt_js_bundle() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/js/node_modules/mqtt/dist/mqtt.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read MQTT.js at {} ({e}): run `npm ci --prefix crates/herald-server/tests/js` \
             (scripts/test does)",
            path.display()
        )
    })
}

/// Some NATS traffic for the dashboard's charts: a bounded burst of
/// publishes to a subject that has a subscriber.
async fn traffic(nats: async_nats::Client) {
    let mut sub = nats.subscribe("load.>").await.expect("subscribe");
    tokio::spawn(async move { while sub.next().await.is_some() {} });
    for i in 0..1500u32 {
        let payload = format!(
            "{{\"tick\":{i},\"pad\":\"{}\"}}",
            "x".repeat((i % 7) as usize * 40)
        );
        if nats
            .publish(format!("load.{}", i % 4), payload.into())
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One browser session: a profile of its own, like a person.
struct Page {
    name: String,
    client: Client,
    shots: PathBuf,
}

impl Page {
    async fn open(driver: &Driver, tools: &Tools, name: &str) -> Self {
        let args = [
            "--headless=new",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,800",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--lang=en-US",
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Chromium ({}) through chromedriver: {e}\n\
                     (chromedriver's log: {})",
                    tools.chromium.display(),
                    driver.log.display()
                )
            });
        let page = Self {
            name: name.to_owned(),
            client,
            shots: driver.shots.clone(),
        };
        page.set_viewport(1280, 800).await;
        page
    }

    /// Sizes the window so that the page itself gets `width` × `height`.
    async fn set_viewport(&self, width: u32, height: u32) {
        let frame = self
            .client
            .execute(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .expect("window frame size");
        let extra = |i: usize| u32::try_from(frame[i].as_u64().unwrap_or(0)).unwrap_or(0);
        self.client
            .set_window_size(width + extra(0), height + extra(1))
            .await
            .unwrap_or_else(|e| panic!("{}: cannot resize the window: {e}", self.name));
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open {url}: {e}", self.name));
    }

    /// Replaces the text of the input with id `id` by `text` (typed as keys).
    async fn fill(&self, id: &str, text: &str) {
        let input = self
            .client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{}: no #{id}: {e}", self.name));
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("{}: cannot clear #{id}: {e}", self.name));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot type into #{id}: {e}", self.name));
    }

    async fn click(&self, id: &str) {
        self.wait_js(
            &format!("#{id} to be enabled"),
            &format!("const e = document.getElementById('{id}'); return !!e && !e.disabled"),
        )
        .await;
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{}: no #{id}: {e}", self.name))
            .click()
            .await
            .unwrap_or_else(|e| panic!("{}: cannot click #{id}: {e}", self.name));
    }

    /// Runs `script` until it returns something other than null or false,
    /// and returns that; fails (with a screenshot) after [`DEADLINE`].
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < DEADLINE {
            match self.client.execute(script, vec![]).await {
                Ok(Value::Null | Value::Bool(false)) => {}
                Ok(value) => return value,
                Err(e) => last = json!(e.to_string()),
            }
            tokio::time::sleep(POLL).await;
        }
        let shot = self.shots.join(format!("failed-{}.png", self.name));
        self.screenshot(&shot).await;
        let status = self
            .client
            .execute(
                "const s = document.getElementById('status');
                 return {url: location.href, status: s && s.textContent.trim(),
                         errors: window.__heraldErrors || null}",
                vec![],
            )
            .await
            .unwrap_or_default();
        panic!(
            "{}: gave up waiting for {what} after {DEADLINE:?} (last: {last}; page: {status}; \
             screenshot: {})",
            self.name,
            shot.display()
        );
    }

    /// Waits for a chat message from `user` with `text`, and returns it as
    /// `{user, text, own, raw}`.
    async fn wait_message(&self, user: &str, text: &str, own: bool) -> Value {
        let script = format!(
            "const want = {{user: {user}, text: {text}}};
             for (const m of document.querySelectorAll('#messages .msg')) {{
               const found = {{
                 user: m.querySelector('.user').textContent,
                 text: m.querySelector('.text').textContent,
                 own: m.classList.contains('own'),
                 raw: m.classList.contains('raw'),
               }};
               if (found.user === want.user && found.text === want.text) return found;
             }}
             return null;",
            user = json!(user),
            text = json!(text),
        );
        let found = self
            .wait_js(&format!("{user}'s message {text:?}"), &script)
            .await;
        assert_eq!(
            found["own"],
            json!(own),
            "{}: {found} should {}be marked as its own",
            self.name,
            if own { "" } else { "not " }
        );
        found
    }

    async fn assert_no_errors(&self) {
        let errors = self
            .client
            .execute("return window.__heraldErrors || []", vec![])
            .await
            .expect("read the page's errors");
        assert_eq!(
            errors,
            json!([]),
            "{}: JavaScript errors in the page",
            self.name
        );
    }

    async fn screenshot(&self, path: &Path) {
        match self.client.screenshot().await {
            Ok(png) => std::fs::write(path, png)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display())),
            Err(e) => eprintln!("{}: no screenshot: {e}", self.name),
        }
    }

    async fn close(self) {
        if let Err(e) = self.client.close().await {
            eprintln!("{}: closing the browser: {e}", self.name);
        }
    }
}

/// Where Chromium and chromedriver are.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    fn find() -> Self {
        let chromium = find_binary(
            "CHROME_BIN",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let chromedriver = find_binary("CHROMEDRIVER", &["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Self {
                chromium,
                chromedriver,
            },
            (chromium, chromedriver) => panic!(
                "the browser test needs Chromium and chromedriver, and {} not installed.\n\
                 Run scripts/test, which installs Debian's `chromium` and `chromium-driver` \
                 packages (or: apt-get install chromium chromium-driver). \
                 CHROME_BIN and CHROMEDRIVER can point at other binaries.",
                match (chromium.is_none(), chromedriver.is_none()) {
                    (true, true) => "neither is",
                    (true, false) => "Chromium is",
                    _ => "chromedriver is",
                }
            ),
        }
    }
}

/// `$env` if set (and there), else the first of `names` found on `PATH` (or in the
/// usual Debian places).
fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|path| path.is_file())
}

/// A chromedriver process on a free local port, in a process group of its
/// own so that it and every browser it started end with it.
struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
    shots: PathBuf,
}

impl Driver {
    fn start(tools: &Tools, shots: &Path) -> Self {
        let log = shots.join("chromedriver.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(&tools.chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run scripts/test, which installs chromium-driver",
                tools.chromedriver.display()
            )
        });
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            shots: shots.to_owned(),
        };
        driver.wait_ready();
        driver
    }

    /// Waits until chromedriver answers `/status` with ready.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        let addr: std::net::SocketAddr = self.url["http://".len()..].parse().expect("address");
        while start.elapsed() < DEADLINE {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); its log: {}",
                    self.log.display()
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "chromedriver did not listen on {} within {DEADLINE:?}",
            self.url
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group (chromedriver and any browser it left behind), by
        // the id of the group this test created.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<target>/screenshots`, created (and rid of earlier failure screenshots):
/// `CARGO_TARGET_DIR` if set, else the workspace's `target/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .find(|dir| dir.join("Cargo.lock").is_file())
                .unwrap_or(manifest)
                .join("target")
        });
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // A failure screenshot from an earlier run would only mislead.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("failed-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    dir
}
