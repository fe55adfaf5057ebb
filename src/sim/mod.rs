//! The deterministic simulation of the payment protocol (TigerBeetle's VOPR style) and the
//! models it runs against. One seed drives every choice; each model is kept honest by a
//! differential test against the real implementation (`tests/api/writer_model.rs` for
//! [`model::ModelDb`]).

pub mod model;
