//! Users and authentication, shared by every listener.
//!
//! Users come from the config (`[[users]]`): a name with a password hash
//! (argon2, from `herald passwd`) or a bearer token, and optional publish /
//! subscribe rules. With no user configured, everyone is anonymous and may
//! do everything; as soon as one is, every client must authenticate.
//! Checking a password costs tens of milliseconds by design (argon2), so
//! listeners run [`Users::authenticate`] on a blocking thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use herald_core::{Permissions, Rules};
use serde::{Deserialize, Serialize};

/// One `[[users]]` entry of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's name.
    pub name: String,
    /// An argon2 hash from `herald passwd` (plain text is refused at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A bearer token instead of a password. (With neither, the user can
    /// only be a client certificate's common name, under mutual TLS.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the token stops working (RFC 3339); absent = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<String>,
    /// What the user may publish to; absent = everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Rules>,
    /// What the user may receive; absent = everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Rules>,
}

/// Who a client is, once authenticated.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's name (`anonymous` when no users are configured).
    pub name: String,
    /// Its permissions; `None` = may do everything.
    pub permissions: Option<Arc<Permissions>>,
    /// Which configured credentials it proved (a digest of them; 0 for
    /// anonymous): a reload that changes them logs the client out.
    pub(crate) credentials: u64,
}

impl Identity {
    /// The identity of every client when no users are configured.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            permissions: None,
            credentials: 0,
        }
    }

    /// Whether the client may publish on `subject`.
    pub fn may_publish(&self, subject: &herald_core::Subject) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.may_publish(subject))
    }

    /// Whether the client may subscribe to `pattern`.
    pub fn may_subscribe(&self, pattern: &herald_core::Pattern) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.may_subscribe(pattern))
    }

    /// The permissions a subscription to `pattern` must check per delivery:
    /// `None` when everything it matches may be read.
    pub fn read_check(&self, pattern: &herald_core::Pattern) -> Option<Arc<Permissions>> {
        self.permissions
            .as_ref()
            .filter(|p| !p.subscribe.covers(pattern))
            .cloned()
    }
}

/// What a client presents.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// A user name and password.
    Password {
        /// The user.
        user: &'a str,
        /// The password.
        password: &'a str,
    },
    /// A bearer token.
    Token(&'a str),
}

#[derive(Debug)]
struct User {
    name: String,
    hash: Option<String>,
    token: Option<String>,
    /// Nanoseconds since the epoch after which the token is refused.
    token_expires: Option<i64>,
    permissions: Option<Arc<Permissions>>,
    /// A digest of the credentials as configured (never 0).
    credentials: u64,
}

impl User {
    fn identity(&self) -> Identity {
        Identity {
            name: self.name.clone(),
            permissions: self.permissions.clone(),
            credentials: self.credentials,
        }
    }
}

/// Every configured user.
#[derive(Debug, Default)]
pub struct Users {
    users: Vec<User>,
    by_name: HashMap<String, usize>,
    /// Recently verified credentials (by SHA-256 digest), so HTTP clients
    /// that send them with every request do not pay argon2 every time.
    verified: parking_lot::Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

/// How long verified credentials are remembered.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Most remembered credentials.
const VERIFIED_MAX: usize = 4096;

impl Users {
    /// Checks the `[[users]]` config: unique names, exactly one of password
    /// and token, passwords given as argon2 hashes.
    ///
    /// # Errors
    /// Names the user and what is wrong.
    pub fn from_config(configs: &[UserConfig]) -> anyhow::Result<Self> {
        let mut users = Users::default();
        for (i, c) in configs.iter().enumerate() {
            if c.name.is_empty() {
                bail!("users[{i}]: name is empty");
            }
            if users.by_name.contains_key(&c.name) {
                bail!("users: {:?} is configured twice", c.name);
            }
            match (&c.password, &c.token) {
                (Some(_), Some(_)) => {
                    bail!("users[{}]: give a password or a token, not both", c.name)
                }
                // Certificate-only: the name is a client certificate's common name.
                (None, None) => {}
                (Some(hash), None) => {
                    PasswordHash::new(hash)
                        .ok()
                        .filter(|h| h.algorithm.as_str().starts_with("argon2"))
                        .with_context(|| {
                            format!(
                                "users[{}].password is not an argon2 hash; plain-text passwords are \
                                 refused: run `herald passwd` and paste its output",
                                c.name
                            )
                        })?;
                }
                (None, Some(token)) if token.len() < 16 => {
                    bail!(
                        "users[{}].token is too short (at least 16 characters)",
                        c.name
                    )
                }
                (None, Some(_)) => {}
            }
            let permissions = match (&c.publish, &c.subscribe) {
                (None, None) => None,
                (publish, subscribe) => Some(Arc::new(Permissions {
                    publish: publish.clone().unwrap_or_default(),
                    subscribe: subscribe.clone().unwrap_or_default(),
                })),
            };
            let token_expires = match &c.token_expires {
                Some(text) => Some(herald_store::time::parse_rfc3339(text).with_context(|| {
                    format!(
                        "users[{}].token_expires: {text:?} is not an RFC 3339 time",
                        c.name
                    )
                })?),
                None => None,
            };
            let credentials = {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::hash::DefaultHasher::new();
                (&c.password, &c.token, token_expires).hash(&mut hasher);
                hasher.finish().max(1)
            };
            users.by_name.insert(c.name.clone(), users.users.len());
            users.users.push(User {
                name: c.name.clone(),
                hash: c.password.clone(),
                token: c.token.clone(),
                token_expires,
                permissions,
                credentials,
            });
        }
        Ok(users)
    }

    /// The user named by a verified client certificate's common name.
    pub fn by_certificate(&self, common_name: &str) -> Option<Identity> {
        let user = &self.users[*self.by_name.get(common_name)?];
        Some(user.identity())
    }

