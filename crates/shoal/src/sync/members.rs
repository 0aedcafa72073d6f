//! Who a process is inside its group, and whether it is still alive.
//!
//! Every process that joins a group holds a slot of the process table; its [`MemberId`] is the
//! slot and the slot's generation (bumped at each claim, so a reused slot never answers for its
//! predecessor). A process proves that it is alive by an open-file-description lock on one byte
//! of the group's segment file, which the kernel drops when the process dies, whatever PID
//! namespace it lives in: no pid is involved, so pid reuse and containers cannot fool it.
//!
//! The structures of the lower layers (the metadata lock, ring side claims, the mempool store)
//! record the [`MemberId`] of whoever holds them and ask a [`Members`] oracle, after a bounded
//! wait, whether that member still lives. The memory layer's `Mapping` is the oracle for a
//! group's segment; [`Local`] stands in for process-local memory, where every holder is a
//! thread of this process.

/// A member of a group: a process-table slot and its generation, or a guest (a tool that reads
/// the group without joining it). `MemberId::NONE` (0) is nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct MemberId(u64);

const GUEST: u32 = 0x8000_0000;

impl MemberId {
    /// Nobody (a free lock or side).
    pub const NONE: MemberId = MemberId(0);

    /// The process in `slot` at slot generation `gen`.
    pub const fn member(slot: u32, gen: u32) -> MemberId {
        MemberId((((slot as u64) + 1) << 32) | gen as u64)
    }

    /// Guest `k`: a process without a slot that holds guest lock byte `k`.
    pub const fn guest(k: u32) -> MemberId {
        MemberId(((GUEST | k) as u64) << 32)
    }

    /// The raw word stored in shared memory.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// A word read from shared memory.
    pub const fn from_raw(raw: u64) -> MemberId {
        MemberId(raw)
    }

    /// True for [`MemberId::NONE`].
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The process-table slot, for a member.
    pub const fn slot(self) -> Option<u32> {
        let hi = (self.0 >> 32) as u32;
        if hi == 0 || hi & GUEST != 0 {
            None
        } else {
            Some(hi - 1)
        }
    }

    /// The guest lock byte, for a guest.
    pub const fn guest_index(self) -> Option<u32> {
        let hi = (self.0 >> 32) as u32;
        if hi & GUEST != 0 {
            Some(hi & !GUEST)
        } else {
            None
        }
    }

    /// The slot generation (0 for guests).
    pub const fn generation(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.slot(), self.guest_index()) {
            (Some(s), _) => write!(f, "slot {s} (generation {})", self.generation()),
            (None, Some(g)) => write!(f, "guest {g}"),
            (None, None) => f.write_str("nobody"),
        }
    }
}

/// What can be said of a member's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// It holds its liveness lock.
    Alive,
    /// It is gone: its lock is free, or its slot was since given to another process.
    Dead,
    /// Cannot be decided (the lock could not be tested): never treated as dead.
    Unknown,
}

/// Answers liveness questions about the members of one group.
pub trait Members {
    /// This process's identity in the group ([`MemberId::NONE`] when it has none).
    fn me(&self) -> MemberId;
    /// Whether `id` is alive.
    fn liveness(&self, id: MemberId) -> Liveness;
    /// True once the dead member `id` has been reaped: what it held was returned and its slot
    /// freed (or given to another process). Structures that the reaper repairs are taken over
    /// only then.
    fn reaped(&self, id: MemberId) -> bool;
}

/// The oracle for process-local memory: the only member is this process ([`LOCAL_ME`]); any
/// other id found there is garbage, so dead.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

/// The identity [`Local`] gives this process.
pub const LOCAL_ME: MemberId = MemberId::member(u32::MAX - 1, 1);

impl Members for Local {
    fn me(&self) -> MemberId {
        LOCAL_ME
    }
    fn liveness(&self, id: MemberId) -> Liveness {
        if id == LOCAL_ME {
            Liveness::Alive
        } else {
            Liveness::Dead
        }
    }
    fn reaped(&self, id: MemberId) -> bool {
        id != LOCAL_ME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_round_trip() {
        let m = MemberId::member(5, 77);
        assert_eq!(m.slot(), Some(5));
        assert_eq!(m.generation(), 77);
        assert_eq!(m.guest_index(), None);
        assert_eq!(MemberId::from_raw(m.raw()), m);
        let g = MemberId::guest(3);
        assert_eq!(g.slot(), None);
        assert_eq!(g.guest_index(), Some(3));
        assert!(MemberId::NONE.is_none());
        assert_eq!(MemberId::member(0, 0).slot(), Some(0));
        assert!(!MemberId::member(0, 0).is_none());
    }
}
