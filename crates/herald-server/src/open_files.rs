//! The open-file limit: every connection is a file descriptor, so the soft
//! `RLIMIT_NOFILE` a process inherits (often 1,024 from a login shell or a
//! service manager) would refuse clients with `Too many open files` long
//! before `--max-connections`. herald raises it to the hard limit at start,
//! as nats-server does, and says what it got.

use tracing::{info, warn};

/// Descriptors kept for what is not a client: listeners, stream segments
/// and indexes, state files, the runtime's own.
const RESERVED: u64 = 256;

/// Raises the soft open-file limit to the hard one and logs the limit in
/// force; warns when `max_connections` (0: unlimited) needs more than it
/// allows. Returns the limit in force, if it could be read.
pub fn raise_limit(max_connections: usize) -> Option<u64> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?.0
        }
    };
    info!(limit, "open-file limit");
    let clients = limit.saturating_sub(RESERVED);
    let wanted = u64::try_from(max_connections).unwrap_or(u64::MAX);
    if max_connections == 0 || wanted > clients {
        warn!(
            limit,
            max_connections,
            "the open-file limit allows about {clients} connections; raise the hard limit \
             (ulimit -Hn, LimitNOFILE= in a systemd unit) or lower --max-connections"
        );
    }
    Some(limit)
}