    /// `identity`, proved before a reload, under these users: the same user
    /// with its permissions as configured now, or `None` when the user is
    /// gone or its credentials changed (the client must log in again).
    /// With no users configured any more, everyone is anonymous.
    pub fn reauthorize(&self, identity: &Identity) -> Option<Identity> {
        if !self.required() {
            return Some(Identity::anonymous());
        }
        let user = &self.users[*self.by_name.get(&identity.name)?];
        (user.credentials == identity.credentials).then(|| user.identity())
    }

    /// How many users are configured.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether clients must authenticate (some user is configured).
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The identity `credentials` prove, if any. Slow for passwords (argon2):
    /// call it off the async workers.
    pub fn authenticate(&self, credentials: Credentials<'_>) -> Option<Identity> {
        let user = match credentials {
            Credentials::Password { user, password } => {
                let user = &self.users[*self.by_name.get(user)?];
                let hash = PasswordHash::new(user.hash.as_deref()?).ok()?;
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .ok()?;
                user
            }
            Credentials::Token(token) => {
                let user = self.users.iter().find(|u| {
                    u.token
                        .as_deref()
                        .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
                })?;
                if user
                    .token_expires
                    .is_some_and(|at| herald_store::time::now_nanos() >= at)
                {
                    tracing::warn!(user = %user.name, "expired token refused");
                    return None;
                }
                user
            }
        };
        Some(user.identity())
    }
}

impl Users {
    /// [`authenticate`](Self::authenticate), remembering success for a
    /// minute (keyed by a digest of the credentials, never the password).
    pub fn authenticate_cached(&self, credentials: Credentials<'_>) -> Option<Identity> {
        let key = digest(credentials);
        if let Some((identity, at)) = self.verified.lock().get(&key)
            && at.elapsed() < VERIFIED_FOR
        {
            return Some(identity.clone());
        }
        let identity = self.authenticate(credentials)?;
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key, (identity.clone(), Instant::now()));
        Some(identity)
    }
}

fn digest(credentials: Credentials<'_>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    match credentials {
        Credentials::Password { user, password } => {
            hasher.update(b"p\0");
            hasher.update(user.as_bytes());
            hasher.update(b"\0");
            hasher.update(password.as_bytes());
        }
        Credentials::Token(token) => {
            hasher.update(b"t\0");
            hasher.update(token.as_bytes());
        }
    }
    hasher.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id hash of `password` with a fresh salt, for the config.
///
/// # Errors
/// The hasher failed (it does not for sane input).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("making a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_authenticate() {
        let hash = hash_password("s3cret").unwrap();
        let users = Users::from_config(&[
            UserConfig {
                name: "alice".into(),
                password: Some(hash),
                token: None,
                token_expires: None,
                publish: Some(Rules {
                    allow: vec![herald_core::Pattern::new("orders.>").unwrap()],
                    deny: vec![],
                }),
                subscribe: None,
            },
            UserConfig {
                name: "svc".into(),
                password: None,
                token: Some("t0k3n-0123456789abcdef".into()),
                token_expires: None,
                publish: None,
                subscribe: None,
            },
        ])
        .unwrap();
        assert!(users.required());
        let alice = users
            .authenticate(Credentials::Password {
                user: "alice",
                password: "s3cret",
            })
            .unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.may_publish(&herald_core::Subject::new("orders.x").unwrap()));
        assert!(!alice.may_publish(&herald_core::Subject::new("pay.x").unwrap()));
        assert!(
            users
                .authenticate(Credentials::Password {
                    user: "alice",
                    password: "nope"
                })
                .is_none()
        );
        assert!(
            users
                .authenticate(Credentials::Password {
                    user: "bob",
                    password: "s3cret"
                })
                .is_none()
        );
        let svc = users
            .authenticate(Credentials::Token("t0k3n-0123456789abcdef"))
            .unwrap();
        assert_eq!(svc.name, "svc");
        assert!(svc.permissions.is_none());
        assert!(users.authenticate(Credentials::Token("wrong")).is_none());
    }

    #[test]
    fn reauthorize_keeps_a_user_only_while_its_credentials_stand() {
        let user = |token: &str, subscribe: Option<Rules>| UserConfig {
            name: "svc".into(),
            password: None,
            token: Some(token.into()),
            token_expires: None,
            publish: None,
            subscribe,
        };
        let before = Users::from_config(&[user("t0k3n-0123456789abcdef", None)]).unwrap();
        let svc = before
            .authenticate(Credentials::Token("t0k3n-0123456789abcdef"))
            .unwrap();
        let narrowed = Rules {
            allow: vec![herald_core::Pattern::new("a.>").unwrap()],
            deny: vec![],
        };
        let same_token =
            Users::from_config(&[user("t0k3n-0123456789abcdef", Some(narrowed))]).unwrap();
        let now = same_token.reauthorize(&svc).expect("still svc");
        assert!(!now.may_subscribe(&herald_core::Pattern::new("b.>").unwrap()));
        let new_token = Users::from_config(&[user("another-token-0123456789", None)]).unwrap();
        assert!(new_token.reauthorize(&svc).is_none(), "its token changed");
        assert!(
            Users::default().reauthorize(&svc).is_some(),
            "no users: anonymous"
        );
        assert!(before.reauthorize(&Identity::anonymous()).is_none());
    }

    #[test]
    fn plain_text_passwords_are_refused() {
        let err = Users::from_config(&[UserConfig {
            name: "bob".into(),
            password: Some("hunter2".into()),
            token: None,
            token_expires: None,
            publish: None,
            subscribe: None,
        }])
        .unwrap_err();
        assert!(err.to_string().contains("herald passwd"), "{err}");
    }
}
