//! Named shared allocations.
