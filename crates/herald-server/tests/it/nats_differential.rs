//! Differential tests: the same raw NATS exchanges against nats-server and
//! herald must give the same replies (INFO, whose fields vary by server, is
//! compared by shape only).

use std::net::SocketAddr;

use crate::common::TestServer;
use crate::common::raw::RawClient;
use crate::common::reference::nats_server;

/// One scripted exchange: bytes the client sends, in steps.
struct Script {
    name: &'static str,
    steps: &'static [&'static str],
}

const SCRIPTS: &[Script] = &[
    Script {
        name: "connect and ping",
        steps: &["CONNECT {\"verbose\":false}\r\nPING\r\n"],
    },
    Script {
        name: "verbose acks",
        steps: &[
            "CONNECT {\"verbose\":true}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nUNSUB 1\r\nUNSUB 99\r\nPING\r\n",
        ],
    },
    Script {
        name: "pub sub in order",
        steps: &[
            "CONNECT {}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nPUB foo 0\r\n\r\nPUB foo 5\r\nworld\r\nPING\r\n",
        ],
    },
    Script {
        name: "reply subject",
        steps: &["CONNECT {}\r\nSUB svc 1\r\nPUB svc _INBOX.abc 3\r\nreq\r\nPING\r\n"],
    },
    Script {
        name: "wildcards",
        steps: &[
            "CONNECT {}\r\nSUB a.* 1\r\nSUB a.> 2\r\nSUB *.b.c 3\r\nPUB a.b 1\r\n1\r\nPUB a.b.c 1\r\n2\r\nPUB a 1\r\n3\r\nPING\r\n",
        ],
    },
    Script {
        name: "defaults before connect: verbose and pedantic",
        steps: &["PUB foo.* 1\r\nx\r\nSUB ok 1\r\nPING\r\n"],
    },
    Script {
        name: "pedantic is on unless turned off",
        steps: &["CONNECT {\"verbose\":false}\r\nPUB foo.> 1\r\nx\r\nPING\r\n"],
    },
    Script {
        name: "bad connect json",
        steps: &["CONNECT {bad json\r\nPING\r\n"],
    },
    Script {
        name: "bad sub arguments",
        steps: &["CONNECT {}\r\nSUB a b c d\r\nPING\r\n"],
    },
    Script {
        name: "unsub max already reached",
        steps: &[
            "CONNECT {\"verbose\":false}\r\nSUB r 1\r\nPUB r 1\r\na\r\nPUB r 1\r\nb\r\nUNSUB 1 1\r\nPUB r 1\r\nc\r\nPING\r\n",
        ],
    },
    Script {
        name: "queue group of one",
        steps: &[
            "CONNECT {}\r\nSUB q.work workers 1\r\nSUB q.work 2\r\nPUB q.work 2\r\nok\r\nPING\r\n",
        ],
    },
    Script {
        name: "unsub with max",
        steps: &[
            "CONNECT {}\r\nSUB m 1\r\nUNSUB 1 2\r\nPUB m 1\r\na\r\nPUB m 1\r\nb\r\nPUB m 1\r\nc\r\nPING\r\n",
        ],
    },
    Script {
        name: "unsub",
        steps: &["CONNECT {}\r\nSUB u 1\r\nPUB u 1\r\na\r\nUNSUB 1\r\nPUB u 1\r\nb\r\nPING\r\n"],
    },
    Script {
        name: "headers",
        steps: &[
            "CONNECT {\"headers\":true}\r\nSUB h 1\r\nHPUB h 22 24\r\nNATS/1.0\r\nX-Key: v\r\n\r\nhi\r\nHPUB h _R 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n",
        ],
    },
    Script {
        name: "empty header block (nats.js publishes to streams so)",
        steps: &[
            "CONNECT {\"headers\":true}\r\nSUB h 1\r\nHPUB h _R 0 2\r\nhi\r\nHPUB h 0 0\r\n\r\nPING\r\n",
        ],
    },
    Script {
        name: "echo false",
        steps: &["CONNECT {\"echo\":false}\r\nSUB e 1\r\nPUB e 1\r\nx\r\nPING\r\n"],
    },
    Script {
        name: "no responders",
        steps: &[
            "CONNECT {\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.r.* 9\r\nPUB nobody _INBOX.r.1 0\r\n\r\nPING\r\n",
        ],
    },
    Script {
        name: "case-insensitive ops and tabs",
        steps: &["connect {}\r\nsub\tlow\t1\r\npub low 2\r\nok\r\nping\r\n"],
    },
    Script {
        name: "bare LF line ends",
        steps: &["CONNECT {}\nSUB lf 1\nPUB lf 2\r\nok\r\nPING\n"],
    },
    Script {
        name: "invalid subscription subjects",
        steps: &[
            "CONNECT {}\r\nSUB foo..bar 1\r\nSUB .foo 2\r\nSUB foo. 3\r\nSUB foo.>.bar 4\r\nPING\r\n",
        ],
    },
    Script {
        name: "pedantic publish",
        steps: &["CONNECT {\"pedantic\":true}\r\nPUB foo.* 1\r\nx\r\nPUB foo.> 1\r\nx\r\nPING\r\n"],
    },
    Script {
        name: "unknown operation",
        steps: &["CONNECT {}\r\nFOO bar\r\nPING\r\n"],
    },
    Script {
        name: "bad pub arguments",
        steps: &["CONNECT {}\r\nPUB onlysubject\r\nPING\r\n"],
    },
    Script {
        name: "payload without crlf",
        steps: &["CONNECT {}\r\nPUB p 2\r\nhiXX\r\nPING\r\n"],
    },
    Script {
        name: "maximum payload",
        steps: &["CONNECT {}\r\nPUB big 2000000\r\n"],
    },
    Script {
        name: "invalid client protocol",
        steps: &["CONNECT {\"protocol\":5}\r\nPING\r\n"],
    },
    Script {
        name: "no responders without headers",
        steps: &["CONNECT {\"no_responders\":true}\r\nPING\r\n"],
    },
    Script {
        name: "ops before connect",
        steps: &["SUB early 1\r\nPUB early 1\r\nx\r\nPING\r\n"],
    },
];

/// Runs `script` against `addr`; returns the INFO line's key set and the rest
/// of the output.
async fn run(addr: SocketAddr, script: &Script) -> (Vec<String>, String) {
    let mut raw = RawClient::connect(addr).await;
    let info = raw.line().await;
    let json: serde_json::Value =
        serde_json::from_str(info.strip_prefix("INFO ").expect("INFO first")).expect("INFO json");
    let mut keys: Vec<String> = ["server_id", "version", "proto", "headers", "max_payload"]
        .iter()
        .filter(|k| json.get(**k).is_some())
        .map(|k| (*k).to_owned())
        .collect();
    keys.sort();
    let mut pings = 0;
    for step in script.steps {
        pings += step.to_ascii_uppercase().matches("PING").count();
        raw.send(step.as_bytes()).await;
    }
    let out = raw.until_pongs(pings).await;
    (keys, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_replies_as_nats_server() {
    let reference = nats_server(&[]);
    let herald = TestServer::start().await;
    let mut failures = Vec::new();
    for script in SCRIPTS {
        let expected = run(reference.addr, script).await;
        let actual = run(herald.nats, script).await;
        if expected != actual {
            failures.push(format!(
                "{}:\n  nats-server: {:?}\n  herald:      {:?}",
                script.name, expected, actual
            ));
        }
    }
    assert!(failures.is_empty(), "differences:\n{}", failures.join("\n"));
    herald.stop().await;
}
