//! What the HTTP layer counts: every answered request, and the 503s by reason.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{HttpLabels, HttpRouteLabels, ReasonLabels};
use super::{HistogramFamily, child, request_seconds};
use crate::domain::RejectionReason;

/// The successful answers of the routes that move money (route template, status), created at
/// start-up: the dashboard's payments/refunds/cancels panel charts them, and shows 0 rather
/// than "no data" before the first one.
const MONEY_ROUTES: [(&str, u16); 3] = [
    ("/orders/payment/kafka", 200),
    ("/payments/{payment_id}/refunds", 201),
    ("/orders/{order_id}/cancel", 200),
];

/// Requests by route template, method and status, and their durations.
pub(super) struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: HistogramFamily<HttpRouteLabels>,
    pub(super) in_flight: Gauge,
    pub(super) in_flight_limit: Gauge,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> HttpMetrics {
        let metrics = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(request_seconds),
            in_flight: Gauge::default(),
            in_flight_limit: Gauge::default(),
        };
        registry.register(
            "in_flight_requests",
            "Requests being served (probes and /metrics aside), at the last scrape",
            metrics.in_flight.clone(),
        );
        registry.register(
            "in_flight_limit",
            "The adaptive in-flight limit at the last scrape: beyond it requests answer 503",
            metrics.in_flight_limit.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to answering it",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        for (route, status) in MONEY_ROUTES {
            let labels = HttpLabels {
                route: route.to_owned(),
                method: "POST",
                status,
            };
            child(&metrics.requests, &labels);
        }
        metrics
    }

    pub(super) fn request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.duration
            .get_or_create(&HttpRouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }
}

/// Requests refused with 503, by reason; every reason is there from the start.
pub(super) struct RejectionMetrics(Family<ReasonLabels, Counter>);

impl RejectionMetrics {
    pub(super) fn register(registry: &mut Registry) -> RejectionMetrics {
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejections",
            "Requests refused with 503 (retry later), by reason",
            rejections.clone(),
        );
        for reason in RejectionReason::ALL {
            child(&rejections, &ReasonLabels { reason });
        }
        RejectionMetrics(rejections)
    }

    pub(super) fn count(&self, reason: RejectionReason) {
        self.0.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// The HTTP method as a bounded label value.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
