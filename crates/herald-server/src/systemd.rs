//! The systemd readiness protocol (`Type=notify`): when systemd started the
//! process it sets `NOTIFY_SOCKET`, and the service says `READY=1` there
//! once it serves, `STOPPING=1` when it begins to stop. A datagram of text;
//! nothing to do when the variable is absent.

/// Sends `state` (`READY=1`, `STOPPING=1`, ...) to systemd, if it asked.
pub fn notify(state: &str) {
    #[cfg(unix)]
    {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let result = send(&path, state);
        if let Err(error) = result {
            tracing::warn!(%error, "could not notify systemd");
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

#[cfg(unix)]
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): the name after the `@`.
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    socket.send_to(state.as_bytes(), path)?;
    Ok(())
}
