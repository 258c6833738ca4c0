//! Per-user permissions: allow and deny lists of subject patterns for
//! publishing and for subscribing, deny winning. Listeners check a publish
//! and a new subscription up front; the broker then checks every delivery
//! of a subscription whose pattern reaches beyond what the user may read
//! (`>` with `secret.>` denied), so a wildcard never delivers a message on
//! a subject the user may not read.

use serde::{Deserialize, Serialize};

use crate::subject::{Pattern, Subject};

/// Allow and deny lists for one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Patterns permitted; empty means everything.
    pub allow: Vec<Pattern>,
    /// Patterns refused, whatever `allow` says.
    pub deny: Vec<Pattern>,
}

impl Rules {
    /// Rules that permit everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether a message on `subject` is permitted.
    pub fn permits(&self, subject: &Subject) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|a| a.matches(subject)))
            && !self.deny.iter().any(|d| d.matches(subject))
    }

    /// Whether a subscription to `pattern` may exist at all: some of what it
    /// matches is permitted. (Deliveries are then checked one by one unless
    /// [`covers`](Self::covers) says every one is permitted.)
    pub fn permits_pattern(&self, pattern: &Pattern) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|a| a.overlaps(pattern)))
            && !self.deny.iter().any(|d| d.contains(pattern))
    }

    /// Whether everything `pattern` matches is permitted.
    pub fn covers(&self, pattern: &Pattern) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|a| a.contains(pattern)))
            && !self.deny.iter().any(|d| d.overlaps(pattern))
    }
}

/// What one user may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// Subjects the user may publish to (replies included).
    pub publish: Rules,
    /// Subjects the user may receive messages on (request inboxes included).
    pub subscribe: Rules,
}

impl Permissions {
    /// Permissions that allow nothing: for a client not yet logged in, or
    /// a request whose sender cannot be told.
    pub fn nothing() -> Self {
        let everything = Pattern::new(">").map(|p| vec![p]).unwrap_or_default();
        let nothing = Rules {
            allow: Vec::new(),
            deny: everything,
        };
        Self {
            publish: nothing.clone(),
            subscribe: nothing,
        }
    }

    /// Whether the user may publish on `subject`.
    pub fn may_publish(&self, subject: &Subject) -> bool {
        self.publish.permits(subject)
    }

    /// Whether the user may subscribe to `pattern`.
    pub fn may_subscribe(&self, pattern: &Pattern) -> bool {
        self.subscribe.permits_pattern(pattern)
    }

    /// Whether the user may receive a message on `subject`.
    pub fn may_receive(&self, subject: &Subject) -> bool {
        self.subscribe.permits(subject)
    }
}

/// Where MQTT retained messages are stored: topic `a/b` as
/// `$MQTT.retained.a.b` (stream `MQTT_RETAINED`). Reads of them are checked
/// as reads of `a.b`.
pub const MQTT_RETAINED_PREFIX: &str = "$MQTT.retained.";

/// Who asked to read stored messages, and the one rule every read of a
/// stored message follows: **a message may be read only by a user who may
/// receive a message on its subject** (subscribe permission on the
/// subject, deny winning), as a live subscription's delivery is checked.
///
/// The server's connection core stamps every request it publishes on a
/// `$JS.` subject (the JetStream API, consumer acks) with its user's
/// permissions, as the message's [`Extension`](crate::Extension); the
/// JetStream API, consumers and the web reads ask this type. A request
/// without a stamp came from inside the process (the library, herald's own
/// tasks), where nothing is checked.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// `None`: may read everything.
    permissions: Option<std::sync::Arc<Permissions>>,
}

impl Requester {
    /// A requester with `permissions` (`None`: unrestricted).
    pub fn new(permissions: Option<std::sync::Arc<Permissions>>) -> Self {
        Self { permissions }
    }

    /// Who sent `msg`: its stamp, or unrestricted when it has none.
    pub fn of(msg: &crate::Message) -> Self {
        msg.extension::<Self>().cloned().unwrap_or_default()
    }

    /// The permissions it is restricted to (`None`: unrestricted).
    pub fn permissions(&self) -> Option<&std::sync::Arc<Permissions>> {
        self.permissions.as_ref()
    }

    /// `msg` stamped with this requester.
    pub fn stamp(self, msg: crate::Message) -> crate::Message {
        msg.with_extension(crate::Extension::new(std::sync::Arc::new(self)))
    }

    /// Whether a message on `subject` asks for stored messages (the
    /// JetStream API, and consumer acks, whose `+NXT` asks for more): the
    /// messages a client's connection stamps.
    pub fn is_request_subject(subject: &Subject) -> bool {
        subject.as_bytes().starts_with(b"$JS.")
    }

    /// `msg` stamped with this requester if it is a request
    /// ([`is_request_subject`](Self::is_request_subject)) from a restricted
    /// user; otherwise as it was.
    pub fn stamp_request(self, msg: crate::Message) -> crate::Message {
        if self.is_restricted() && Self::is_request_subject(&msg.subject) {
            self.stamp(msg)
        } else {
            msg
        }
    }

    /// Whether the requester may read a stored message on `subject`. A
    /// retained MQTT message, stored as `$MQTT.retained.<subject>`, is
    /// checked as its own subject.
    pub fn may_read(&self, subject: &Subject) -> bool {
        let Some(permissions) = &self.permissions else {
            return true;
        };
        if !permissions.may_receive(subject) {
            return false;
        }
        match subject
            .as_bytes()
            .strip_prefix(MQTT_RETAINED_PREFIX.as_bytes())
        {
            Some(own) => Subject::from_bytes(bytes::Bytes::copy_from_slice(own))
                .is_ok_and(|own| permissions.may_receive(&own)),
            None => true,
        }
    }

