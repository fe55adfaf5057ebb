//! The OpenAPI description (utoipa) and the Swagger UI, whose assets are vendored in the
//! `utoipa-swagger-ui-vendored` crate (nothing is downloaded at build time).

use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::error::Problem;
use super::{buyers, health, orders, payments, points, refunds};
use crate::domain::{
    ChargeReceipt, EntryKind, OrderStatus, OrderView, PaymentReceipt, RefundReceipt,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "payment-engine", description = "Points, orders and payments. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        points::charge, points::balance, points::history,
        orders::pay, orders::create, orders::get, orders::cancel, refunds::refund,
        payments::get, buyers::orders, buyers::payments,
        health::live, health::ready, super::metrics::metrics,
    ),
    components(schemas(
        ChargeReceipt, PaymentReceipt, RefundReceipt, OrderView, OrderStatus, EntryKind, Problem,
        points::BalanceView, points::HistoryPage, points::HistoryEntry,
        orders::PayRequest, orders::CreateOrderRequest, orders::CancelRequest,
        refunds::RefundRequest,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The routes of README's API table, as "METHOD /path" with the query string cut.
    fn readme_routes() -> BTreeSet<String> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let api = readme
            .split("\n## API\n")
            .nth(1)
            .expect("README has an API section");
        let table = api.split("\n### ").next().unwrap();
        table
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .flat_map(|line| {
                let route_cell = line.split(" | ").next().unwrap();
                route_cell
                    .split('`')
                    .filter(|part| part.starts_with(['G', 'P', 'D']) && part.contains(" /"))
                    .map(|route| route.split('?').next().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_readme_api_table_lists_every_documented_operation_and_no_other() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        // The description and its UI are served beside the API, not described in it.
        let mut readme = readme_routes();
        assert!(readme.remove("GET /openapi.json") && readme.remove("GET /docs/"));
        assert_eq!(
            readme, documented,
            "README's API table against the OpenAPI paths"
        );
    }
}
