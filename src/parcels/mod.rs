//! Parcels: the EDI files that move through an ECGridOS mailbox.

pub mod names;
