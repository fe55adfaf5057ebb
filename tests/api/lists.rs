//! The read routes of the money lifecycle: GET /buyers/{buyerId}/orders,
//! GET /buyers/{buyerId}/payments and GET /payments/{paymentId}.

mod errors;
mod orders;
mod payments;
mod setup;
