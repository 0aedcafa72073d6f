//! Messages, peer names and replies.

use std::fmt;
use std::os::fd::OwnedFd;

use super::{wire, Error, MAX_FDS, MAX_PARAM_LEN};

/// The name of a peer's socket in the runtime dir: `mp_socket` for the primary,
/// `mp_socket_<pid>[_<slot>]` for a secondary; or `@<name>` for the abstract socket a process sends
/// its synchronous requests from.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerName(pub(crate) String);

impl PeerName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The process id a secondary's socket name carries (`mp_socket_<pid>[_<slot>]`), as the
    /// secondary sees itself (in its own PID namespace); `None` for the primary's socket and for
    /// abstract names.
    pub fn pid(&self) -> Option<u32> {
        let rest = self.0.strip_prefix(super::SECONDARY_SOCKET_PREFIX)?;
        rest.split('_').next()?.parse().ok()
    }

    /// The process-table slot a member secondary's socket name carries (`mp_socket_<pid>_<slot>`).
    pub fn slot(&self) -> Option<u32> {
        let rest = self.0.strip_prefix(super::SECONDARY_SOCKET_PREFIX)?;
        rest.split_once('_')?.1.parse().ok()
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One IPC message (DPDK's `struct rte_mp_msg`): an action name, up to [`MAX_PARAM_LEN`]
/// parameter bytes and up to [`MAX_FDS`] file descriptors.
///
/// Construction validates the limits, so a `Message` can always be sent. Descriptors are
/// owned: sending passes duplicates to the peer (the kernel's `SCM_RIGHTS`) and leaves these
/// open until the message drops; received descriptors close when the received message drops,
/// unless taken out with [`Message::take_fds`].
#[derive(Debug)]
pub struct Message {
    name: String,
    param: Vec<u8>,
    fds: Vec<OwnedFd>,
    sender: Option<PeerName>,
}

impl Message {
    /// A message named `name` carrying `param`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] unless the name has 1 to `MAX_NAME_LEN - 1` bytes and no NUL;
    /// [`Error::ParamTooLong`] past [`MAX_PARAM_LEN`] bytes.
    pub fn new(name: &str, param: &[u8]) -> Result<Message, Error> {
        Self::with_fds(name, param, Vec::new())
    }

    /// A message that also carries file descriptors. On error the descriptors are closed.
    ///
    /// # Errors
    /// As [`Message::new`], and [`Error::TooManyFds`] past [`MAX_FDS`] descriptors.
    pub fn with_fds(name: &str, param: &[u8], fds: Vec<OwnedFd>) -> Result<Message, Error> {
        check_name(name)?;
        if param.len() > MAX_PARAM_LEN {
            tracing::debug!(name, len = param.len(), "IPC parameter too long");
            return Err(Error::ParamTooLong { len: param.len() });
        }
        if fds.len() > MAX_FDS {
            tracing::debug!(
                name,
                count = fds.len(),
                "too many descriptors for one IPC message"
            );
            return Err(Error::TooManyFds { count: fds.len() });
        }
        Ok(Message {
            name: name.to_owned(),
            param: param.to_vec(),
            fds,
            sender: None,
        })
    }

    pub(crate) fn received(
        name: &str,
        param: &[u8],
        fds: Vec<OwnedFd>,
        sender: PeerName,
    ) -> Message {
        Message {
            name: name.to_owned(),
            param: param.to_vec(),
            fds,
            sender: Some(sender),
        }
    }

    /// The action name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter bytes.
    pub fn param(&self) -> &[u8] {
        &self.param
    }

    /// The descriptors this message carries.
    pub fn fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// Takes the descriptors out, so they outlive the message.
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }

    /// Who sent it, for a received message; `None` for one built here.
    pub fn sender(&self) -> Option<&PeerName> {
        self.sender.as_ref()
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if wire::name_is_valid(name) {
        Ok(())
    } else {
        tracing::debug!(name, "invalid IPC action name");
        Err(Error::InvalidName(name.to_owned()))
    }
}

/// What a request gathered (DPDK's `struct rte_mp_reply`).
///
/// `nb_sent` counts the peers the request reached and that still count: peers that answered
/// "ignore me" (DPDK's `MP_IGN`) and peers that died before answering are taken out of it again,
/// as DPDK does for `MP_IGN`. So a request is complete when `nb_received == nb_sent`.
#[derive(Debug, Default)]
pub struct Reply {
    /// Peers the request was sent to, less those that asked to be ignored or died.
    pub nb_sent: usize,
    /// Replies received; `msgs.len()`.
    pub nb_received: usize,
    /// The replies, in arrival order; [`Message::sender`] says who sent each.
    pub msgs: Vec<Message>,
    /// Peers that were found dead (socket file without a process) before they answered.
    /// The primary removes their socket files.
    pub gone: Vec<PeerName>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp::MAX_NAME_LEN;

    #[test]
    fn limits_are_checked_at_construction() {
        assert!(Message::new("ok", &[0; MAX_PARAM_LEN]).is_ok());
        assert!(matches!(Message::new("", b""), Err(Error::InvalidName(_))));
        assert!(matches!(
            Message::new(&"x".repeat(MAX_NAME_LEN), b""),
            Err(Error::InvalidName(_))
        ));
        assert!(Message::new(&"x".repeat(MAX_NAME_LEN - 1), b"").is_ok());
        assert!(matches!(
            Message::new("a", &[0; MAX_PARAM_LEN + 1]),
            Err(Error::ParamTooLong { .. })
        ));
    }

    #[test]
    fn peer_names_carry_secondary_pids() {
        assert_eq!(PeerName("mp_socket_42".into()).pid(), Some(42));
        assert_eq!(PeerName("mp_socket_1_7".into()).pid(), Some(1));
        assert_eq!(PeerName("mp_socket_1_7".into()).slot(), Some(7));
        assert_eq!(PeerName("mp_socket_42".into()).slot(), None);
        assert_eq!(PeerName("mp_socket".into()).pid(), None);
        assert_eq!(PeerName("@0001f".into()).pid(), None);
    }
}
