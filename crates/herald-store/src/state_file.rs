//! Small state files, replaced atomically: write a temporary file, fsync it,
//! rename it over the old one, fsync the directory. A crash leaves either
//! the old file or the new one, never half of either.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Writes `value` as JSON to `path`, atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::BadState {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &body)
}

/// Replaces `path` with `body`, atomically (also used for the server's MQTT
/// session files).
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<(), StoreError> {
    replace(path, body, true)
}

/// Writes `value` as JSON to `path`, atomically as far as a process crash
/// goes; forced to disk only with `fsync` (what survives power loss follows
/// the store's sync policy).
pub(crate) fn write_json_synced<T: Serialize>(
    path: &Path,
    value: &T,
    fsync: bool,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(value).map_err(|e| StoreError::BadState {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    replace(path, &body, fsync)
}

fn replace(path: &Path, body: &[u8], fsync: bool) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    file.write_all(body)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    if fsync
        && let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        // Makes the rename itself durable; not every filesystem allows it.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads JSON from `path`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let body = std::fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
    serde_json::from_slice(&body).map_err(|e| StoreError::BadState {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