    /// Whether it may read every message `pattern` matches (what a
    /// consumer with that filter would deliver to it), retained MQTT
    /// messages checked as their own subjects: a pattern that names them
    /// (`$MQTT.retained.a.>`) by what follows, one that only reaches them
    /// through wildcards (`$MQTT.>`, `>`) as everything.
    pub fn may_read_all(&self, pattern: &Pattern) -> bool {
        let Some(permissions) = &self.permissions else {
            return true;
        };
        if !permissions.subscribe.covers(pattern) {
            return false;
        }
        let retained = Pattern::new("$MQTT.retained.>").ok();
        if !retained.is_some_and(|r| r.overlaps(pattern)) {
            return true;
        }
        let own = pattern
            .as_bytes()
            .strip_prefix(MQTT_RETAINED_PREFIX.as_bytes())
            .and_then(|rest| Pattern::from_bytes(bytes::Bytes::copy_from_slice(rest)).ok())
            .or_else(|| Pattern::new(">").ok());
        own.is_some_and(|own| permissions.subscribe.covers(&own))
    }

    /// Whether it is restricted at all (checks can be skipped when not).
    pub fn is_restricted(&self) -> bool {
        self.permissions.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn s(s: &str) -> Subject {
        Subject::new(s).unwrap()
    }

    #[test]
    fn deny_wins_and_wildcards_are_checked_per_delivery() {
        let rules = Rules {
            allow: vec![p("orders.>"), p("_INBOX.>")],
            deny: vec![p("orders.internal.>")],
        };
        assert!(rules.permits(&s("orders.eu")));
        assert!(!rules.permits(&s("orders.internal.audit")));
        assert!(!rules.permits(&s("payments.x")));
        assert!(rules.permits_pattern(&p("orders.>")));
        assert!(
            !rules.covers(&p("orders.>")),
            "overlaps the deny: check each delivery"
        );
        assert!(rules.covers(&p("orders.eu.*")));
        assert!(!rules.permits_pattern(&p("orders.internal.>")));
        assert!(!rules.permits_pattern(&p("payments.>")));
        assert!(rules.permits_pattern(&p(">")), "reaches allowed subjects");
        assert!(!rules.covers(&p(">")));
        assert!(Rules::everything().covers(&p(">")));
    }

    #[test]
    fn a_requester_reads_what_it_may_receive_and_an_unstamped_request_everything() {
        let permissions = Permissions {
            publish: Rules::everything(),
            subscribe: Rules {
                allow: vec![p(">")],
                deny: vec![p("secret.>")],
            },
        };
        let requester = Requester::new(Some(std::sync::Arc::new(permissions)));
        assert!(requester.may_read(&s("orders.1")));
        assert!(!requester.may_read(&s("secret.plans")));
        assert!(requester.may_read_all(&p("orders.>")));
        assert!(!requester.may_read_all(&p(">")), "reaches secret.>");
        let msg = requester
            .clone()
            .stamp(crate::Message::new(s("$JS.API.INFO"), bytes::Bytes::new()));
        assert!(!Requester::of(&msg).may_read(&s("secret.plans")));
        let unstamped = crate::Message::new(s("$JS.API.INFO"), bytes::Bytes::new());
        assert!(Requester::of(&unstamped).may_read(&s("secret.plans")));
        assert!(!Requester::of(&unstamped).is_restricted());

        // Retained MQTT messages are read as their own subjects.
        assert!(requester.may_read(&s("$MQTT.retained.orders.1")));
        assert!(!requester.may_read(&s("$MQTT.retained.secret.plans")));
        assert!(requester.may_read_all(&p("$MQTT.retained.orders.>")));
        assert!(!requester.may_read_all(&p("$MQTT.retained.>")));
        assert!(!requester.may_read_all(&p("$MQTT.*.secret.>")));
        assert!(!requester.may_read_all(&p("$MQTT.>")), "reaches them all");

        // Only requests from restricted users are stamped.
        let other = requester
            .clone()
            .stamp_request(crate::Message::new(s("orders.1"), bytes::Bytes::new()));
        assert!(other.extension.is_none());
        let api = requester.stamp_request(crate::Message::new(
            s("$JS.API.STREAM.MSG.GET.S"),
            bytes::Bytes::new(),
        ));
        assert!(Requester::of(&api).is_restricted());
        let free = Requester::default().stamp_request(crate::Message::new(
            s("$JS.API.STREAM.MSG.GET.S"),
            bytes::Bytes::new(),
        ));
        assert!(free.extension.is_none());
    }

    #[test]
    fn containment_and_overlap() {
        assert!(p("a.>").contains(&p("a.b.*")));
        assert!(p("a.*").contains(&p("a.b")));
        assert!(!p("a.*").contains(&p("a.>")));
        assert!(!p("a.b").contains(&p("a.*")));
        assert!(p(">").contains(&p("x")));
        assert!(p("a.*").overlaps(&p("a.b")));
        assert!(p("a.>").overlaps(&p("*.b.c")));
        assert!(!p("a.*").overlaps(&p("a.b.c")));
        assert!(!p("a.b").overlaps(&p("a.c")));
    }
}
