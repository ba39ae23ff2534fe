//! Write a Trellis capability provider once; run it inside a host (`builtin://NAME`) or as its
//! own process on the lattice.
//!
//! This crate is reserved for the providers issue: it will hold the provider lifecycle (init,
//! link put/delete as source and target, config update, health, shutdown) and one trait per
//! capability, depending only on `trellis-protocol`. It exports nothing yet, so nothing can
//! depend on behaviour that does not exist.
