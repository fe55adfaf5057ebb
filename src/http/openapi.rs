//! The OpenAPI description (utoipa) and the Swagger UI, whose assets are vendored in the
//! `utoipa-swagger-ui-vendored` crate (nothing is downloaded at build time).

use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::error::Problem;
use super::{buyers, health, orders, payments, points};
use crate::domain::{ChargeReceipt, EntryKind, OrderStatus, OrderView, PaymentReceipt};

#[derive(OpenApi)]
#[openapi(
    info(title = "payment-engine", description = "Points, orders and payments. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        points::charge, points::balance, points::history,
        orders::pay, orders::create, orders::get,
        payments::get, buyers::orders, buyers::payments,
        health::live, health::ready, super::metrics::metrics,
    ),
    components(schemas(
        ChargeReceipt, PaymentReceipt, OrderView, OrderStatus, EntryKind, Problem,
        points::BalanceView, points::HistoryPage, points::HistoryEntry,
        orders::PayRequest, orders::CreateOrderRequest,
        payments::PaymentDetail, payments::PaymentSummary, payments::RefundView,
        buyers::OrdersPage, buyers::PaymentsPage,
    )),
    modifiers(&ServiceToken),
    security(("service_token" = [])),
    tags((name = "points"), (name = "orders"), (name = "payments"), (name = "buyers"), (name = "health"))
)]
pub struct ApiDoc;

/// The optional service token (`API_TOKENS`); the probes and `/metrics` never need it.
struct ServiceToken;

impl Modify for ServiceToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "service_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required on every route but /health/* and /metrics when the engine \
                         runs with API_TOKENS",
                    ))
                    .build(),
            ),
        );
    }
}

/// `/openapi.json` and the UI at `/docs/`. The service token is required in the description
/// only when the engine requires it (`API_TOKENS`).
pub fn swagger_ui(tokens_required: bool) -> SwaggerUi {
    let mut doc = ApiDoc::openapi();
    if !tokens_required {
        doc.security = None;
    }
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc)
}
