//! Unit and property tests of the buyer's rules.
